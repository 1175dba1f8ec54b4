"""The sweep runner: deterministic jobs, shards and resume (kills and Ctrl-C: test_interrupt.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from filterviz import results
from filterviz.cli import main
from filterviz.config import load_config
from filterviz.errors import UserError
from filterviz.jobs import parse_shard, plan_jobs, shard_jobs
from filterviz.sweep import run_sweep


def _config(tmp_path: Path, model_path: str, extra: str = "") -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(
        f"name: s\nmodel: {model_path}\nlayers: all-conv\nfilters: '0:3'\nsize: 16\nsteps: 2\nsegment: 2\n"
        f"output: {tmp_path / 'out'}\nsweep:\n  seed: [0, 1]\n{extra}"
    )
    return p


def test_job_list_is_deterministic_and_readable(tmp_path, model_path):
    cfg = load_config(_config(tmp_path, model_path))
    a = [j.id for j in plan_jobs(cfg)]
    assert a == [j.id for j in plan_jobs(cfg)]
    assert a[:2] == ["tiny__conv1__seed-0", "tiny__conv1__seed-1"] and len(a) == 6


def test_shards_cover_the_list_exactly(tmp_path, model_path):
    jobs = plan_jobs(load_config(_config(tmp_path, model_path)))
    one, two = shard_jobs(jobs, *parse_shard("1/2")), shard_jobs(jobs, *parse_shard("2/2"))
    assert sorted(j.index for j in one + two) == list(range(len(jobs)))
    assert not {j.id for j in one} & {j.id for j in two}
    for bad in ("0/2", "3/2", "1-2", "x"):
        with pytest.raises(UserError, match="bad shard"):
            parse_shard(bad)


def test_bad_layer_glob_names_line(tmp_path, model_path):
    p = _config(tmp_path, model_path).read_text().replace("layers: all-conv", "layers: [conv1, blk*]")
    (tmp_path / "g.yaml").write_text(p)
    with pytest.raises(UserError, match=r"g\.yaml:3: key 'layers'.*blk\*"):
        plan_jobs(load_config(tmp_path / "g.yaml"), __import__("filterviz.jobs").jobs.ModelCache())


def test_rerun_skips_finished_and_redoes_unfinished(tmp_path, model_path, monkeypatch):
    cfg = load_config(_config(tmp_path, model_path))
    calls = []
    real = results.render_plan
    monkeypatch.setattr(results, "render_plan", lambda *a, **k: calls.append(a[0].layer) or real(*a, **k))
    first = run_sweep(cfg, quiet=True)
    assert len(first.rendered) == 6 and len(calls) == 6
    assert (cfg.root / "manifest.json").is_file()
    second = run_sweep(cfg, quiet=True)
    assert len(second.rendered) == 0 and len(second.skipped) == 6 and len(calls) == 6
    # a job killed mid-way: metrics.json missing and a temp file left behind
    job = cfg.root / first.jobs[3].id
    (job / "metrics.json").unlink()
    (job / ".grid.png.abc.tmp").write_bytes(b"half")
    third = run_sweep(cfg, quiet=True)
    assert [j.id for j in third.rendered] == [first.jobs[3].id] and len(calls) == 7
    assert not list(cfg.root.rglob("*.tmp"))
    forced = run_sweep(cfg, quiet=True, force=True, shard=(2, 2))
    assert len(forced.rendered) == 3 and (cfg.root / "manifest.shard-2-of-2.json").is_file()


def test_dry_run_writes_nothing(tmp_path, model_path, capsys):
    cfg_path = _config(tmp_path, model_path)
    assert main(["sweep", str(cfg_path), "--dry-run", "--shard", "1/2"]) == 0
    out = capsys.readouterr().out
    assert "tiny__conv1__seed-0" in out and "tiny__conv1__seed-1" not in out
    assert not (tmp_path / "out").exists()
    assert main(["sweep", str(cfg_path), "--shard", "3/2"]) == 2


def test_examples_job_kind_and_gallery(tmp_path, model_path):
    """`examples:` gives each layer its top dataset patches, `gallery: true` a site over renders and examples;
    a re-run resumes both (nothing rendered or streamed again)."""
    from test_gallery import make_crops

    make_crops(tmp_path / "photos", 12)
    extra = f"examples:\n  images: {tmp_path / 'photos'}\n  k: 3\n  size: 32\ngallery: true\n"
    cfg = load_config(_config(tmp_path, model_path, extra).rename(tmp_path / "e.yaml"))
    said: list[str] = []
    run_sweep(cfg, quiet=True, echo=said.append)
    for layer in ("conv1", "conv2", "conv3"):
        meta = __import__("json").loads((cfg.root / "examples" / f"tiny__{layer}" / "examples.json").read_text())
        assert meta["complete"] and meta["k"] == 3 and len(meta["files"]) == 12
    pages = list((cfg.root / "gallery").rglob("*.html"))
    assert (cfg.root / "gallery" / "index.html").is_file() and len(pages) > 3
    assert any("gallery of 3 layers" in line for line in said)
    again = run_sweep(cfg, quiet=True, echo=said.append)
    assert len(again.skipped) == 6 and not again.rendered


def test_examples_folder_must_exist(tmp_path, model_path):
    with pytest.raises(UserError, match=r"key 'examples.images'.*nowhere"):
        load_config(_config(tmp_path, model_path, f"examples:\n  images: {tmp_path / 'nowhere'}\n"))
