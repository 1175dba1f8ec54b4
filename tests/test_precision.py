"""Mixed precision: the extractor computes in bfloat16/float16, images and gradient normalization stay float32."""

from __future__ import annotations

import numpy as np
import pytest

from filterviz.ascent import LayerRenderer
from filterviz.settings import RenderSettings
from filterviz.models import feature_extractor
from filterviz.rewrites import loop_model


def _render(model, precision: str, layer: str = "conv2", steps: int = 12):
    extractor = feature_extractor(model, layer)
    renderer = LayerRenderer(extractor, RenderSettings(size=32, steps=steps, chunk=4, precision=precision))
    return renderer, renderer.render(np.arange(extractor.filters))


def test_mixed_bfloat16_raises_every_filter(tiny_cnn, tiny_weights):
    renderer, out = _render(tiny_cnn, "mixed_bfloat16")
    assert renderer.model.layers[-1].compute_dtype == "bfloat16"
    assert out.images.dtype == np.float32 and renderer.variable.dtype == "float32"
    assert np.isfinite(out.images).all() and not out.nonfinite.any()
    assert (out.scores > out.trace[:, 0]).all(), (out.trace[:, 0], out.scores)
    # the user's model is untouched: same weights, still float32
    assert all(layer.compute_dtype == "float32" for layer in tiny_cnn.layers)
    for a, b in zip(tiny_weights, tiny_cnn.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_mixed_bfloat16_follows_weight_changes(tiny_cnn):
    extractor = feature_extractor(tiny_cnn, "conv3")
    renderer = LayerRenderer(extractor, RenderSettings(size=32, steps=2, chunk=2, precision="mixed_bfloat16"))
    before = renderer.render([0, 1]).scores
    for w in extractor.model.weights:  # e.g. a training epoch; the renderer is reused
        w.assign(w * 0.0)
    after = renderer.render([0, 1]).scores
    assert not np.allclose(before, 0.0) and np.allclose(after, 0.0)


def test_float32_uses_the_extractor_itself(tiny_cnn):
    extractor = feature_extractor(tiny_cnn, "conv1")
    assert loop_model(extractor.model, "float32") is extractor.model


def test_mixed_float16_raises_every_filter(tiny_cnn):
    try:
        renderer, out = _render(tiny_cnn, "mixed_float16")
    except Exception as e:  # some CPU builds lack float16 kernels for conv or its gradient
        pytest.skip(f"float16 is not supported on this device: {type(e).__name__}: {str(e)[:120]}")
    assert renderer.loss_scale > 1 and renderer.model.layers[-1].compute_dtype == "float16"
    assert np.isfinite(out.images).all() and not out.nonfinite.any()
    assert (out.scores > out.trace[:, 0]).all(), (out.trace[:, 0], out.scores)


def test_auto_precision_follows_the_cpu(tiny_cnn, monkeypatch, tmp_path):
    import builtins

    from filterviz import ascent

    real_open = builtins.open

    def fake_cpuinfo(flags: str):
        path = tmp_path / f"cpuinfo-{len(flags)}"
        path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
        return lambda name, *a, **k: real_open(path if name == "/proc/cpuinfo" else name, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_cpuinfo("avx512f amx_bf16 amx_tile"))
    assert ascent.resolve_precision("auto") == "mixed_bfloat16"
    r = LayerRenderer(feature_extractor(tiny_cnn, "conv2"), RenderSettings(size=16, steps=1, precision="auto"))
    assert r.precision == "mixed_bfloat16"
    monkeypatch.setattr(builtins, "open", fake_cpuinfo("avx2"))
    assert ascent.resolve_precision("auto") == "float32"
    assert ascent.resolve_precision("mixed_float16") == "mixed_float16"


def test_model_that_cannot_be_copied(monkeypatch):
    """A Lambda layer cannot be rebuilt in safe mode: explicit bfloat16 says so in one line, 'auto' keeps float32."""
    import keras

    from filterviz import ascent
    from filterviz.errors import UserError

    inp = keras.Input((None, None, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0, name="scale")(inp)
    net = keras.Model(inp, keras.layers.Conv2D(4, 3, padding="same", name="conv")(x), name="lambda_net")
    extractor = feature_extractor(net, "conv")
    with pytest.raises(UserError, match="layer 'conv': the model cannot be copied to compute in mixed_bfloat16 .*Lambda"):
        LayerRenderer(extractor, RenderSettings(size=16, steps=1, precision="mixed_bfloat16"))
    monkeypatch.setattr(ascent, "resolve_precision", lambda p: "mixed_bfloat16")
    r = LayerRenderer(extractor, RenderSettings(size=16, steps=1, precision="auto"))
    assert r.precision == "float32" and r.model is r.source


def test_auto_chunk_doubles_under_mixed_precision(tiny_cnn):
    from filterviz.ascent import auto_chunk

    ex = feature_extractor(tiny_cnn, "conv2")
    f32 = auto_chunk(ex, 64, 3, max_memory_gb=0.01, cap=10_000)
    bf16 = auto_chunk(ex, 64, 3, max_memory_gb=0.01, cap=10_000, precision="mixed_bfloat16")
    assert f32 >= 2 and abs(bf16 - 2 * f32) <= 1


def test_auto_precision_follows_the_cpu_flag_table():
    """bfloat16 where the CPU has native bfloat16 maths (AMX or AVX-512 BF16), float32 elsewhere and on GPUs."""
    from filterviz.precision import auto_precision

    assert auto_precision({"avx2", "amx_bf16"}) == "mixed_bfloat16"
    assert auto_precision({"avx512f", "avx512_bf16"}) == "mixed_bfloat16"
    assert auto_precision({"avx2", "fma", "avx512f"}) == "float32"  # no bfloat16 maths: emulated, much slower
    assert auto_precision({"amx_bf16"}, gpu=True) == "float32"
