"""Interval bounds (filterviz.bounds): sound over the input box, exact for one conv, and a unit whose upper bound
is below zero never fires."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from filterviz import bounds

BOX = (-1.0, 1.0)


def _inputs(n: int, shape: tuple, seed: int = 0) -> np.ndarray:
    """n inputs in BOX: half uniform, half at the box's corners (where a piecewise-linear net's extremes lie)."""
    rng = np.random.default_rng(seed)
    uniform = rng.uniform(*BOX, (n // 2, *shape))
    corners = np.where(rng.random((n - n // 2, *shape)) < 0.5, *BOX)
    return np.concatenate([uniform, corners]).astype("float32")


def _prelu_net() -> keras.Model:
    """conv (valid) -> PReLU with a negative slope on one channel -> max-pool -> conv (same): unit 0 of the first
    conv and unit 0 of the second have biases far below anything their weights can add; the others are random."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((10, 10, 2))
    c1 = keras.layers.Conv2D(3, 3, name="c1")
    p1 = keras.layers.PReLU(shared_axes=[1, 2], name="p1")
    c2 = keras.layers.Conv2D(4, 2, padding="same", name="c2")
    net = keras.Model(inp, c2(keras.layers.MaxPooling2D(2)(p1(c1(inp)))))
    c1.set_weights([c1.get_weights()[0], np.array([-10.0, 0.0, 0.1], "float32")])
    p1.set_weights([np.array([[[0.2, -0.3, 0.1]]], "float32")])
    c2.set_weights([c2.get_weights()[0], np.array([-50.0, 0.0, 0.5, -0.2], "float32")])
    return net


def test_bounds_hold_every_input_in_the_box():
    """No input of the box (uniform or at its corners) gets out of the bounds, at either conv."""
    net = _prelu_net()
    x = _inputs(512, (10, 10, 2))
    for upto in ("c1", "c2"):
        model = keras.Model(net.inputs[0], net.get_layer(upto).output)
        lo, hi = bounds.output_bounds(model, BOX)
        y = model(x).numpy()
        assert (y.max(axis=(0, 1, 2)) <= hi + 1e-5).all() and (y.min(axis=(0, 1, 2)) >= lo - 1e-5).all()


def test_a_unit_with_a_negative_bound_never_fires_and_one_with_a_positive_bound_does():
    net = _prelu_net()
    hi = bounds.output_bounds(net, BOX)[1]
    dead = bounds.provably_dead(net, BOX)
    assert dead.tolist() == [True, False, False, False] and hi[0] < 0 < hi[1]
    y = net(_inputs(512, (10, 10, 2), seed=1)).numpy().max(axis=(0, 1, 2))
    assert y[0] < 0  # never fires
    assert (y[1:] > 0).all()  # the units with a positive bound fire on some input of the box


def test_one_conv_is_bounded_exactly():
    """Straight on the input the interval bound is reached: the box's top where a weight is positive, its bottom
    where it is negative."""
    net = _prelu_net()
    model = keras.Model(net.inputs[0], net.get_layer("c1").output)
    lo, hi = bounds.output_bounds(model, BOX)
    kernel, bias = net.get_layer("c1").get_weights()
    for f in range(3):
        x = np.zeros((1, 10, 10, 2), "float32")
        x[0, :3, :3] = np.where(kernel[..., f] > 0, *BOX[::-1])
        np.testing.assert_allclose(model(x).numpy()[0, 0, 0, f], hi[f], rtol=1e-5)
        np.testing.assert_allclose(hi[f], bias[f] + np.abs(kernel[..., f]).sum(), rtol=1e-5)
        np.testing.assert_allclose(lo[f], bias[f] - np.abs(kernel[..., f]).sum(), rtol=1e-5)


def test_batchnorm_separable_depthwise_and_dense_are_bounded_soundly():
    """A negative BatchNorm scale swaps the bounds; separable and depthwise convs with zero padding; a Dense head."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.SeparableConv2D(4, 3, padding="same")(keras.layers.Rescaling(2.0, -1.0)(inp))
    bn = keras.layers.BatchNormalization()
    h = keras.layers.ReLU()(bn(h))
    h = keras.layers.DepthwiseConv2D(3, strides=2, activation="tanh")(h)
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h))
    net = keras.Model(inp, out)
    _, beta, mean, var = bn.get_weights()
    bn.set_weights([np.array([-2.0, 1.0, 0.5, -0.7], "float32"), beta + 0.3, mean + 0.1, var + 0.5])
    lo, hi = bounds.output_bounds(net, (0.0, 1.0))
    x = (_inputs(256, (8, 8, 3), seed=2) + 1.0) / 2.0
    y = net(x).numpy()
    assert (y.max(axis=0) <= hi + 1e-5).all() and (y.min(axis=0) >= lo - 1e-5).all()


def test_what_cannot_be_bounded_is_refused():
    inp = keras.Input((6, 6, 1))
    a = keras.layers.Conv2D(2, 3, padding="same")(inp)
    with pytest.raises(ValueError, match="not a chain"):
        bounds.output_bounds(keras.Model(inp, keras.layers.Add()([a, inp])), BOX)
    with pytest.raises(ValueError, match="gelu"):
        bounds.output_bounds(keras.Model(inp, keras.layers.Activation("gelu")(a)), BOX)
    with pytest.raises(ValueError, match="size"):
        anysize = keras.Input((None, None, 1))
        bounds.output_bounds(keras.Model(anysize, keras.layers.Conv2D(1, 1)(anysize)), BOX)
