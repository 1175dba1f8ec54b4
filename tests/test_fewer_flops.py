"""Doing fewer FLOPs for the same picture: the single-channel head and coarse-to-fine steps."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from filterviz import objectives
from filterviz.ascent import LayerRenderer
from filterviz.settings import RenderSettings
from filterviz.errors import UserError
from filterviz.models import channel_head, feature_extractor

SMALL = RenderSettings(size=24, steps=8, lr=5.0, segment=4, chunk=5)


def conv_net(**conv_kwargs) -> keras.Model:
    keras.utils.set_random_seed(1)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.Conv2D(7, activation="relu", name="target", **conv_kwargs)(x)
    return keras.Model(inp, x)


@pytest.mark.parametrize(
    "conv",
    [
        dict(kernel_size=3, padding="same"),
        dict(kernel_size=3, padding="valid", strides=2),
        dict(kernel_size=(3, 5), padding="same", dilation_rate=2),
        dict(kernel_size=1, use_bias=False),
    ],
    ids=["same", "valid-stride2", "dilated-3x5", "1x1-nobias"],
)
@pytest.mark.parametrize("pre", [True, False], ids=["pre", "post"])
def test_head_maps_equal_the_full_layer(conv, pre):
    net = conv_net(**conv)
    ex = feature_extractor(net, "target", pre_activation=pre)
    assert ex.head is not None
    x = tf.random.stateless_uniform([5, 21, 21, 3], [0, 1], 0, 255)
    filters = tf.constant([6, 0, 3, 3, 1])
    full = tf.gather(ex.model(x), filters, axis=3, batch_dims=1)
    head = ex.head.maps(ex.head.trunk(x), filters)
    np.testing.assert_allclose(head.numpy(), full.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pre", [True, False], ids=["pre", "post"])
def test_single_channel_render_equals_full_layer_render(tiny_cnn, pre):
    settings = SMALL.replace(pre_activation=pre)
    ex = feature_extractor(tiny_cnn, "conv2", pre_activation=pre)
    fast = LayerRenderer(ex, settings)
    full = LayerRenderer(ex, settings, single_channel=False)
    assert fast.single_channel and not full.single_channel
    a, b = fast.render(range(12)), full.render(range(12))
    np.testing.assert_allclose(a.trace, b.trace, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a.images, b.images, rtol=1e-4, atol=1e-2)


def test_head_only_where_it_is_exact(tiny_cnn):
    """No head for layers that are not plain convolutions, nor for objectives that read other filters."""
    assert channel_head(tiny_cnn, "pool") is None
    assert feature_extractor(tiny_cnn, "pool").head is None
    ex = feature_extractor(tiny_cnn, "conv2")
    mean_all = objectives.Objective(lambda c: tf.reduce_mean(c.features, axis=[1, 2, 3]), "all filters")
    assert not LayerRenderer(ex, SMALL, objective=objectives.channel() + 0.1 * mean_all).single_channel
    assert LayerRenderer(ex, SMALL, objective=objectives.channel() - 0.1 * objectives.total_variation()).single_channel


def test_coarse_steps_raise_activation_with_two_traces(tiny_cnn):
    settings = SMALL.replace(coarse=0.5, steps=12)
    r = LayerRenderer(feature_extractor(tiny_cnn, "conv2"), settings)
    assert r.segments == [(0, 4, True), (4, 2, True), (6, 4, False), (10, 2, False)]
    out = r.render(range(12))
    assert r.traces == 2  # one compiled loop per resolution, for every chunk
    assert out.images.shape == (12, 24, 24, 3)
    assert np.all(out.scores > out.trace[:, 0])
    r.render([3])
    assert r.traces == 2


@pytest.mark.parametrize("field, value", [("coarse", 1.0), ("coarse", -0.1)])
def test_coarse_validation(field, value):
    with pytest.raises(UserError, match=f"bad {field} {value!r}"):
        RenderSettings(**{field: value})
    with pytest.raises(UserError, match="bad size 25"):
        RenderSettings(size=25, coarse=0.5)
