"""Dataset examples: the streaming top-k against brute force, resume after Ctrl-C, unreadable files, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_tiny_cnn
from PIL import Image

from filterviz.errors import Interrupted, UserError
from filterviz.examples import find_examples, image_dataset, list_images
from filterviz.models import feature_extractor, load_model
from filterviz.receptive import receptive_field

SIZE = 24


@pytest.fixture(scope="module")
def tiny():
    return load_model(make_tiny_cnn())


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """14 images of mixed sizes and formats in nested folders, plus a text file that is not an image."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    for n in range(14):
        h, w = int(rng.integers(20, 60)), int(rng.integers(20, 60))
        smooth = np.cumsum(rng.normal(0, 18, (h, w, 3)), axis=1) + 128
        sub = root / ("a" if n % 3 else "b/c")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8)).save(sub / f"img{n:02d}.{'png' if n % 2 else 'jpg'}")
    (root / "notes.txt").write_text("not an image")
    return root


def _brute_force(lm, layer: str, root, k: int):
    """Every image's whole feature map at once; per filter the top-k images by their max (ties: earlier file)."""
    files = list_images(root)
    images = np.concatenate([b[0].numpy() for b in image_dataset(root, files, SIZE, 3, 64)])
    maps = feature_extractor(lm, layer, pre_activation=False).model(images.astype(np.float32)).numpy()
    n, h, w, f = maps.shape
    flat = maps.reshape(n, h * w, f)
    best, where = flat.max(axis=1), flat.argmax(axis=1)  # [n,F]
    rows = []
    for c in range(f):
        order = sorted(range(n), key=lambda i: (-best[i, c], i))[:k]
        rows.append([(files[i], [int(where[i, c] // w), int(where[i, c] % w)], float(best[i, c])) for i in order])
    return rows, images


def _rows(meta):
    return [[(e["file"], e["position"], e["activation"]) for e in r["examples"]] for r in meta["filters"]]


def test_streaming_top_k_equals_brute_force(tiny, folder, tmp_path):
    meta = find_examples(tiny, "conv3", folder, tmp_path, k=4, batch=3, size=SIZE)
    want, images = _brute_force(tiny, "conv3", folder, 4)
    got = _rows(meta)
    assert [[(f, p) for f, p, _ in r] for r in got] == [[(f, p) for f, p, _ in r] for r in want]
    np.testing.assert_allclose([[a for *_, a in r] for r in got], [[a for *_, a in r] for r in want], rtol=1e-5)
    assert meta["complete"] and meta["processed"] == 14 and meta["unreadable"] == []
    z = np.load(tmp_path / "examples.npz")
    rf = receptive_field(tiny, "conv3", SIZE)
    assert z["patches"].shape == (6, 4, 10, 10, 3) and z["patches"].dtype == np.uint8
    files = list_images(folder)
    for f in range(6):
        for s in range(4):
            top, left, bottom, right = z["boxes"][f, s]
            assert (top, left, bottom, right) == rf.box(*z["positions"][f, s])
            image = images[files.index(meta["files"][z["file_index"][f, s]])]
            span = rf.span(z["positions"][f, s][None])[0]
            inside = z["patches"][f, s][top - span[0]: bottom - span[0], left - span[1]: right - span[1]]
            np.testing.assert_array_equal(inside, image[top:bottom, left:right])  # the patch is the field
    assert (tmp_path / "examples.png").is_file()


def test_resume_after_interrupt_gives_the_same_result(tiny, folder, tmp_path):
    whole = find_examples(tiny, "conv2", folder, tmp_path / "whole", k=3, batch=4, size=SIZE)
    calls = []

    def stop(state):
        calls.append(state.processed)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="8 of 14 images"):
        find_examples(tiny, "conv2", folder, tmp_path / "part", k=3, batch=4, size=SIZE, on_batch=stop)
    part = json.loads((tmp_path / "part" / "examples.json").read_text())
    assert part["complete"] is False and part["processed"] == 8
    seen = []
    resumed = find_examples(tiny, "conv2", folder, tmp_path / "part", k=3, batch=4, size=SIZE,
                            on_batch=lambda s: seen.append(s.processed))
    assert seen == [12, 14]  # only the files not processed before
    assert resumed["complete"] and _rows(resumed) == _rows(whole)
    a, b = np.load(tmp_path / "whole" / "examples.npz"), np.load(tmp_path / "part" / "examples.npz")
    for key in ("patches", "activations", "positions", "boxes", "file_index"):
        np.testing.assert_array_equal(a[key], b[key])


def test_unreadable_files_are_skipped_and_counted(tiny, folder, tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    for p in sorted(folder.rglob("*.png"))[:4]:
        (root / p.name).write_bytes(p.read_bytes())
    (root / "broken.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
    (root / "empty.png").write_bytes(b"")
    (root / "zz_truncated.png").write_bytes((root / "img01.png").read_bytes()[:60])
    meta = find_examples(tiny, "conv1", root, tmp_path / "out", k=2, batch=2, size=16)
    assert meta["unreadable"] == ["broken.jpg", "empty.png", "zz_truncated.png"]
    assert meta["complete"] and meta["processed"] == 7
    used = {e["file"] for r in meta["filters"] for e in r["examples"]}
    assert used and used <= {p.name for p in sorted(folder.rglob("*.png"))[:4]}


def test_fewer_images_than_k_leave_empty_slots(tiny, folder, tmp_path):
    root = tmp_path / "two"
    root.mkdir()
    for p in sorted(folder.rglob("*.jpg"))[:2]:
        (root / p.name).write_bytes(p.read_bytes())
    meta = find_examples(tiny, "conv1", root, tmp_path / "out", k=3, size=16)
    assert all(len(r["examples"]) == 2 for r in meta["filters"])
    z = np.load(tmp_path / "out" / "examples.npz")
    assert np.isnan(z["activations"][:, 2]).all() and (z["file_index"][:, 2] == -1).all()


def test_empty_folder_is_a_user_error(tiny, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(UserError, match="no images in '.*empty'"):
        find_examples(tiny, "conv1", tmp_path / "empty", tmp_path / "out")
    with pytest.raises(UserError, match="does not exist"):
        find_examples(tiny, "conv1", tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(UserError, match="bad k 0"):
        find_examples(tiny, "conv1", tmp_path / "empty", tmp_path / "out", k=0)


def test_cli(tiny_path, folder, tmp_path, capsys, monkeypatch):
    from filterviz.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["examples", "conv2", "--images", str(folder), "--model", tiny_path, "--k", "2", "--size", "16",
                 "--quiet"]) == 0
    out = tmp_path / "outputs" / "tiny" / "conv2" / "examples"
    assert sorted(p.name for p in out.iterdir()) == ["examples.json", "examples.npz", "examples.png"]
    assert "top 2 of 14 images for 12 filters" in capsys.readouterr().out
    (tmp_path / "none").mkdir()
    assert main(["examples", "conv2", "--images", str(tmp_path / "none"), "--model", tiny_path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no images in" in err and "none" in err
    assert main(["examples", "conv2", "--images", str(folder), "--model", tiny_path, "--batch", "0"]) == 2


def test_tf_data_decodes_like_the_brute_force_path(folder):
    files = list_images(folder)
    a = np.concatenate([b[0].numpy() for b in image_dataset(folder, files, SIZE, 3, 5)])
    b = np.concatenate([x[0].numpy() for x in image_dataset(folder, files, SIZE, 3, 64)])
    assert a.shape == (14, SIZE, SIZE, 3) and np.array_equal(a, b)
    assert tf.reduce_max(a).numpy() > 0
