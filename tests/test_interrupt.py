"""Interrupts: SIGKILL at random moments, Ctrl-C with a partial result, and resuming to the same outputs.

The interrupted runs are real `python -m filterviz` subprocesses; the references run in this process.
Same seed, same settings => bitwise the same arrays, however a run was cut into pieces.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_sweep

from filterviz.cli import main
from filterviz.config import load_config
from filterviz.jobs import job_finished, plan_jobs
from filterviz.results import read_partial
from filterviz.sweep import run_sweep

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
VOLATILE = ("seconds", "versions")  # metrics.json fields that differ between equal runs


def _ctrl_c_works() -> None:
    """In the child before it runs Python: Ctrl-C does what it does at a terminal. A suite started in the
    background by a non-interactive shell (`.ci/run &`) inherits SIGINT ignored, and so would the child, which
    would then finish instead of stopping."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sweep_config(folder: Path, model_path: str) -> Path:
    """6 jobs (3 conv layers x 2 seeds) of 4 filters in chunks of 2: a few seconds of work in all."""
    keys = "input_range: '0:255'\nlayers: all-conv\nfilters: '0:4'\nsize: 16\nsteps: 30\nchunk: 2\n"
    return write_sweep(folder, "k", model_path, keys)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model_path) -> tuple[Path, float]:
    """An uninterrupted run of the sweep (in this process): its folder and its wall time."""
    cfg = load_config(_sweep_config(tmp_path_factory.mktemp("reference"), model_path))
    t0 = time.perf_counter()
    run_sweep(cfg, quiet=True)
    return cfg.root, time.perf_counter() - t0


def _metrics(path: Path) -> dict:
    meta = json.loads(path.read_text())
    return {k: v for k, v in meta.items() if k not in VOLATILE}


def _assert_same_outputs(root: Path, ref: Path) -> None:
    """Every job folder of `root` holds exactly the files and values of the uninterrupted run's."""
    jobs = sorted(p.name for p in ref.iterdir() if p.is_dir())
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == jobs
    for job in jobs:
        a, b = root / job, ref / job
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir()), job
        with np.load(a / "images.npz") as za, np.load(b / "images.npz") as zb:
            assert sorted(za.files) == sorted(zb.files)
            for key in zb.files:
                np.testing.assert_array_equal(za[key], zb[key], err_msg=f"{job}: {key}")
        assert (a / "grid.png").read_bytes() == (b / "grid.png").read_bytes(), job
        assert (a / "config.yaml").read_bytes() == (b / "config.yaml").read_bytes(), job
        assert _metrics(a / "metrics.json") == _metrics(b / "metrics.json"), job


def _hidden(folder: Path) -> list[Path]:
    """Temp files (.name.XXXX.tmp) and probes: anything whose name starts with a dot."""
    return [p for p in folder.rglob(".*")]


def _finished(cfg) -> dict[str, int]:
    """Finished job id -> the mtime of its metrics.json."""
    return {j.id: (cfg.root / j.id / "metrics.json").stat().st_mtime_ns
            for j in plan_jobs(cfg) if job_finished(j, cfg.root, cfg.name)}


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path, model_path, reference):
    ref, ref_seconds = reference
    cfg = load_config(_sweep_config(tmp_path, model_path))
    manifest = cfg.root / "manifest.json"
    cmd = [sys.executable, "-m", "filterviz", "sweep", str(cfg.path), "--quiet"]
    rng = random.Random(6)
    kills, finished, runs = 0, {}, 0
    while True:
        runs += 1
        assert runs <= 10, "the sweep never completed"
        stamp = manifest.stat().st_mtime_ns if manifest.exists() else None
        proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kills < 3:
            # wait until this run starts its first unfinished job (it rewrites the manifest), then kill it at a
            # random moment within about the next half of the whole sweep's work
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                if manifest.exists() and manifest.stat().st_mtime_ns != stamp:
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.5) * ref_seconds)
            if proc.poll() is None:
                proc.kill()
                kills += 1
        _, err = proc.communicate(timeout=300)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err.decode()
        now = _finished(cfg)
        assert all(now[k] == v for k, v in finished.items())  # a finished job is never redone
        finished = now
    assert kills >= 1
    assert all(_finished(cfg)[k] == v for k, v in finished.items())
    _assert_same_outputs(cfg.root, ref)
    assert not _hidden(cfg.root.parent), "temp files left behind"
    rows = json.loads(manifest.read_text())["jobs"]
    assert {r["status"] for r in rows} <= {"done", "skipped"}
    assert sum(r["status"] == "skipped" for r in rows) == len(finished)


def test_sigint_stops_sweep_with_summary_and_rerun_resumes(tmp_path, model_path, reference, capsys):
    ref, _ = reference
    cfg = load_config(_sweep_config(tmp_path, model_path))
    cmd = [sys.executable, "-m", "filterviz", "sweep", str(cfg.path), "--quiet"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_ctrl_c_works)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not list(cfg.root.glob("*/metrics.json")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)  # after the first job: mid-sweep
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1 and not out, err.decode()
    done = _finished(cfg)
    assert 1 <= len(done) < 6
    assert re.match(rf"filterviz: interrupted: sweep 'k': {len(done)} of 6 jobs finished", lines[0]), lines[0]
    assert not _hidden(cfg.root.parent), "temp files left behind"
    rows = {r["id"]: r["status"] for r in json.loads((cfg.root / "manifest.json").read_text())["jobs"]}
    assert {k for k, v in rows.items() if v == "done"} == set(done)
    assert main(["sweep", str(cfg.path), "--quiet"]) == 0  # the re-run, in this process
    assert f"{len(done)} already done" in capsys.readouterr().out
    assert all(_finished(cfg)[k] == v for k, v in done.items())
    _assert_same_outputs(cfg.root, ref)
    assert not _hidden(cfg.root.parent)


