"""The user's own model: BN after convs, separable convs, grey and 4-channel inputs, nested backbones, Dense
logits, subclassed models through a callable, input ranges and preprocessing, and every mistake a user can make."""

from __future__ import annotations

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

import filterviz
from filterviz.cli import main
from filterviz.errors import UserError
from filterviz.inputs import parse_input_range
from filterviz.models import (
    callable_model,
    feature_extractor,
    load_model,
    visual_layers,
)
from filterviz.render import prepare_render, render_plan

FAST = filterviz.preset("fast", size=16, steps=12)


def bn_net(channels: int = 3, negative: bool = True, separable: bool = False) -> keras.Model:
    """conv -> BN (scale negated) -> ReLU -> (separable) conv -> BN -> relu -> GAP -> Dense softmax."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((None, None, channels), name="image")
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=False, name="c1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU(name="r1")(x)
    conv = keras.layers.SeparableConv2D if separable else keras.layers.Conv2D
    x = conv(5, 3, padding="same", name="c2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.Activation("relu", name="a2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, activation="softmax", name="pred")(x)
    net = keras.Model(inp, out, name="bnnet")
    if negative:
        bn = net.get_layer("bn1")
        gamma, beta, mean, var = bn.get_weights()
        bn.set_weights([-np.abs(gamma) - 0.5, beta, mean + 0.1, var])
    return net


def test_conv_before_bn_is_maximized_through_it():
    net = bn_net()
    lm = load_model(net, input_range="0:1")
    ex = feature_extractor(lm, "c1")
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    want = keras.Model(net.inputs, net.get_layer("bn1").output)(x / 255.0)
    np.testing.assert_allclose(ex.model(x), want, rtol=1e-4, atol=1e-5)
    assert ex.head is None  # the one-filter fast path computes the raw conv: off here
    post = feature_extractor(lm, "c1", pre_activation=False)
    np.testing.assert_allclose(post.model(x), np.maximum(want, 0), rtol=1e-4, atol=1e-5)
    result = render_plan(prepare_render(lm, "c1", None, FAST))
    assert not any(r["dead"] for r in result.metrics)  # negative BN scale: the raw conv's pictures die


def test_separable_and_activation_units():
    lm = load_model(bn_net(separable=True), input_range=(-1, 1))
    units = {i.name: i.unit for i in visual_layers(lm)}
    assert units["c2"].startswith("through bn2") and "a2" in units["c2"]
    assert units["r1"].startswith("its input") and units["pred"] == "logits (softmax skipped)"
    result = render_plan(prepare_render(lm, "c2", None, FAST))
    assert result.images.shape == (5, 16, 16, 3) and not any(r["dead"] for r in result.metrics)
    a2 = feature_extractor(lm, "a2").model(np.full((1, 8, 8, 3), 100.0, "float32")).numpy()
    assert a2.min() < 0  # the activation's input, not its output


@pytest.mark.parametrize("channels,tile", [(1, (16, 16, 1)), (4, (16, 32, 3))])
def test_grey_and_four_channel_models(channels, tile, tmp_path):
    lm = load_model(bn_net(channels=channels), input_range="0:1")
    result = render_plan(prepare_render(lm, "c1", "0:4", FAST.replace(labels=False)))
    assert result.images.shape == (4, 16, 16, channels) and result.display.shape[-1] == channels
    # 2x2 tiles with a 2-pixel margin; a 4-channel tile is its RGB beside its 4th channel in grey
    assert result.grid.shape == (2 * tile[0] + 6, 2 * tile[1] + 6, tile[2])
    filterviz.save_layer(result, tmp_path)
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").mode == ("L" if channels == 1 else "RGB")


def test_nested_backbone_is_addressed_and_rendered():
    inner = bn_net(negative=False)
    outer = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1.0 / 255, name="to_unit"), inner,
                              keras.layers.Dense(2, name="head")], name="outer")
    names = [i.name for i in visual_layers(outer)]
    assert "bnnet/c1" in names and "bnnet/pred" in names and "head" in names
    calls = len(inner.get_layer("c1")._inbound_nodes)
    result = render_plan(prepare_render(outer, "bnnet/c2", "0:3", FAST))
    assert result.layer == "bnnet/c2" and result.images.shape == (3, 16, 16, 3)
    assert len(inner.get_layer("c1")._inbound_nodes) == calls  # the user's layers were not called again
    with pytest.raises(UserError, match="unknown layer 'bnnet/nope'"):
        feature_extractor(outer, "bnnet/nope")


def test_dense_logits_before_the_softmax():
    net = bn_net()
    ex = feature_extractor(net, "pred")
    x = np.random.default_rng(1).uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    logits = ex.model(x).numpy()
    assert logits.shape == (3, 1, 1, 4)
    probs = net(x).numpy()
    np.testing.assert_allclose(tf.nn.softmax(logits[:, 0, 0]).numpy(), probs, rtol=1e-4, atol=1e-6)
    assert np.ptp(logits) > 0 and net.get_layer("pred").activation.__name__ == "softmax"  # unchanged


def test_subclassed_model_through_a_callable():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(3, 3, padding="same")

        def call(self, x):
            return self.conv(x / 255.0)

    keras.utils.set_random_seed(0)
    net = Net()
    net(np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(UserError, match="subclassed"):
        visual_layers(net)
    result = render_plan(prepare_render(callable_model(net), None, None, FAST))
    assert result.images.shape == (3, 16, 16, 3) and not any(r["dead"] for r in result.metrics)


def test_preprocess_wraps_without_changing_the_model():
    net = bn_net()
    lm = load_model(net, preprocess="tf")
    assert lm.input_range == (0.0, 255.0) and lm.net is net and lm.network_range == (-1.0, 1.0)
    x = np.random.default_rng(2).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(lm.model(x), net(x / 127.5 - 1.0), rtol=1e-5, atol=1e-6)
    torch = load_model(net, preprocess="torch").front(x).numpy()
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(torch, (x / 255.0 - mean) / std, rtol=1e-4, atol=1e-4)


def test_no_retracing_warnings_over_many_layers(caplog):
    lm = load_model(bn_net(), input_range="0:1")
    layers = ["c1", "bn1", "r1", "c2", "bn2", "a2", "pred", "c1"]
    with caplog.at_level(logging.WARNING):
        for layer in layers:
            render_plan(prepare_render(lm, layer, "0:2", FAST.replace(steps=2)))
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


@pytest.fixture
def saved_model(tmp_path) -> str:
    path = tmp_path / "mine.keras"
    bn_net(channels=1).save(path)
    return str(path)


@pytest.mark.parametrize("args,words", [
    (["--input-range", "1:0"], "bad input range '1:0'"),
    (["--input-range", "0:x"], "bad input range '0:x'"),
    (["--preprocess", "keras"], "unknown preprocess 'keras': valid: none, caffe, torch, tf"),
    (["--preprocess", "caffe"], "preprocess 'caffe' needs an RGB (3-channel) model"),
    (["--input-range", "0:1", "--preprocess", "tf"], "give one of --input-range and --preprocess"),
])
def test_bad_inputs_one_line_nothing_written(saved_model, tmp_path, capsys, args, words):
    out = tmp_path / "out"
    assert main(["layer", "c1", "--model", saved_model, "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("filterviz: error: ") and words in err[-1]
    assert not out.exists()


def test_layer_with_no_units_and_channel_counts(saved_model, tmp_path, capsys):
    assert main(["layer", "gap", "--model", saved_model, "--input-range", "0:1", "--out", str(tmp_path / "o")]) == 2
    assert "layer 'gap' has no filters" in capsys.readouterr().err
    two = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(UserError, match="takes 2-channel images; .* 1 \\(grey\\), 3 \\(RGB\\) or 4"):
        load_model(two)
    assert parse_input_range([-1, 1]) == (-1.0, 1.0)


def test_cli_file_model_end_to_end(saved_model, tmp_path, capsys, caplog):
    out = tmp_path / "render"
    assert main(["layer", "c1", "--model", saved_model, "--input-range", "0:1", "--size", "24", "--steps", "8",
                 "--out", str(out), "--quiet"]) == 0
    import json

    meta = json.loads((out / "metrics.json").read_text())
    assert meta["network_range"] == [0.0, 1.0] and meta["preprocess"] == "none" and meta["summary"]["dead"] == 0
    assert main(["layer", "pred", "--model", saved_model, "--filters", "0:2", "--size", "16", "--steps", "4",
                 "--out", str(tmp_path / "p"), "--quiet"]) == 0
    err = capsys.readouterr().err  # the warning goes to the 'filterviz' logger: stderr outside pytest
    assert caplog.text.count("assumed to take pixels in 0-255") == 1 and "softmax is skipped" in err
    assert main(["layers", "--model", saved_model, "--input-range", "0:1"]) == 0
    text = capsys.readouterr().out
    assert "grey 0-1" in text and "through bn1" in text and "logits (softmax skipped)" in text
    assert main(["layers", "--model", saved_model, "--input-range", "-1:1"]) == 0  # not taken for an option
    assert "grey -1-1" in capsys.readouterr().out


def test_attribute_layer_target_behind_a_front(saved_model, tmp_path):
    from PIL import Image

    from filterviz.attribution import Attributor
    from filterviz.targets import parse_target

    net = keras.models.load_model(saved_model, compile=False)
    x = np.random.default_rng(3).uniform(0, 255, (2, 12, 12, 1)).astype("float32")
    got = Attributor(load_model(net, input_range="0:1"))(x, "saliency", parse_target("layer:c1:0"))
    unit = tf.constant(x / 255.0)
    with tf.GradientTape() as tape:
        tape.watch(unit)
        score = tf.reduce_sum(tf.reduce_mean(keras.Model(net.inputs, net.get_layer("c1").output)(unit)[..., 0],
                                             axis=[1, 2]))
    want = tape.gradient(score, unit).numpy() / 255.0  # the maps are per 0-255 pixel, through the front
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9)
    assert np.abs(want).max() > 0
    image = tmp_path / "digit.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (20, 20), dtype=np.uint8)).save(image)
    out = tmp_path / "att"
    assert main(["attribute", str(image), "--model", saved_model, "--input-range", "0:1", "--target",
                 "layer:c1:0", "--method", "saliency", "--size", "16", "--out", str(out)]) == 0
    assert (out / "digit_c1-f0_saliency.png").is_file()


@pytest.mark.parametrize("command, error", [
    (["layer", "nope"], "unknown layer 'nope'"),
    (["attribute", "IMAGE", "--target", "class:7"], "class index 7 is out of range"),
    (["examples", "c1", "--images", "MISSING"], "does not exist"),
])
def test_bad_request_of_a_model_file_is_one_line(saved_model, tmp_path, command, error):
    """A model file without a stated range gets its "0-255 is assumed" line only once the command's own checks
    pass: a bad request is the one error line, nothing more, and nothing is written."""
    import subprocess
    import sys

    from PIL import Image

    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp_path / "x.png")
    command = [str(tmp_path / "x.png") if c == "IMAGE" else str(tmp_path / "missing") if c == "MISSING" else c
               for c in command]
    out = tmp_path / "out"
    quiet = [] if command[0] == "attribute" else ["--quiet"]
    run = subprocess.run([sys.executable, "-m", "filterviz", *command, "--model", saved_model, "--out", str(out),
                          *quiet], capture_output=True, text=True, timeout=300)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith("filterviz: error: ") and error in lines[0] and not out.exists()


def test_snapshots_of_a_unit_range_model(tmp_path):
    """FilterSnapshots(input_range=(0, 1)) handles the model as load_model does: 0-255 pictures and photos go
    through a front, so the photo statistics are those of the network on [0, 1] photos."""
    from filterviz import metrics
    from filterviz.callbacks import FilterSnapshots

    net = bn_net(negative=False)
    net.compile("adam", "sparse_categorical_crossentropy")
    x = np.random.default_rng(5).uniform(0, 1, (8, 16, 16, 3)).astype("float32")
    cb = FilterSnapshots("c2", out_dir=tmp_path, filters="0:3", input_range=(0, 1),
                         settings=filterviz.preset("fast", size=16, steps=8))
    net.fit(x, np.arange(8) % 4, epochs=1, batch_size=8, verbose=0, callbacks=[cb])
    lm = cb.plan.model
    assert lm.net is net and lm.network_range == (0.0, 1.0) and lm.input_range == (0.0, 255.0)
    crops = metrics.photo_crops(16, 3, flips=False)[:6]
    raw = keras.Model(net.inputs, net.get_layer("a2").output)  # c2 is measured after bn2 and a2
    np.testing.assert_allclose(cb.plan.post.model(crops), raw(crops / 255.0), rtol=1e-4, atol=1e-5)
    frames = [np.asarray(f, float) for f in cb.frames]
    assert len(frames) == 2 and all(f.std() > 5 for f in frames)  # pictures, not flat tiles


def test_conv_then_activation_layer_is_measured_after_it():
    keras.utils.set_random_seed(2)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, name="c")(inp)
    out = keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25), shared_axes=[1, 2], name="p")(x)
    net = keras.Model(inp, out)
    assert {i.name: i.unit for i in visual_layers(net)}["c"] == "measured after p"
    x = np.random.default_rng(6).uniform(0, 255, (2, 9, 9, 3)).astype("float32")
    raw = keras.Model(net.inputs, net.get_layer("c").output)(x).numpy()
    ex = feature_extractor(net, "c")
    np.testing.assert_allclose(ex.model(x), raw, rtol=1e-5, atol=1e-4)  # maximized on the conv's output
    assert ex.head is not None  # so the one-filter fast path still applies
    post = feature_extractor(net, "c", pre_activation=False).model(x).numpy()
    np.testing.assert_allclose(post, np.where(raw > 0, raw, 0.25 * raw), rtol=1e-5, atol=1e-4)
