"""Quality metrics: each one measured on pictures whose answer is known."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from filterviz import metrics, transforms
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


def test_robustness_one_for_flat_high_for_photos_low_for_noise(tiny_cnn):
    """Shifts and zooms leave a flat picture as it is and a photo nearly so; white noise loses about a tenth of
    its activation (zooming moves its pixel-level pattern), more than the photo for every filter."""
    post = feature_extractor(load_model(tiny_cnn), "conv1", pre_activation=False)
    filters = np.arange(8)

    def robustness(pictures: np.ndarray) -> np.ndarray:
        q = metrics.quality_metrics(post, pictures, pictures.astype(np.uint8), filters, draws=4)
        assert not q["dead"].any()
        return q["robustness"]

    flat_pictures = np.full((8, 32, 32, 3), 200.0, np.float32)
    flat = robustness(flat_pictures)
    photo = robustness(metrics.natural_crops(32)[:8])
    noise = robustness(np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32))
    # a flat picture fires some filters only where the network's zero padding makes an edge: none of that is the
    # picture's, so there is nothing to keep (undefined); the others keep all of it
    inner = post.model(flat_pictures[:1]).numpy()[0, 2:-2, 2:-2].mean(axis=(0, 1))
    assert (inner > 0).sum() >= 3 and (inner <= 0).sum() >= 1, inner
    assert (np.isnan(flat) == (inner <= 0)).all(), (flat, inner)
    np.testing.assert_allclose(flat[inner > 0], 1.0, rtol=1e-5)
    # measured: photos 0.96-1.11 (median 0.99), noise 0.87-0.94, at least 0.048 apart for every filter
    assert np.median(photo) > 0.95 and (noise < 0.95).all() and (photo > noise + 0.03).all(), (photo, noise)


def _fixed_conv(size: int, kernels: np.ndarray):
    """A one-layer ReLU model whose filters are `kernels` [k, k, 3, F] (no bias): a unit whose response is known."""
    import keras

    inp = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(kernels.shape[-1], kernels.shape[0], padding="same", activation="relu", name="c")
    model = keras.Model(inp, conv(inp))
    conv.set_weights([kernels.astype(np.float32), np.zeros(kernels.shape[-1], np.float32)])
    return feature_extractor(load_model(model), "c", pre_activation=False)


def test_robustness_reads_a_zoom_out_where_the_picture_is_not_the_mirrored_edge():
    """A zoom-out mirrors the picture's edge in; the mirror image of a diagonal grating is the other diagonal,
    which a diagonal-line unit does not see. Read over the whole map, a zoom of 0.9 cost the grating 8% for the
    fill alone; read where the shrunk grating lies, it keeps nearly all (measured 0.989)."""
    n = 64
    line = np.full((5, 5), -0.2, np.float32)
    np.fill_diagonal(line, 1.0)
    post = _fixed_conv(n, np.repeat(line[:, :, None, None], 3, axis=2) / 3)
    y, x = np.mgrid[0:n, 0:n]
    grating = np.repeat((128 + 100 * np.cos(2 * np.pi * (x - y) / 6)).astype(np.float32)[None, :, :, None], 3, -1)
    q = metrics.quality_metrics(post, grating, grating.astype(np.uint8), np.array([0]))
    whole = post.model(transforms.zoomed(tf.constant(grating), 0.9)).numpy().mean() / post.model(grating).numpy().mean()
    assert whole < 0.93 and q["robustness"][0] > 0.97, (whole, q["robustness"])


def test_robustness_does_not_reward_a_picture_for_its_middle():
    """A zoom-in crops the middle; a bright island in a dark field gained 13% from the crop alone when the
    enlarged middle was compared with the whole picture. Compared with the same middle, a pixel-mean unit keeps
    what it had (measured 1.005), whatever the picture's layout."""
    n = 64
    post = _fixed_conv(n, np.full((1, 1, 3, 1), 1 / 3))
    y, x = np.mgrid[0:n, 0:n]
    island = np.where(np.hypot(x - n / 2 + 0.5, y - n / 2 + 0.5) < n / 4, 230.0, 20.0).astype(np.float32)
    island = np.repeat(island[None, :, :, None], 3, -1)
    q = metrics.quality_metrics(post, island, island.astype(np.uint8), np.array([0]))
    cropped = post.model(transforms.zoomed(tf.constant(island), 1.1)).numpy().mean() / post.model(island).numpy().mean()
    assert cropped > 1.1 and abs(q["robustness"][0] - 1.0) < 0.02, (cropped, q["robustness"])