def test_interrupt_inside_a_sweep_job_keeps_its_finished_filters(tmp_path, model_path, reference, monkeypatch):
    """Ctrl-C after the first chunk of the third job: that job is saved partial, and the re-run finishes it."""
    from filterviz import results
    from filterviz.errors import Interrupted

    ref, _ = reference
    cfg = load_config(_sweep_config(tmp_path, model_path))
    real = results.render_plan
    calls: list[tuple[int, int]] = []  # (filters already done, filters asked for) per call
    fired: list[bool] = []

    def render_plan(*args, **kwargs):
        done = kwargs.get("done")
        calls.append((0 if done is None else len(done.filters), len(args[0].filters)))
        if len(calls) == 3 and not fired:
            keep = kwargs["on_chunk"]

            def on_chunk(part):  # the chunk is finished, then Ctrl-C
                keep(part)
                fired.append(True)
                raise KeyboardInterrupt

            kwargs["on_chunk"] = on_chunk
        return real(*args, **kwargs)

    monkeypatch.setattr(results, "render_plan", render_plan)
    with pytest.raises(Interrupted) as e:
        run_sweep(cfg, quiet=True)
    job = plan_jobs(cfg)[2]
    assert str(e.value).startswith(f"sweep 'k': 2 of 6 jobs finished; job '{job.id}': 2 of 4 filters of layer "
                                   f"'{job.layer}' finished, saved in {cfg.root / job.id}/ (partial)")
    meta = json.loads((cfg.root / job.id / "metrics.json").read_text())
    assert meta["complete"] is False and [r["filter"] for r in meta["filters"]] == [0, 1]
    assert job_finished(job, cfg.root, cfg.name) is None
    rows = {r["id"]: r["status"] for r in json.loads((cfg.root / "manifest.json").read_text())["jobs"]}
    assert rows[job.id] == "interrupted" and not _hidden(cfg.root)

    calls.clear()
    report = run_sweep(cfg, quiet=True)
    assert len(report.skipped) == 2 and calls[0] == (2, 4)  # the partial job renders only its 2 other filters
    _assert_same_outputs(cfg.root, ref)


def test_sigint_during_layer_saves_partial_then_resumes(tmp_path, model_path, capsys):
    """Ctrl-C in `filterviz layer`: the finished filters are saved, marked partial; a re-run renders the rest."""
    out, ref = tmp_path / "o", tmp_path / "ref"
    args = ["layer", "conv2", "--model", model_path, "--input-range", "0:255", "--preset", "fast", "--chunk", "1",
            "--steps", "100", "--size", "16"]
    proc = subprocess.Popen([sys.executable, "-m", "filterviz", *args, "--out", str(out)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_ctrl_c_works)
    seen = b""
    while True:  # watch the progress bar; press Ctrl-C once 2 of the 12 filters are done (the bar shows a
        chunk = os.read(proc.stderr.fileno(), 4096)  # running filter's share, rounded: "3" is at least 2.5 done)
        seen += chunk
        counts = re.findall(rb"(\d+)/12 \[", seen)
        if not chunk or (counts and int(counts[-1]) >= 3):
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    err = (seen + rest).decode()
    assert proc.returncode == 130, err
    messages = [line for line in err.splitlines() if line.strip() and not line.startswith("conv2:")]
    assert len(messages) == 1, err  # the one-line summary (besides the progress bar)
    meta = json.loads((out / "metrics.json").read_text())
    n = len(meta["filters"])
    assert meta["complete"] is False and 2 <= n < 12
    assert messages[0] == (f"filterviz: interrupted: {n} of 12 filters of layer 'conv2' finished, saved in {out}/ "
                           "(partial); run the same command again to resume")
    with np.load(out / "images.npz") as z:
        assert z["filters"].tolist() == [r["filter"] for r in meta["filters"]] and len(z["images"]) == n
    assert (out / "grid.png").is_file() and not _hidden(out)

    # what a re-run may resume from: only the same request and settings
    from filterviz.settings import preset

    settings = preset("fast", size=16, steps=100, chunk=1)
    assert read_partial(out, meta["request"], settings).filters.tolist() == meta["request"]["filters"][:n]
    assert read_partial(out, meta["request"], settings.replace(steps=99)) is None
    assert read_partial(out, dict(meta["request"], filters=[0, 1]), settings) is None
    older = tmp_path / "older"  # the same settings, pictures of an older filterviz: not resumed from
    shutil.copytree(out, older)
    (older / "metrics.json").write_text(json.dumps(dict(meta, picture_version=meta["picture_version"] - 1)))
    assert read_partial(older, meta["request"], settings) is None

    assert main([*args, "--out", str(out), "--quiet"]) == 0  # the re-run renders only the rest
    assert "12 filters in" in (said := capsys.readouterr().out) and f"({n} already done)" in said
    assert main([*args, "--out", str(ref), "--quiet"]) == 0  # uninterrupted
    capsys.readouterr()
    with np.load(out / "images.npz") as za, np.load(ref / "images.npz") as zb:
        for key in zb.files:
            np.testing.assert_array_equal(za[key], zb[key], err_msg=key)
    assert (out / "grid.png").read_bytes() == (ref / "grid.png").read_bytes()
    done, whole = _metrics(out / "metrics.json"), _metrics(ref / "metrics.json")
    assert done["complete"] is True and done == whole
    assert not _hidden(out)
