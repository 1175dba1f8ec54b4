"""Quality metrics: each one measured on pictures whose answer is known."""

from __future__ import annotations

import numpy as np

from filterviz import metrics
from filterviz.models import feature_extractor, load_model


def test_hf_share_checkerboard_vs_smooth():
    y, x = np.mgrid[0:32, 0:32]
    checker = (((x + y) % 2) * 255).astype(np.uint8)[None, :, :, None].repeat(3, axis=3)
    smooth = (128 + 100 * np.cos(2 * np.pi * x / 32)).astype(np.uint8)[None, :, :, None].repeat(3, axis=3)
    flat = np.full((1, 32, 32, 3), 128, np.uint8)
    share = metrics.hf_share(np.concatenate([checker, smooth, flat]))
    assert share[0] > 0.99 and share[1] < 0.05 and share[2] == 0.0


def test_colourfulness_grey_photo_and_saturated():
    grey = np.full((1, 16, 16, 3), 90, np.uint8)
    y, x = np.mgrid[0:16, 0:16]
    magenta_green = np.where(((x + y) % 2 == 0)[..., None], [255, 0, 255], [0, 255, 0]).astype(np.uint8)[None]
    photo = metrics.natural_crops(64).astype(np.uint8)
    c = metrics.colourfulness(np.concatenate([grey, magenta_green]))
    assert c[0] == 0.0 and c[1] > 150
    assert (30 < metrics.colourfulness(photo)).all() and (metrics.colourfulness(photo) < 100).all()
    assert (metrics.colourfulness(np.zeros((2, 8, 8, 1), np.uint8)) == 0).all()


def test_natural_crops_from_sample_photo():
    crops = metrics.natural_crops(32)
    assert crops.shape == (9, 32, 32, 3) and crops.dtype == np.float32
    assert 0 <= crops.min() and crops.max() <= 255 and crops.std() > 10
    assert metrics.natural_crops(16, channels=1).shape == (9, 16, 16, 1)
    four = metrics.natural_crops(16, channels=4)  # any channel count: grey in every channel
    assert four.shape == (9, 16, 16, 4) and (four == four[..., :1]).all()


def test_quality_metrics_shapes_and_ranges(tiny_cnn):
    post = feature_extractor(load_model(tiny_cnn), "conv2", pre_activation=False)
    rng = np.random.default_rng(0)
    display = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    shown = display.astype(np.float32)
    filters = np.array([0, 3, 5, 7, 11])
    q = metrics.quality_metrics(post, shown, display, filters, draws=2)
    assert set(q) == {"activation", "dead", "specificity_rank", "robustness", "hf_share", "colourfulness"}
    assert ((1 <= q["specificity_rank"]) & (q["specificity_rank"] <= 12)).all()
    assert (q["dead"] == (q["activation"] <= 0)).all()
    feats = post.model(shown).numpy().mean(axis=(1, 2))
    np.testing.assert_allclose(q["activation"], feats[np.arange(5), filters], rtol=1e-5, atol=1e-6)


def test_specificity_rank_one_for_the_channel_a_picture_excites_most(tiny_cnn):
    post = feature_extractor(load_model(tiny_cnn), "conv1", pre_activation=False)
    shown = np.random.default_rng(1).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    natural = post.model(metrics.natural_crops(32)).numpy().mean(axis=(0, 1, 2))
    rel = post.model(shown).numpy().mean(axis=(1, 2))[0] / np.maximum(natural, 1e-3 * natural.max())
    best, worst = int(np.argmax(rel)), int(np.argmin(rel))
    q = metrics.quality_metrics(post, np.repeat(shown, 2, 0), np.zeros((2, 32, 32, 3), np.uint8),
                                np.array([best, worst]), draws=1)
    assert q["specificity_rank"][0] == 1 and q["specificity_rank"][1] >= 2


def test_render_layer_on_a_fixed_size_model():
    """Robustness transforms crop; the metrics resize back so fixed-size models work."""
    import keras

    from filterviz.render import render_layer
    from filterviz.settings import RenderSettings

    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c")(inp)
    out = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    res = render_layer(load_model(keras.Model(inp, out)), "c", "0:2", RenderSettings(size=16, steps=3))
    assert len(res.metrics) == 2 and all(0 <= r["robustness"] for r in res.metrics)