def test_render_layer_on_a_fixed_size_model():
    """Robustness transforms crop; the metrics resize back so fixed-size models work."""
    import keras

    from filterviz.render import render_layer
    from filterviz.settings import RenderSettings

    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c")(inp)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    res = render_layer(load_model(model), "c", "0:2", RenderSettings(size=16, steps=3))
    assert len(res.metrics) == 2
    assert all(np.isnan(r["robustness"]) if r["dead"] else r["robustness"] > 0 for r in res.metrics), res.metrics
    # through the fixed 16x16 input, a flat picture (which no shift or zoom changes) keeps all of its activation
    post = feature_extractor(load_model(model), "c", pre_activation=False)
    flat = np.full((4, 16, 16, 3), 200.0, np.float32)
    q = metrics.quality_metrics(post, flat, flat.astype(np.uint8), np.arange(4), draws=4)
    assert not q["dead"].any()
    np.testing.assert_allclose(q["robustness"], 1.0, rtol=1e-5)


def test_robustness_of_a_dead_picture_is_undefined_and_left_out_of_the_median():
    """A picture that fires nothing has no activation to keep: NaN (null in metrics.json), not 0, so that a
    layer's median robustness is that of its live pictures; the dead count reports the others."""
    import keras

    inp = keras.Input((16, 16, 3))
    c = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="c")
    model = keras.Model(inp, c(inp))
    c.set_weights([np.full((3, 3, 3, 2), 0.01, np.float32), np.array([0.0, -1e6], np.float32)])  # filter 1: dead
    post = feature_extractor(load_model(model), "c", pre_activation=False)
    flat = np.full((2, 16, 16, 3), 200.0, np.float32)
    q = metrics.quality_metrics(post, flat, flat.astype(np.uint8), np.array([0, 1]), draws=2)
    assert list(q["dead"]) == [False, True]
    assert abs(q["robustness"][0] - 1.0) < 1e-5 and np.isnan(q["robustness"][1])
    assert metrics.median_defined([0.9, np.nan, 0.7, np.nan]) == 0.8 and np.isnan(metrics.median_defined([np.nan]))


def test_edge_score_high_for_a_frame_low_for_photos():
    rng = np.random.default_rng(0)
    framed = rng.integers(60, 200, (1, 64, 64, 3)).astype(np.uint8)
    framed[:, :8], framed[:, -8:], framed[:, :, :8], framed[:, :, -8:] = 0, 0, 0, 0  # a black frame, size/8 wide
    flat = np.full((1, 64, 64, 3), 120, np.uint8)
    photos = metrics.photo_crops(64).astype(np.uint8)
    assert metrics.edge_score(framed)[0] > 2.0 and metrics.edge_score(flat)[0] == 0.0
    # measured: the 232 crops' median is 0.29 at 128 and 224 px
    assert np.median(metrics.edge_score(photos)) < 0.4


def test_palette_spread_zero_for_one_palette_and_by_hand():
    rng = np.random.default_rng(1)
    same = np.repeat(rng.integers(0, 256, (1, 8, 8, 3)).astype(np.uint8), 4, axis=0)
    assert metrics.palette_spread(same) == 0.0
    red_blue = np.zeros((2, 4, 4, 3), np.uint8)
    red_blue[0, ..., 0], red_blue[1, ..., 2] = 255, 255  # mean colour (127.5, 0, 127.5); each is 127.5*sqrt(2) off
    np.testing.assert_allclose(metrics.palette_distance(red_blue), [127.5 * np.sqrt(2)] * 2)
    np.testing.assert_allclose(metrics.palette_spread(red_blue), 127.5 * np.sqrt(2))


