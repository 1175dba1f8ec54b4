"""The model the ascent loop runs: ReLUs that feed only a max-pool are moved after it, and max-pools run
oneDNN's ops paired explicitly, with equal values and gradients."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from filterviz import graphs, rewrites
from filterviz.ascent import LayerRenderer
from filterviz.models import feature_extractor, load_model
from filterviz.graphs import onednn_max_pool_available, op_registered
from filterviz.rewrites import loop_model, relu_pool_pairs
from filterviz.settings import RenderSettings


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


def test_renderer_runs_the_reordered_clone_and_renders_the_same(tiny_cnn, monkeypatch):
    from filterviz import ascent

    extractor = feature_extractor(tiny_cnn, "conv3")
    settings = RenderSettings(size=24, steps=5, chunk=3)
    fast = LayerRenderer(extractor, settings)
    assert fast.model is not fast.source
    pool = fast.model.get_layer("pool")
    assert type(pool).__name__ == "_LoopMaxPool" and pool.relu
    assert pool.onednn == onednn_max_pool_available()
    monkeypatch.setattr(ascent, "loop_model", lambda source, *args, **kwargs: source)  # no rewrites
    plain = LayerRenderer(extractor, settings)
    assert plain.model is plain.source  # the loop runs the extractor as it is
    a, b = fast.render(np.arange(6)), plain.render(np.arange(6))
    np.testing.assert_allclose(a.trace, b.trace, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a.images, b.images, rtol=1e-3, atol=1e-2)


def test_onednn_pool_is_used_where_tensorflow_has_it():
    import os

    has_ops = (op_registered("_MklNativeMaxPoolGrad") and not tf.config.list_logical_devices("GPU")
               and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0")
    assert onednn_max_pool_available() == has_ops  # the probe checks values and gradient on a 4x4 image


# -- every private API's public fallback gives the probed private path's answer ---------------------------------
def _odd_models(tiny_cnn) -> dict[str, keras.Model]:
    """Graphs the fallbacks must read alike: shared layers, a tensor used twice, a nested model, a Sequential."""
    inp = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="shared")
    x = conv(conv(inp))  # one layer, two call sites
    y = keras.layers.ReLU(name="r")(x)
    twice = keras.layers.Add(name="twice")([y, y])  # one tensor, two uses by one layer
    pooled = keras.layers.MaxPooling2D(2, name="p")(keras.layers.ReLU(name="r2")(twice))
    inner = keras.Model(inp, pooled, name="inner")
    outer_in = keras.Input((None, None, 3), name="outer_in")
    nested = keras.Model(outer_in, keras.layers.Dense(2, name="head")(inner(outer_in)), name="outer")
    seq = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 3, activation="relu", name="sc"),
                            keras.layers.MaxPooling2D(2, name="sp")], name="seq")
    return {"tiny": tiny_cnn, "branchy": _branchy_model(), "inner": inner, "nested": nested, "seq": seq,
            "extractor": feature_extractor(tiny_cnn, "conv3").model}


def test_links_from_the_config_match_the_private_nodes(tiny_cnn):
    for name, model in _odd_models(tiny_cnn).items():
        private = graphs.links(model, private=True)
        assert graphs.links(model, private=False) == private, name
        assert rewrites.relu_pool_pairs(model, private=False) == rewrites.relu_pool_pairs(model, private=True), name
        for layer in model.layers:
            assert graphs.layer_calls(model, layer.name, private=False) == private.calls[layer.name], (name, layer.name)
    inner = graphs.links(_odd_models(tiny_cnn)["inner"], private=False)
    assert inner.calls["shared"] == 2 and inner.users["r"] == ["twice", "twice"] and inner.outputs == {"p"}
    assert rewrites.relu_pool_pairs(_odd_models(tiny_cnn)["inner"], private=False) == {"r2": "p"}
    assert rewrites.relu_pool_pairs(_odd_models(tiny_cnn)["seq"], private=False) == {"sc": "sp"}
    assert rewrites.relu_pool_pairs(tiny_cnn, private=False) == {"conv2": "pool"}


def test_producer_and_graph_model_check_fallbacks(tiny_cnn):
    for name, model in _odd_models(tiny_cnn).items():
        for t in model.outputs:
            assert graphs.producer(model, t, private=False) is graphs.producer(model, t, private=True), name
        assert graphs.is_graph_model(model, private=False) and graphs.is_graph_model(model, private=True)
    assert graphs.producer(tiny_cnn, tiny_cnn.outputs[0], private=False).name == "logits"

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    sub = Subclassed()
    sub(tf.zeros([1, 3]))
    assert not graphs.is_graph_model(sub, private=False) and not graphs.is_graph_model(sub, private=True)


def test_op_registered_fallback():
    for op in ("_MklNativeMaxPoolGrad", "Conv2D", "MaxPool", "NoSuchOpAnywhere"):
        assert op_registered(op, private=False) == op_registered(op, private=True), op
    assert op_registered("Conv2D") and not op_registered("NoSuchOpAnywhere")


def test_onednn_pool_through_the_public_create_op_is_the_same():
    if not onednn_max_pool_available():
        pytest.skip("this TensorFlow has no oneDNN max-pool ops")
    x = tf.constant(np.random.default_rng(1).normal(0, 1, (2, 7, 7, 3)).astype(np.float32))

    def run(private):
        @tf.function
        def f():
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = graphs.onednn_max_pool(x, (3, 3), (2, 2), "same", private=private)
                loss = tf.reduce_sum(y * y)
            return y, tape.gradient(loss, x)

        return [t.numpy() for t in f()]

    (y, g), (y2, g2) = run(True), run(False)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(g2, g)
    np.testing.assert_array_equal(y, tf.nn.max_pool2d(x, 3, 2, "SAME").numpy())


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_onednn_pool_only_for_a_compute_dtype_the_probe_passed(precision):
    dtype = keras.DTypePolicy(precision).compute_dtype
    model = _branchy_model()
    clone = loop_model(model, precision, onednn_pool=True)
    assert getattr(clone.get_layer("p6"), "onednn", False) == onednn_max_pool_available(dtype)
    x = tf.constant(np.random.default_rng(2).normal(0, 1, (1, 16, 16, 3)).astype(np.float32))
    try:
        outs = tf.function(lambda: clone(x))()  # a oneDNN pool the CPU lacks for this dtype would abort here
    except Exception as e:  # some CPU builds lack float16 kernels for conv
        if dtype == "bfloat16":
            raise
        pytest.skip(f"float16 is not supported on this device: {type(e).__name__}")
    for o, want in zip(outs, model(x)):
        np.testing.assert_allclose(tf.cast(o, tf.float32).numpy(), want.numpy(), rtol=0.1, atol=0.1 * np.abs(want).max())
