"""The model the ascent loop runs: ReLUs that feed only a max-pool are moved after it, and max-pools run
oneDNN's ops paired explicitly, with equal values and gradients."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from filterviz.ascent import LayerRenderer, RenderSettings
from filterviz.models import (
    feature_extractor,
    load_model,
    loop_model,
    onednn_max_pool_available,
    relu_pool_pairs,
)


def _branchy_model() -> keras.Model:
    keras.utils.set_random_seed(1)
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inp)
    x = keras.layers.MaxPooling2D(2, name="p1")(x)  # a -> p1: moved
    x = keras.layers.Conv2D(5, 3, padding="same", name="b")(x)
    x = keras.layers.ReLU(name="r")(x)
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="p2")(x)  # r -> p2: moved (odd windows, padding)
    x = keras.layers.Conv2D(6, 3, padding="same", name="b6")(x)
    x = keras.layers.ReLU(max_value=6.0, name="r6")(x)
    x = keras.layers.MaxPooling2D(2, padding="same", name="p6")(x)  # a capped ReLU: left alone
    c = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c")(x)
    p3 = keras.layers.MaxPooling2D(2, padding="same", name="p3")(c)  # c also feeds d: left alone
    d = keras.layers.Conv2D(3, 1, name="d")(c)
    return keras.Model(inp, [p3, d])


def test_relu_pool_pairs_finds_only_safe_pairs():
    assert relu_pool_pairs(_branchy_model()) == {"a": "p1", "r": "p2"}
    trunk = feature_extractor(load_model("vgg16-hed"), "block3_conv1").head.trunk
    assert relu_pool_pairs(trunk) == {"block1_conv2": "block1_pool", "block2_conv2": "block2_pool"}


@pytest.mark.parametrize("onednn", [False, True])
def test_relu_after_pool_gives_the_same_values_and_input_gradients(onednn):
    if onednn and not onednn_max_pool_available():
        pytest.skip("this TensorFlow has no oneDNN max-pool ops")
    model = _branchy_model()
    clone = loop_model(model, "float32", relu_after_pool=True, onednn_pool=onednn)
    assert clone is not model
    assert all(getattr(clone.get_layer(p), "onednn", False) == onednn for p in ("p1", "p2", "p3", "p6"))
    assert clone.get_layer("a").activation.__name__ == "linear"
    assert model.get_layer("a").activation.__name__ == "relu"  # the user's model is untouched
    x = tf.constant(np.random.default_rng(0).normal(0, 1, (2, 23, 23, 3)).astype(np.float32))
    weights = [tf.random.stateless_normal(tf.shape(t), [0, k]) for k, t in enumerate(model(x))]

    def value_and_grad(m):
        @tf.function  # oneDNN's ops are graph ops, as in the ascent loop
        def run():
            with tf.GradientTape() as tape:
                tape.watch(x)
                outs = m(x)
                loss = sum(tf.reduce_sum(o * w) for o, w in zip(outs, weights))
            return outs, tape.gradient(loss, x)

        outs, grad = run()
        return [o.numpy() for o in outs], grad.numpy()

    (outs, grad), (outs2, grad2) = value_and_grad(model), value_and_grad(clone)
    for o, o2 in zip(outs, outs2):
        np.testing.assert_allclose(o2, o, rtol=1e-5, atol=1e-5)
    assert np.abs(grad).max() > 0
    np.testing.assert_allclose(grad2, grad, rtol=1e-4, atol=1e-5 * np.abs(grad).max())


def test_renderer_runs_the_reordered_clone_and_renders_the_same(tiny_cnn):
    extractor = feature_extractor(tiny_cnn, "conv3")
    settings = RenderSettings(size=24, steps=5, chunk=3)
    fast = LayerRenderer(extractor, settings)
    assert fast._model is not fast._source
    pool = fast._model.get_layer("pool")
    assert type(pool).__name__ == "_LoopMaxPool" and pool.relu
    assert pool.onednn == onednn_max_pool_available()
    plain = LayerRenderer(extractor, settings)
    plain._model = plain._source  # before the first trace: the loop runs the extractor as it is
    a, b = fast.render(np.arange(6)), plain.render(np.arange(6))
    np.testing.assert_allclose(a.trace, b.trace, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a.images, b.images, rtol=1e-3, atol=1e-2)


def test_onednn_pool_is_used_where_tensorflow_has_it():
    from tensorflow.python.framework import op_def_registry

    import os

    has_ops = (op_def_registry.get("_MklNativeMaxPoolGrad") is not None and not tf.config.list_logical_devices("GPU")
               and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0")
    assert onednn_max_pool_available() == has_ops  # the probe checks values and gradient on a 4x4 image
