"""`filterviz layer` and `filterviz layers` end to end, and every user error they can meet."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from filterviz.cli import main
from filterviz.models import DEFAULT_MODEL as MODELS_DEFAULT
from filterviz.settings import DEFAULT_MODEL


def test_default_model_constant_matches():
    assert DEFAULT_MODEL == MODELS_DEFAULT


def test_layer_end_to_end(tiny_path, tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["layer", "conv2", "--model", tiny_path, "--filters", "0:5", "--size", "24", "--steps", "6",
               "--out", str(out), "--quiet"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["grid.png", "images.npz", "metrics.json"]
    meta = json.loads((out / "metrics.json").read_text())
    assert [r["filter"] for r in meta["filters"]] == [0, 1, 2, 3, 4]
    assert meta["seed"] == 0 and "tensorflow" in meta["versions"]
    z = np.load(out / "images.npz")
    assert z["images"].shape == (5, 24, 24, 3) and z["filters"].tolist() == [0, 1, 2, 3, 4]
    from PIL import Image

    assert Image.open(out / "grid.png").size[0] > 24 * 2
    assert "5 filters" in capsys.readouterr().out


def test_layers_lists_filters(tiny_path, capsys):
    assert main(["layers", "--model", tiny_path]) == 0
    text = capsys.readouterr().out
    assert "conv1" in text and "conv3" in text and "gap" not in text
    assert "logits" in text  # Dense units are listed (rendered on their logits)


def test_default_output_dir(tiny_path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["layer", "conv1", "--model", tiny_path, "--filters", "0", "--size", "16", "--steps", "2",
                 "--quiet"]) == 0
    assert (tmp_path / "outputs" / "tiny" / "conv1" / "grid.png").is_file()


@pytest.mark.parametrize(
    "args, words",
    [
        (["layer", "conv2", "--model", "nosuchnet"], ["nosuchnet", "vgg16-hed"]),
        (["layer", "conv2", "--model", "missing.keras"], ["missing.keras", "does not exist"]),
        (["layer", "conv22", "--model", "{tiny}"], ["conv22", "conv2"]),
        (["layer", "gap", "--model", "{tiny}"], ["gap", "no filters"]),
        (["layer", "conv2", "--model", "{tiny}", "--filters", "12"], ["12", "0 to 11"]),
        (["layer", "conv2", "--model", "{tiny}", "--size", "0"], ["size", "0"]),
        (["layer", "conv2", "--model", "{tiny}", "--steps", "-1"], ["steps", "-1"]),
        (["layer", "conv2", "--model", "{tiny}", "--steps", "ten"], ["steps", "ten"]),
        (["layer", "conv2", "--model", "{tiny}", "--preset", "best"], ["best", "fast"]),
    ],
)
def test_errors_one_line_exit_2_nothing_written(args, words, tiny_path, tmp_path, capsys):
    out = tmp_path / "o"
    args = [a.replace("{tiny}", tiny_path) for a in args] + ["--out", str(out), "--quiet"]
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(args))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for w in words:
        assert w in err
    assert not out.exists()


def test_corrupt_model_file(tmp_path, capsys):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"not a zip at all")
    assert main(["layers", "--model", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "broken.keras" in err and len(err.splitlines()) == 1


def test_unwritable_output_dir(tiny_path, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["layer", "conv1", "--model", tiny_path, "--out", str(blocker / "sub"), "--quiet"]) == 2
    assert "not writable" in capsys.readouterr().err


def test_console_entry_points():
    """`python -m filterviz --version` works and does not need TensorFlow to start."""
    r = subprocess.run([sys.executable, "-m", "filterviz", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("filterviz ")
    r = subprocess.run([sys.executable, "-c", "import sys, filterviz.cli; filterviz.cli._parser(); "
                        "print('tensorflow' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False"


def test_model_file_with_code_needs_unsafe(tmp_path, capsys):
    """A Lambda layer runs code when loaded: refused (one line naming the file and --unsafe), unless --unsafe."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3), name="rgb")
    x = keras.layers.Lambda(lambda t: t / 127.5 - 1.0, name="scale")(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    path = tmp_path / "coded.keras"
    keras.Model(inp, x, name="coded").save(path)
    out = tmp_path / "o"
    args = ["layer", "conv", "--model", str(path), "--size", "16", "--steps", "2", "--out", str(out), "--quiet"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"model file '{path}'" in err and "contains code" in err and "--unsafe" in err
    assert not out.exists()
    assert main(args + ["--unsafe"]) == 0
    assert "4 filters" in capsys.readouterr().out and (out / "grid.png").is_file()


def test_render_options_reach_the_settings():
    import argparse

    from filterviz.cli.layer import add_parser, settings_from_args

    sub = argparse.ArgumentParser().add_subparsers()
    add_parser(sub)
    args = sub.choices["layer"].parse_args(
        ["conv2", "--preset", "maco", "--coarse", "0.5", "--specificity", "2", "--mirrored", "--precision", "float32"]
    )
    s = settings_from_args(args)
    assert (s.coarse, s.specificity, s.mirrored, s.precision, s.param) == (0.5, 2.0, True, "float32", "maco")
