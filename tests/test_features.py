"""What the best published methods have (issue 15): diversity, negative pictures, the neuron objective, a start
from the user's image, and MaCo as published (spectrum of many photos, random crops of a canvas, transparency)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from filterviz import canvas, metrics, params
from filterviz.ascent import LayerRenderer
from filterviz.errors import UserError
from filterviz.models import feature_extractor
from filterviz.render import render_layer
from filterviz.results import save_layer
from filterviz.settings import RenderSettings

FOURIER = RenderSettings(size=32, steps=24, lr=0.1, segment=8, param="fourier", optimizer="adam")
FILTERS = list(range(8))


def renderer(model, settings, layer="conv2") -> LayerRenderer:
    return LayerRenderer(feature_extractor(model, layer, pre_activation=settings.pre_activation), settings)


def own_maps(model, images: np.ndarray, filters, layer="conv2") -> np.ndarray:
    """[N, h, w]: each picture's own filter's pre-activation map."""
    ex = feature_extractor(model, layer, pre_activation=True)
    y = ex.model(tf.constant(images), training=False).numpy()
    return y[np.arange(len(filters)), :, :, np.asarray(filters)]


def gram_similarity(model, pictures: np.ndarray) -> np.ndarray:
    """[F]: the mean pairwise cosine similarity of the conv2 gram matrices of each filter's K pictures."""
    f, k = pictures.shape[:2]
    ex = feature_extractor(model, "conv2", pre_activation=True)
    y = ex.model(tf.constant(pictures.reshape((-1,) + pictures.shape[2:])), training=False).numpy()
    y = y.reshape(f * k, -1, y.shape[-1])
    g = np.einsum("nsc,nsd->ncd", y, y).reshape(f, k, -1)
    g /= np.linalg.norm(g, axis=2, keepdims=True)
    sims = np.einsum("fkd,fjd->fkj", g, g)
    return (sims.sum(axis=(1, 2)) - k) / (k * (k - 1))


def test_diversity_makes_a_filters_pictures_differ(tiny_cnn):
    plain = renderer(tiny_cnn, FOURIER.replace(diversity=3, diversity_weight=0.0)).render(FILTERS)
    diverse_r = renderer(tiny_cnn, FOURIER.replace(diversity=3, diversity_weight=2.0))
    diverse = diverse_r.render(FILTERS)
    assert diverse_r.traces == 1 and diverse_r.chunk % 3 == 0
    for out in (plain, diverse):
        assert out.extras["diversity"].shape == (8, 3, 32, 32, 3)
        np.testing.assert_array_equal(out.extras["diversity"][:, 0], out.images)  # the grid shows the first
    # without the penalty: K independent seeds (picture 0 is the picture rendered without diversity)
    single = renderer(tiny_cnn, FOURIER).render(FILTERS)
    np.testing.assert_allclose(plain.images, single.images, atol=1e-2)
    before, after = gram_similarity(tiny_cnn, plain.extras["diversity"]), gram_similarity(tiny_cnn, diverse.extras["diversity"])
    assert after.mean() < before.mean() - 0.02, (before, after)
    assert (after < before).mean() >= 0.75, (before, after)


def test_negative_pictures_lower_the_filter(tiny_cnn):
    settings = FOURIER.replace(negative=True)
    out = renderer(tiny_cnn, settings).render(FILTERS)
    start = -out.trace[:, 0]  # the objective is minus the map's mean: at step 0, of the random start
    measured = own_maps(tiny_cnn, out.images, FILTERS).mean(axis=(1, 2))
    np.testing.assert_allclose(measured, -out.scores, rtol=1e-3, atol=1e-3)
    assert np.all(measured < start), (measured, start)


def test_neuron_raises_the_centre_unit_more_than_the_mean(tiny_cnn):
    centre = {}
    for objective in ("neuron", "mean"):
        out = renderer(tiny_cnn, FOURIER.replace(objective=objective)).render(FILTERS)
        maps = own_maps(tiny_cnn, out.images, FILTERS)
        centre[objective] = maps[:, maps.shape[1] // 2, maps.shape[2] // 2]
        if objective == "neuron":
            np.testing.assert_allclose(centre[objective], out.scores, rtol=1e-3, atol=1e-3)
    assert np.all(centre["neuron"] > centre["mean"]), centre


def _smooth_image(path, size=40) -> np.ndarray:
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size] / size
    arr = np.stack([0.5 + 0.4 * np.sin(6 * x), 0.5 + 0.4 * np.cos(5 * y), 0.3 + 0.4 * x * y], axis=2)
    Image.fromarray((arr * 255).astype(np.uint8)).save(path)
    return np.asarray(Image.open(path), np.float32)


