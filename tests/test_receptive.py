"""Receptive fields from layer geometry, checked against the support of d unit / d input."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_tiny_cnn

from filterviz.errors import UserError
from filterviz.receptive import receptive_field


def _conv(x, k, s=1, d=1, padding="same", name=None):
    return keras.layers.Conv2D(1, k, strides=s, dilation_rate=d, padding=padding, use_bias=False,
                               kernel_initializer="ones", name=name)(x)


def _chain(padding: str) -> keras.Model:
    """Ones-weight linear convs (no cancellation) with stride 2, dilation 2 and a max-pool."""
    inp = keras.Input((None, None, 1))
    x = _conv(inp, 3, padding=padding)
    x = _conv(x, 3, s=2, padding=padding)
    x = _conv(x, 3, d=2, padding=padding)
    x = keras.layers.MaxPooling2D(2, padding=padding)(x)
    x = _conv(x, 3, padding=padding, name="target")
    return keras.Model(inp, x)


def _branchy() -> keras.Model:
    """A ResNet-like stem: zero padding, a valid stride-2 conv, then two paths (3x3 twice, 1x1) added."""
    inp = keras.Input((None, None, 1))
    x = keras.layers.ZeroPadding2D(((2, 1), (1, 2)))(inp)
    x = _conv(x, 5, s=2, padding="valid")
    a = _conv(_conv(x, 3), 3)
    b = _conv(x, 1, s=1)
    x = keras.layers.Add()([a, b])
    x = _conv(x, 3, s=2, name="target")
    return keras.Model(inp, x)


def _support_box(model: keras.Model, size: tuple[int, int], i: int, j: int) -> tuple[int, int, int, int]:
    """Bounding box (bottom/right exclusive) of where d unit(i,j) / d input is nonzero for any of 96 random inputs.

    Max-pooling passes the gradient to one unit per window, so one input does not reach every pixel; sparse
    bright pixels on a dim background make every unit of a window win for some input (even border units,
    which sum fewer pixels)."""
    rng = np.random.default_rng(0)
    x = 1e-3 + (rng.random((96, *size, 1)) < 0.03) * rng.uniform(1.0, 2.0, (96, *size, 1))
    x = tf.constant(x, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x)
        unit = tf.reduce_sum(y[:, i, j, 0])
    g = np.abs(tape.gradient(unit, x).numpy()).sum(axis=(0, 3))
    rows, cols = np.nonzero(g)
    return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1


@pytest.mark.parametrize("build, size", [
    (lambda: _chain("same"), (29, 26)),
    (lambda: _chain("same"), (32, 32)),
    (lambda: _chain("valid"), (37, 40)),
    (_branchy, (23, 30)),
])
def test_box_equals_gradient_support(build, size):
    model = build()
    rf = receptive_field(model, "target", size)
    h, w = model(np.zeros((1, *size, 1), np.float32)).shape[1:3]
    assert rf.map_size == (h, w)
    checked = {(0, 0), (h - 1, w - 1), (h // 2, w // 2), (0, w - 1), (h - 1, 0), (1, min(2, w - 1))}
    for i, j in sorted(checked):
        assert rf.box(i, j) == _support_box(model, size, i, j), (i, j)


def test_tiny_cnn_numbers():
    rf = receptive_field(make_tiny_cnn(), "conv3", 32)
    assert rf.size == (10, 10) and rf.map_size == (16, 16)
    assert rf.box(0, 0) == (0, 0, 6, 6)  # unit i sees pixels 2i-4 .. 2i+5, clipped at the top-left corner
    assert rf.box(5, 6) == (6, 8, 16, 18)
    np.testing.assert_array_equal(rf.boxes(np.asarray([[5, 6], [15, 15]])), [[6, 8, 16, 18], [26, 26, 32, 32]])
    np.testing.assert_array_equal(rf.span(np.asarray([[0, 0]])), [[-4, -4, 6, 6]])


def test_vgg16_known_sizes():
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(None, None, 3))
    assert receptive_field(vgg, "block1_conv2", 224).size == (5, 5)
    assert receptive_field(vgg, "block3_conv3", 224).size == (40, 40)
    assert receptive_field(vgg, "block5_conv3", 224).size == (196, 196)
    assert receptive_field(vgg, "block5_pool", 224).size == (212, 212)


def test_global_gate_sees_the_whole_image():
    """A squeeze-excite gate (global pooling, reshaped, multiplied in) makes every unit see the whole image."""
    inp = keras.Input((None, None, 3))
    x = _conv(inp, 3)
    gate = keras.layers.Reshape((1, 1, 1))(keras.layers.GlobalAveragePooling2D()(x))
    gated = keras.layers.Multiply()([x, gate])
    out = _conv(gated, 3, name="target")
    rf = receptive_field(keras.Model(inp, out), "target", 16)
    assert rf.whole and rf.size == (16, 16) and rf.box(3, 3) == (0, 0, 16, 16)
    keep = keras.layers.Multiply(name="kept")([x, keras.layers.GlobalAveragePooling2D(keepdims=True)(x)])
    assert receptive_field(keras.Model(inp, keep), "kept", 16).whole


def test_user_errors():
    model = make_tiny_cnn()
    with pytest.raises(UserError, match="unknown layer 'conv9'"):
        receptive_field(model, "conv9", 32)
    with pytest.raises(UserError, match="no feature map"):
        receptive_field(model, "logits", 32)
    inp = keras.Input((None, None, 1))
    up = keras.layers.UpSampling2D(name="up")(_conv(inp, 3))
    with pytest.raises(UserError, match="UpSampling2D"):
        receptive_field(keras.Model(inp, _conv(up, 3, name="t")), "t", 16)
    flat = keras.layers.Reshape((-1, 4, 1), name="flat")(_conv(inp, 3))
    with pytest.raises(UserError, match="reshapes a feature map"):
        receptive_field(keras.Model(inp, _conv(flat, 3, name="t2")), "t2", 16)


@pytest.mark.parametrize("build", [lambda: _chain("same"), _branchy])
def test_public_fallback_gives_the_same_field(build, monkeypatch):
    """The walk through the graph without the private `_keras_history` (graphs.tensor_call's fallback)."""
    import functools

    from filterviz import graphs, receptive

    model = build()
    layer = model.layers[-1].name
    private = receptive_field(model, layer, 32)
    monkeypatch.setattr(receptive, "tensor_call", functools.partial(graphs.tensor_call, private=False))
    public = receptive_field(model, layer, 32)
    assert public == private and private.rows and private.cols  # a bounded field, found both ways


def test_model_with_an_input_range_front_has_the_networks_field(tiny_cnn):
    """A model loaded with an input range (a rescaling front before the user's network) is addressed by the
    network's own layer names, and the front does not change the geometry."""
    from filterviz.models import load_model

    wrapped = receptive_field(load_model(tiny_cnn, input_range=(0, 1)), "conv2", 32)
    assert wrapped == receptive_field(tiny_cnn, "conv2", 32)


@pytest.mark.parametrize("private", [None, False])
def test_extractor_of_a_fronted_model_has_the_units_field(tiny_cnn, private, monkeypatch):
    """The render's extractor of a model with an input-range front nests the network's path to the layer as one
    layer; its field is that of the unit (`auto` needs it), found with and without the private node API."""
    import functools

    from filterviz import graphs, receptive
    from filterviz.models import feature_extractor, load_model

    monkeypatch.setattr(receptive, "call_output", functools.partial(graphs.call_output, private=private))
    ex = feature_extractor(load_model(tiny_cnn, input_range=(0, 1)), "conv2", pre_activation=True)
    assert isinstance(ex.model.layers[-1], keras.Model)  # the nested path, whose own `output` is its inner graph's
    assert receptive_field(ex.model, ex.model.layers[-1].name, 32).size == receptive_field(tiny_cnn, "conv2", 32).size