def test_photo_crops_several_photos_scales_and_flips():
    paths = metrics.photo_paths()
    assert any(p.endswith("grace_hopper.jpg") for p in paths) and len(paths) >= 2
    crops = metrics.photo_crops(24)
    per_photo = 2 * sum(n * n for _, n in metrics.CROP_GRID)  # 58: 29 positions and their mirror images
    assert crops.shape == (per_photo * len(paths), 24, 24, 3) and crops.dtype == np.float32
    np.testing.assert_array_equal(crops[1], crops[0][:, ::-1])
    assert 0 <= crops.min() and crops.max() <= 255
    assert metrics.photo_crops(16, channels=1, flips=False).shape == (per_photo // 2 * len(paths), 16, 16, 1)


def test_inner_means_leave_the_border_out():
    import keras

    inp = keras.Input((6, 6, 1))
    model = keras.Model(inp, keras.layers.Identity()(inp))
    x = np.zeros((1, 6, 6, 1), np.float32)
    x[0, 2:4, 2:4, 0] = 4.0  # the 2x2 middle
    x[0, 0, :, 0] = 100.0  # the border row, left out
    x[0, 3, 3, 0] = -4.0  # negative: counts as 0
    np.testing.assert_allclose(metrics.inner_means(model, x, border=2), [[3 * 4.0 / 4]])
    np.testing.assert_allclose(metrics.inner_means(model, x, border=0), [[(600 + 12) / 36]], rtol=1e-6)


def test_photo_ratio_one_for_the_best_crop_and_for_silent_filters(tiny_cnn):
    post = feature_extractor(load_model(tiny_cnn), "conv2", pre_activation=False)
    crops = metrics.photo_crops(32)
    acts = metrics.inner_means(post.model, crops)
    best = metrics.best_photo_activation(post.model, crops)
    np.testing.assert_allclose(best, acts.max(axis=0))
    filters = np.arange(post.filters)
    top = crops[acts.argmax(axis=0)]
    ratio = metrics.photo_ratio(post.model, top, filters, best)
    np.testing.assert_allclose(ratio[best > 0], 1.0, rtol=1e-5)
    half = metrics.photo_ratio(post.model, top, filters, 2 * best)
    np.testing.assert_allclose(half[best > 0], 0.5, rtol=1e-5)


def test_photo_ratio_of_a_filter_no_photo_excites():
    import keras

    inp = keras.Input((8, 8, 2))
    model = keras.Model(inp, keras.layers.Identity()(inp))
    picture = np.zeros((2, 8, 8, 2), np.float32)
    picture[1, ..., 1] = 3.0  # the second picture fires its filter 1; the first leaves filter 0 silent
    ratio = metrics.photo_ratio(model, picture, np.array([0, 1]), np.zeros(2))
    assert ratio[0] == 1.0 and ratio[1] > 1e6  # silent like every photo: not failed; firing: far better


def test_dead_means_fires_nowhere_after_a_leaky_activation():
    """After a LeakyReLU the map's mean can be negative while the filter fires strongly in places: not dead.
    A picture that leaves the map negative everywhere is dead."""
    import keras

    inp = keras.Input((16, 16, 1))
    conv = keras.layers.Conv2D(1, 1, name="conv")
    x = keras.layers.LeakyReLU(negative_slope=0.5, name="leaky")(conv(inp))
    net = keras.Model(inp, x)
    conv.set_weights([np.ones((1, 1, 1, 1), np.float32), np.array([-100.0], np.float32)])
    spot = np.zeros((2, 16, 16, 1), np.float32)
    spot[0, 6:10, 6:10] = 255.0  # 155 on 16 pixels, -50 on the other 240: mean < 0, yet it fires
    post = feature_extractor(load_model(net, input_range=(0, 255)), "leaky", pre_activation=False)
    q = metrics.quality_metrics(post, spot, spot.astype(np.uint8), np.array([0, 0]), draws=1)
    assert q["activation"][0] < 0 and not q["dead"][0]
    assert q["activation"][1] < 0 and q["dead"][1]
