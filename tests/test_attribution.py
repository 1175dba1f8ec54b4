"""Attribution: the seed matrices exactly, swapped clones that leave the user's model alone, compiled methods."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_tiny_cnn

from filterviz import attribution as A
from filterviz import heatmaps, targets
from filterviz.settings import ATTRIBUTION_METHODS
from filterviz.errors import UserError

# Seed 000: feature_out, grad and the three expected results.
FEATURE_OUT = np.array([[1, -1, 5], [2, -5, -7], [-3, 2, 4]], np.float32)
GRAD = np.array([[-2, 3, -1], [6, -3, 1], [2, -1, 3]], np.float32)
EXPECTED = {
    "backprop": np.array([[-2, 0, -1], [6, 0, 0], [0, -1, 3]], np.float32),
    "deconvnet": np.array([[0, 3, 0], [6, 0, 1], [2, 0, 3]], np.float32),
    "guided": np.array([[0, 0, 0], [6, 0, 0], [0, 0, 3]], np.float32),
}


def _rule_grad(rule, x, dy, max_value=None):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = A.relu_rule(rule, max_value)(x)
    return y.numpy(), tape.gradient(y, x, output_gradients=tf.constant(dy)).numpy()


@pytest.mark.parametrize("rule", A.RULES)
def test_seed000_matrices_exact(rule):
    y, g = _rule_grad(rule, FEATURE_OUT, GRAD)
    np.testing.assert_array_equal(y, np.maximum(FEATURE_OUT, 0))
    np.testing.assert_array_equal(g, EXPECTED[rule])


def test_relu6_gates_at_max_value():
    x = np.array([-1.0, 0.5, 5.0, 6.0, 7.0], np.float32)
    dy = np.ones_like(x)
    for rule in A.RULES:
        y, g = _rule_grad(rule, x, dy, 6.0)
        np.testing.assert_array_equal(y, np.clip(x, 0, 6))
        assert g[3] == 0 and g[4] == 0 and g[2] == 1  # saturated units pass nothing back
    assert _rule_grad("deconvnet", x, dy, 6.0)[1][0] == 1  # deconvnet ignores the forward sign


def test_unknown_rule():
    with pytest.raises(UserError, match="guided"):
        A.relu_rule("guidded")


def test_seed002_conv_gradient_exact():
    inp = keras.Input((4, 4, 1))
    conv = keras.layers.Conv2D(1, 3, padding="same", use_bias=False, name="conv")
    model = keras.Model(inp, conv(inp))
    conv.set_weights([np.ones((3, 3, 1, 1), np.float32)])
    att = A.Attributor(model)
    g = att(np.ones((1, 4, 4, 1), np.float32), "saliency", targets.layer_target("conv", 0, (1, 1)))
    expected = np.array([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]], np.float32)
    np.testing.assert_array_equal(g[0, ..., 0], expected)


def _relu_layers_nested() -> keras.Model:
    """ReLU layers (one ReLU6), an Activation('relu') and a nested sub-model; a softmax classifier on top."""
    keras.utils.set_random_seed(1)
    inner_in = keras.Input((None, None, 8))
    y = keras.layers.Conv2D(8, 3, padding="same")(inner_in)
    y = keras.layers.ReLU(max_value=6.0)(y)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(y)
    inner = keras.Model(inner_in, y, name="inner")
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.ReLU(name="relu_a")(x)
    x = inner(x)
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.Activation("relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inp, out, name="nested")


def test_swap_counts_every_kind_and_keeps_outputs():
    model = _relu_layers_nested()
    images = np.random.RandomState(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    clone, n = A.swap_relus(model, "guided")
    assert n == 4  # ReLU, ReLU6, conv activation='relu' (nested), Activation('relu')
    np.testing.assert_allclose(clone(images).numpy(), model(images).numpy(), rtol=1e-6, atol=1e-7)
    linear, _ = A.swap_relus(model, "guided", linear_output=True)
    assert not np.allclose(linear(images).numpy().sum(axis=1), 1.0)  # logits, not probabilities


def test_guided_differs_from_saliency_and_model_untouched():
    model = _relu_layers_nested()
    weights = [w.copy() for w in model.get_weights()]
    images = np.random.RandomState(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    before = model(images).numpy()
    layer_acts = [l.activation for l in model.layers if hasattr(l, "activation")]
    att = A.Attributor(model)
    sal = att(images, "saliency", targets.class_target(1))
    gui = att(images, "guided", targets.class_target(1))
    dec = att(images, "deconvnet", targets.class_target(1))
    assert np.abs(sal).max() > 0 and np.abs(gui).max() > 0
    assert not np.allclose(sal, gui) and not np.allclose(gui, dec)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    np.testing.assert_array_equal(model(images).numpy(), before)
    assert [l.activation for l in model.layers if hasattr(l, "activation")] == layer_acts
    assert model.get_layer("inner").layers[2].__class__ is keras.layers.ReLU


def test_no_relu_is_a_user_error():
    inp = keras.Input((8, 8, 3))
    model = keras.Model(inp, keras.layers.Conv2D(2, 3, activation="tanh")(inp))
    with pytest.raises(UserError, match="no ReLU"):
        A.swap_relus(model, "guided")
    att = A.Attributor(model)
    with pytest.raises(UserError, match="no ReLU"):
        att(np.zeros((1, 8, 8, 3), np.float32), "guided", targets.layer_target(model.layers[-1].name))
    x = tf.ones((1, 8, 8, 3))
    sal = att(x.numpy(), "saliency", targets.layer_target(model.layers[-1].name))
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_mean(model(x))  # a layer target: the mean of its whole map, through the tanh
    assert sal.shape == (1, 8, 8, 3)
    np.testing.assert_allclose(sal, tape.gradient(score, x).numpy(), rtol=1e-5, atol=1e-9)


def test_class_target_is_the_logit():
    model = _relu_layers_nested()
    images = np.random.RandomState(1).uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
    logits_model = A.swap_relus(model, "backprop", linear_output=True)[0]
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = logits_model(x)[:, 2]
    expected = tape.gradient(score, x).numpy()
    got = A.Attributor(model)(images, "saliency", targets.class_target(2))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)


def test_methods_batched_compiled_once_and_index_is_a_tensor():
    model = make_tiny_cnn()
    images = np.random.RandomState(0).uniform(0, 255, (5, 16, 16, 3)).astype(np.float32)
    att = A.Attributor(model, batch=2)
    for m in ATTRIBUTION_METHODS:
        for k in range(3):
            out = att(images, m, targets.class_target(k))
            assert out.shape == images.shape and np.isfinite(out).all()
            assert (np.abs(out).max(axis=(1, 2, 3)) > 0).all(), (m, k)  # a map for every image
    att(images, "guided", targets.layer_target("conv2", 1))
    att(images, "guided", targets.layer_target("conv2", 7))
    att(images, "guided", targets.layer_target("conv2", 3, (2, 3)))
    att(images, "guided", targets.layer_target("conv2", 4, (5, 1)))
    att(images[:1, :12, :12], "guided", targets.layer_target("conv2"))
    att(images[:, :12, :12], "guided", targets.layer_target("conv2"))
    assert set(att.traces.values()) == {1}, att.traces
    assert att.calls[("saliency", "class", None)] == 9  # 3 calls x ceil(5 / 2) batches
    # batching does not change the maps
    single = A.Attributor(model, batch=1)(images, "guided", targets.class_target(1))
    np.testing.assert_allclose(single, att(images, "guided", targets.class_target(1)), rtol=1e-5, atol=1e-9)


def test_smoothgrad_is_one_batched_call():
    model = make_tiny_cnn()
    images = np.random.RandomState(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    att = A.Attributor(model, samples=16, batch=8)
    sg = att(images, "smoothgrad", targets.class_target(0))
    key = ("smoothgrad", "class", None)
    assert att.calls[key] == 1 and att.traces[key] == 1  # 2 images x 16 copies: one compiled call
    # the model runs once per trace, on all 32 copies at once
    fn = att.functions[key]
    graph = fn.get_concrete_function().graph
    assert sum(op.type == "Conv2D" for op in graph.get_operations()) == 3
    # with no noise SmoothGrad is the plain gradient
    quiet = A.Attributor(model, samples=16, noise=0.0)(images, "smoothgrad", targets.class_target(0))
    sal = att(images, "saliency", targets.class_target(0))
    np.testing.assert_allclose(quiet, sal, rtol=1e-4, atol=1e-9)
    assert not np.allclose(sg, sal)


def test_gradient_x_input():
    model = make_tiny_cnn()
    images = np.random.RandomState(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    att = A.Attributor(model)
    np.testing.assert_allclose(att(images, "gradient_x_input", targets.class_target(1)),
                               att(images, "saliency", targets.class_target(1)) * images, rtol=1e-5, atol=1e-9)


def test_grayscale_model():
    model = make_tiny_cnn(channels=1)
    x = tf.fill((1, 12, 12, 1), 100.0)
    out = A.attribute(model, x.numpy(), ["saliency", "guided"], "class:0")
    assert out["guided"].shape == (1, 12, 12, 1) and np.abs(out["guided"]).max() > 0
    with tf.GradientTape() as tape:
        tape.watch(x)
        logit = model(x)[:, 0]
    np.testing.assert_allclose(out["saliency"], tape.gradient(logit, x).numpy(), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(
    "target, words",
    [
        (targets.class_target(4), ["class index 4", "0 to 3"]),
        (targets.layer_target("conv9"), ["conv9", "conv2"]),
        (targets.layer_target("conv2", 12), ["filter index 12", "0 to 11"]),
        (targets.layer_target("conv2", 1, (16, 0)), ["y=16", "16x16"]),
        (targets.layer_target("logits", 0), ["logits", "feature map"]),
    ],
)
def test_bad_targets(target, words):
    att = A.Attributor(make_tiny_cnn())
    with pytest.raises(UserError) as e:
        att(np.zeros((1, 16, 16, 3), np.float32), "saliency", target)
    for w in words:
        assert w in str(e.value)


def test_class_target_needs_classifier():
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(4, 3, activation="relu")(inp))
    with pytest.raises(UserError, match="classifier"):
        A.Attributor(model)(np.zeros((1, 8, 8, 3), np.float32), "saliency", targets.class_target(0))


@pytest.mark.parametrize("text", ["class:", "class:x", "layer:", "layer:a:b", "pixel:3", "layer:a:1@2", "class:-1"])
def test_parse_target_errors(text):
    with pytest.raises(UserError):
        targets.parse_target(text)


def test_parse_target_and_methods():
    assert targets.parse_target("class:7") == targets.class_target(7)
    assert targets.parse_target("layer:block5_conv3:12") == targets.layer_target("block5_conv3", 12)
    assert targets.parse_target("layer:c:2@3,4").position == (3, 4)
    assert targets.parse_target("layer:c").index is None
    assert targets.parse_methods("guided,saliency,guided") == ["guided", "saliency"]
    with pytest.raises(UserError, match="smoothgrad"):
        targets.parse_methods("smoothgard")


def test_heatmap_colorize_overlay():
    raw = np.zeros((2, 4, 5, 3), np.float32)
    raw[0, 1, 2, 1] = -3.0
    raw[1] = 1.0
    h = heatmaps.heatmap(raw)
    assert h.shape == (2, 4, 5) and h[0, 1, 2] == 1.0 and h[0].sum() == 1.0 and np.allclose(h[1], 1.0)
    c = heatmaps.colorize(h)
    assert c.dtype == np.uint8 and c.shape == (2, 4, 5, 3) and c[0, 0, 0].tolist() == [0, 0, 4]
    o = heatmaps.overlay(np.full((4, 5, 3), 200, np.uint8), h[0])
    assert o.shape == (4, 5, 3) and o.dtype == np.uint8
