"""Sweeps on Ray: the same arrays as the serial sweep, a worker killed mid-job, a bad cluster address.

One local Ray cluster with 2 CPUs serves the module (started by the `cluster` fixture, shut down at the end);
the jobs are tiny (the conftest model, 16 px, a few steps).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_sweep

from filterviz import sweep
from filterviz.cli import main
from filterviz.config import load_config
from filterviz.sweep import run_sweep

ray = pytest.importorskip("ray")


def _config(folder: Path, model_path: str, extra: str = "") -> Path:
    """4 jobs (2 layers x 2 seeds) of 4 filters in chunks of 2."""
    keys = "layers: [conv1, conv3]\nfilters: '0:4'\nsize: 16\nsteps: 6\nsegment: 3\nchunk: 2\n"
    return write_sweep(folder, "r", model_path, keys, extra)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with 2 CPUs for this module; the sweep joins it (Ray is initialized here)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # _dies_once runs on the workers
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def serial(tmp_path_factory, tiny_path) -> Path:
    """The sweep run the ordinary way, in this process: the reference."""
    cfg = load_config(_config(tmp_path_factory.mktemp("serial"), tiny_path))
    run_sweep(cfg, quiet=True)
    return cfg.root


def _assert_same_arrays(root: Path, ref: Path) -> None:
    jobs = sorted(p.name for p in ref.iterdir() if p.is_dir())
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == jobs and len(jobs) == 4
    for job in jobs:
        with np.load(root / job / "images.npz") as za, np.load(ref / job / "images.npz") as zb:
            assert sorted(za.files) == sorted(zb.files)
            for key in zb.files:
                np.testing.assert_array_equal(za[key], zb[key], err_msg=f"{job}: {key}")
        assert (root / job / "grid.png").read_bytes() == (ref / job / "grid.png").read_bytes(), job
        assert (root / job / "config.yaml").read_bytes() == (ref / job / "config.yaml").read_bytes(), job
        meta = json.loads((root / job / "metrics.json").read_text())
        assert meta["complete"] is True and meta["precision"] in ("float32", "mixed_bfloat16")
    assert not list(root.rglob("*.tmp"))


def test_ray_sweep_makes_the_serial_arrays(cluster, serial, tmp_path, tiny_path):
    cfg = load_config(_config(tmp_path, tiny_path, "executor: ray\n"))
    report = run_sweep(cfg, quiet=True)
    assert len(report.rendered) == 4 and not report.skipped
    _assert_same_arrays(cfg.root, serial)
    rows = json.loads((cfg.root / "manifest.json").read_text())["jobs"]
    assert [r["status"] for r in rows] == ["done"] * 4
    again = run_sweep(cfg, quiet=True)  # finished jobs are skipped, as in the serial sweep
    assert not again.rendered and len(again.skipped) == 4


def _dies_once(cfg, job, **kwargs):
    """sweep.run_job, except that the first attempt of job 1 kills its own worker after its first chunk."""
    marker = Path(cfg.root) / f"killed-{job.index}"
    if job.index == 1 and not marker.exists():
        from filterviz import results

        marker.write_text(str(os.getpid()))
        real = results.render_plan

        def render_and_die(plan, **kw):
            kw["on_chunk"] = lambda part: os.kill(os.getpid(), signal.SIGKILL)
            return real(plan, **kw)

        results.render_plan = render_and_die  # in the worker, which dies mid-job
    return sweep_run_job(cfg, job, **kwargs)


sweep_run_job = sweep.run_job


def test_killed_worker_is_retried_and_the_sweep_completes(cluster, serial, tmp_path, tiny_path, monkeypatch):
    cfg = load_config(_config(tmp_path, tiny_path))
    monkeypatch.setattr(sweep, "run_job", _dies_once)
    report = run_sweep(cfg, quiet=True, executor="ray")
    killed = cfg.root / "killed-1"
    assert killed.is_file() and int(killed.read_text()) != os.getpid()  # a worker died mid-job
    assert len(report.rendered) == 4
    killed.unlink()
    _assert_same_arrays(cfg.root, serial)


@pytest.mark.parametrize("address, shown", [("not an address", "bad Ray address 'not an address'"),
                                            ("127.0.0.1:1", "cannot reach a Ray cluster at '127.0.0.1:1'")])
def test_bad_address_is_one_line(tmp_path, tiny_path, capsys, address, shown):
    cfg = _config(tmp_path, tiny_path)
    assert main(["sweep", str(cfg), "--ray", address, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and shown in err, err
    assert not (tmp_path / "out").exists()  # failed before any work