@pytest.mark.parametrize("param", ["pixel", "fourier", "maco"])
def test_a_start_image_is_the_first_picture_and_then_accentuated(tiny_cnn, tmp_path, param):
    path = tmp_path / "start.png"
    image = _smooth_image(path, 32)
    settings = FOURIER.replace(param=param, init=str(path), lr={"pixel": 5.0, "fourier": 0.1, "maco": 0.3}[param])
    if param == "pixel":
        settings = settings.replace(optimizer="normalized")
    still = renderer(tiny_cnn, settings.replace(steps=1, lr=1e-12)).render(FILTERS[:3])
    np.testing.assert_allclose(still.images, np.repeat(image[None], 3, axis=0), atol=0.6)  # clipped to 1/512
    out = renderer(tiny_cnn, settings.replace(init_weight=0.1)).render(FILTERS[:3])
    on_image = own_maps(tiny_cnn, np.repeat(image[None], 3, axis=0), FILTERS[:3]).mean(axis=(1, 2))
    after = own_maps(tiny_cnn, out.images, FILTERS[:3]).mean(axis=(1, 2))
    assert np.all(after > on_image), (after, on_image)


def test_a_start_image_that_does_not_decode_is_one_line(tiny_cnn, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(UserError) as e:
        renderer(tiny_cnn, FOURIER.replace(init=str(bad)))
    assert "bad.png" in str(e.value) and "\n" not in str(e.value)


def test_maco_keeps_the_photos_spectrum_exactly(tiny_cnn):
    settings = RenderSettings(size=32, steps=16, lr=0.3, segment=8, param="maco", optimizer="adam",
                              spectrum="photos")
    r = renderer(tiny_cnn, settings)
    mag = params.natural_magnitude(metrics.photo_crops(32, 3, flips=False))
    np.testing.assert_allclose(r.param.magnitude, mag)
    assert not np.allclose(mag, metrics.NaturalPhotos(32).magnitude, rtol=0.05)  # more than one photo
    out = r.render(FILTERS[:4])
    img = out.images.astype(np.float64) / 255.0
    logit = np.log(img / (1 - img))  # undo the sigmoid, then the colour correlation
    mix = params.COLOR_CORRELATION_SVD_SQRT.astype(np.float64)
    dec = logit @ np.linalg.inv(mix / np.max(np.linalg.norm(mix, axis=0))).T
    np.testing.assert_allclose(dec.std(axis=(1, 2, 3)), 2.0, rtol=1e-3)  # the contrast
    spec = np.abs(np.fft.rfft2(np.moveaxis(dec, 3, 1), axes=(2, 3)))
    ratio = spec[:, :, :, 1:-1] / mag[None, :, :, 1:-1]
    ratio = ratio / np.median(ratio, axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(ratio, 1.0, atol=0.05)
    assert np.median(np.abs(ratio - 1.0)) < 3e-3


def test_random_crops_of_a_larger_canvas(tiny_cnn):
    settings = FOURIER.replace(crops=3)
    r = renderer(tiny_cnn, settings)
    assert r.param.size == canvas.canvas_size(settings) == 48
    out = r.render(FILTERS)
    assert out.images.shape == (8, 32, 32, 3) and not out.nonfinite.any()
    assert np.all(out.trace[:, -1] > out.trace[:, 0])
    views = canvas.random_crops(tf.random.uniform([2, 48, 48, 3]), 3, 32, tf.constant([0, 1])).numpy()
    assert views.shape == (6, 32, 32, 3)


def test_alpha_is_a_map_in_0_1_and_saved(tiny_path, tmp_path):
    settings = FOURIER.replace(param="maco", lr=0.3, crops=2, show_alpha=True, diversity=2)
    result = render_layer(tiny_path, "conv2", "0:3", settings)
    alpha = result.extras["alpha"]
    assert alpha.shape == (3, 32, 32) and alpha.min() >= 0 and alpha.max() <= 1
    np.testing.assert_allclose(alpha.max(axis=(1, 2)), 1.0, rtol=1e-5)
    assert alpha.std() > 0.01  # a map, not a constant
    save_layer(result, tmp_path)
    with np.load(tmp_path / "images.npz") as z:
        assert z["alpha"].shape == (3, 32, 32) and z["diversity"].shape == (3, 2, 32, 32, 3)
    assert (tmp_path / "diversity.png").is_file()
    plain = render_layer(tiny_path, "conv2", "0:3", settings.replace(show_alpha=False, alpha=True))
    assert (result.grid >= plain.grid).mean() > 0.9  # faded towards white
