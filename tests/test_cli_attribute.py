"""`filterviz attribute` end to end, and every user error it can meet (one line, exit 2, nothing written)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from conftest import make_tiny_cnn
from PIL import Image

from filterviz.cli import main
from filterviz.errors import UserError
from filterviz.images import read_image


@pytest.fixture(scope="module")
def gray_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "gray.keras"
    make_tiny_cnn(channels=1).save(path)
    return str(path)


@pytest.fixture
def pictures(tmp_path):
    rng = np.random.RandomState(0)
    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.fromarray((rng.rand(30, 40, 3) * 255).astype(np.uint8)).save(a)
    Image.fromarray((rng.rand(20, 20) * 255).astype(np.uint8)).save(b)  # grayscale JPEG into an RGB model
    return [str(a), str(b)]


def _huge_png(path, w=50000, h=50000):
    """A PNG whose header claims w x h pixels (the pixels themselves are never needed)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b""))
    return path


def test_attribute_end_to_end(tiny_path, pictures, tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["attribute", *pictures, "--model", tiny_path, "--method", "saliency,guided,deconvnet,smoothgrad,"
               "gradient_x_input", "--target", "class:2", "--size", "24", "--samples", "4", "--out", str(out)])
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    for stem in ("a", "b"):
        assert f"{stem}_class2.npz" in names
        for m in ("saliency", "guided", "deconvnet", "smoothgrad", "gradient_x_input"):
            assert f"{stem}_class2_{m}.png" in names and f"{stem}_class2_{m}_overlay.png" in names
    assert "methods_class2.png" in names and len(names) == 2 * 11 + 1
    z = np.load(out / "a_class2.npz")
    assert z["raw_guided"].shape == (24, 24, 3) and z["heat_smoothgrad"].shape == (24, 24)
    assert z["image"].shape == (24, 24, 3) and list(z["methods"])[0] == "saliency"
    assert Image.open(out / "a_class2_guided_overlay.png").size == (24, 24)
    assert "tiny class 2" in capsys.readouterr().out


def test_attribute_layer_target_and_grayscale(gray_path, pictures, tmp_path):
    out = tmp_path / "g"
    assert main(["attribute", pictures[0], "--model", gray_path, "--method", "guided", "--target", "layer:conv2:3",
                 "--size", "16", "--out", str(out)]) == 0
    z = np.load(out / "a_conv2-f3.npz")
    assert z["raw_guided"].shape == (16, 16, 1) and z["image"].shape == (16, 16, 1)


@pytest.mark.parametrize(
    "case, words",
    [
        ("missing", ["nope.png", "does not exist"]),
        ("garbage", ["junk.png", "could not be decoded"]),
        ("huge", ["huge.png", "too large"]),
        ("class", ["class index 9", "0 to 3"]),
        ("method", ["guidd", "guided"]),
        ("target", ["pixel:3", "class:N"]),
        ("filter", ["filter index 40", "0 to 11"]),
        ("layer", ["conv7", "conv1"]),
    ],
)
def test_errors_one_line_exit_2_nothing_written(case, words, tiny_path, pictures, tmp_path, capsys):
    images, method, target = [pictures[0]], "saliency", "class:1"
    if case == "missing":
        images = [str(tmp_path / "nope.png")]
    elif case == "garbage":
        (tmp_path / "junk.png").write_bytes(b"this is not an image")
        images = [str(tmp_path / "junk.png")]
    elif case == "huge":
        images = [str(_huge_png(tmp_path / "huge.png"))]
    elif case == "class":
        target = "class:9"
    elif case == "method":
        method = "saliency,guidd"
    elif case == "target":
        target = "pixel:3"
    elif case == "filter":
        target = "layer:conv2:40"
    elif case == "layer":
        target = "layer:conv7"
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(["attribute", *images, "--model", tiny_path, "--method", method, "--target", target,
                               "--size", "16", "--out", str(out)]))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    assert not out.exists()


def test_no_relu_guided_is_user_error(tmp_path, pictures, capsys):
    import keras

    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(3, 3, activation="tanh", name="c")(inp)
    path = tmp_path / "tanh.keras"
    keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))).save(path)
    out = tmp_path / "o"
    assert main(["attribute", pictures[0], "--model", str(path), "--method", "guided", "--target", "class:0",
                 "--out", str(out)]) == 2
    assert "no ReLU" in capsys.readouterr().err and not out.exists()


def test_class_target_without_classifier_explains(tmp_path, pictures, capsys):
    import keras

    inp = keras.Input((None, None, 3))
    path = tmp_path / "fcn.keras"
    keras.Model(inp, keras.layers.Conv2D(3, 3, activation="relu", name="c")(inp)).save(path)
    out = tmp_path / "o"
    assert main(["attribute", pictures[0], "--model", str(path), "--target", "class:0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "classifier" in err and "layer:NAME" in err and not out.exists()


def test_read_image_bounds(tmp_path):
    with pytest.raises(UserError, match="too large"):
        read_image(_huge_png(tmp_path / "h.png", 9000, 9000), max_pixels=50_000_000)
    p = tmp_path / "rgba.png"
    Image.fromarray(np.tile(np.uint8([200, 100, 50, 128]), (5, 7, 1))).save(p)
    rgb = read_image(p)
    assert rgb.shape == (5, 7, 3) and (rgb == [200, 100, 50]).all()  # alpha dropped, colours kept
    grey = read_image(p, (3, 4), channels=1)
    assert grey.shape == (3, 4, 1) and (grey == 124).all()  # luma 0.299 R + 0.587 G + 0.114 B = 124.2
