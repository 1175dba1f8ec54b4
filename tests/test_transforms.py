"""Transforms: differentiable, drawn afresh per step from a stateless seed, composable; and parameterizations."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from filterviz import params, transforms
from filterviz.metrics import hf_share

X = tf.random.stateless_uniform([2, 32, 32, 3], [3, 4])


@pytest.mark.parametrize(
    "t, size",
    [
        (transforms.pad(4), 40),
        (transforms.jitter(4), 28),
        (transforms.random_scale([0.9, 1.1]), 32),
        (transforms.random_rotate(10.0), 32),
        (transforms.compose(transforms.pad(3, mode="reflect"), transforms.jitter(6)), 32),
        (transforms.standard(32), 32),
        (transforms.wide(32), 32),
        (transforms.roll(16), 32),
        (transforms.texture(32), 32),
        (transforms.lucid(32), 32 + 2 * 4 - 2 - 1),
    ],
    ids=["pad", "jitter", "scale", "rotate", "shift", "standard", "wide", "roll", "texture", "lucid"],
)
def test_shape_determinism_and_gradient(t, size):
    a = t(X, tf.constant([0, 1]))
    assert a.shape == (2, size, size, 3)
    np.testing.assert_array_equal(a.numpy(), t(X, tf.constant([0, 1])).numpy())  # same seed, same draw
    with tf.GradientTape() as tape:
        tape.watch(X)
        y = tf.reduce_sum(t(X, tf.constant([0, 1])) ** 2)
    g = tape.gradient(y, X)
    assert g is not None and float(tf.reduce_sum(tf.abs(g))) > 0


def test_drawn_afresh_each_step():
    """Every step draws another shift and rotation, as far from each other step's as from another seed's; a
    (seed, step) pair always draws the same one."""
    t = transforms.compose(transforms.jitter(6), transforms.random_rotate(20.0))
    draws = np.stack([t(X, tf.constant([0, step])).numpy() for step in range(6)])
    apart = np.abs(draws[:, None] - draws[None]).mean(axis=(2, 3, 4, 5))[np.triu_indices(6, 1)]
    assert apart.min() > 0.15, apart  # measured 0.21-0.23 on this uniform noise (0.33 for unrelated noise)
    other_seed = np.stack([t(X, tf.constant([1, step])).numpy() for step in range(6)])
    assert np.abs(other_seed - draws).mean(axis=(1, 2, 3, 4)).min() > 0.15
    np.testing.assert_array_equal(t(X, tf.constant([0, 3])).numpy(), draws[3])


def test_reflect_shift_moves_pixels_without_resampling():
    """pad(n, reflect) then jitter(2n): the same size, every interior pixel copied from the source."""
    t = transforms.compose(transforms.pad(3, mode="reflect"), transforms.jitter(6))
    y = t(X, tf.constant([7, 2])).numpy()
    x = X.numpy()
    hits = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
            if np.array_equal(y[:, 3:-3, 3:-3], x[:, 3 + dy : 29 + dy, 3 + dx : 29 + dx])]
    assert len(hits) == 1


def test_wide_shifts_twice_as_far_as_standard():
    """standard mirrors in and crops away size/16 pixels a side (a shift of up to 8 at 128 px), wide size/8 (16, the
    width of metrics.edge_score's ring); the zoom and rotation are the same."""
    assert transforms.standard(128).name.startswith("pad(8, reflect) > jitter(16) > scale(")
    assert transforms.wide(128).name.startswith("pad(16, reflect) > jitter(32) > scale(")
    assert transforms.wide(128).name.split(" > ")[2:] == transforms.standard(128).name.split(" > ")[2:]
    x = tf.random.stateless_uniform([1, 128, 128, 3], [1, 2])
    np.testing.assert_array_equal(transforms.standard(128, shift=1 / 8)(x, tf.constant([3, 4])).numpy(),
                                  transforms.wide(128)(x, tf.constant([3, 4])).numpy())


def test_roll_is_a_circular_shift_that_keeps_every_pixel():
    """roll(d): the picture on a torus, moved by one draw of (dy, dx) in [-d, d], the same for every image of the
    batch: a permutation of the pixels; a new place for pixel (0, 0) almost every step; its gradient goes back to
    the pixel it came from."""
    y = transforms.roll(16)(X, tf.constant([7, 2])).numpy()
    x = X.numpy()
    hits = [(dy, dx) for dy in range(-16, 16) for dx in range(-16, 16)  # on a torus of 32, -16 is +16
            if np.array_equal(y, np.roll(x, (dy, dx), axis=(1, 2)))]
    assert len(hits) == 1
    corner = x[0, 0, 0, 0]
    places = {tuple(np.argwhere(transforms.roll(16)(X, tf.constant([0, s])).numpy()[0, :, :, 0] == corner)[0])
              for s in range(12)}
    assert len(places) >= 10
    weight = tf.random.stateless_uniform(X.shape, [5, 6])
    with tf.GradientTape() as tape:
        tape.watch(X)
        loss = tf.reduce_sum(transforms.roll(16)(X, tf.constant([7, 2])) * weight)
    np.testing.assert_allclose(tape.gradient(loss, X).numpy(), np.roll(weight.numpy(), (-hits[0][0], -hits[0][1]),
                                                                       axis=(1, 2)))
    np.testing.assert_array_equal(transforms.roll(0)(X, tf.constant([7, 2])).numpy(), x)


def test_texture_is_wide_after_a_roll_anywhere_and_named_finds_each():
    """texture = roll(size/2) then wide with zooms of 0.6-1.5; `named` maps every settings name but 'auto' (the
    engine's) to its transforms and rejects the rest."""
    scales = str([round(0.6 + 0.05 * i, 4) for i in range(19)])
    assert transforms.texture(128).name == "roll(64) > " + transforms.wide(128).name.replace(
        "[0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2]", scales)
    for name in ("standard", "wide", "texture", "lucid"):
        assert transforms.named(name, 64).name == getattr(transforms, name)(64).name
    assert transforms.named("none", 64).name == "identity"
    with pytest.raises(ValueError, match="'auto'.*valid: none, standard, wide, texture, lucid"):
        transforms.named("auto", 64)


def test_zoomed_moves_a_fine_grating_without_blurring_it():
    """The metric's zoom: a grating of period 4 zoomed by 0.95 or 1.05 keeps its contrast (band-limited), where
    random_scale's bilinear sampling takes about a fifth of it; the size is kept, 1.0 is the identity, and the
    zoomed grating's period is the zoomed one."""
    n = 128
    cols = np.cos(2 * np.pi * np.arange(n) / 4.0).astype(np.float32)
    grating = tf.constant(np.tile(cols[None, None, :, None], (1, n, 1, 3)))

    def contrast(y: tf.Tensor) -> float:
        assert y.shape == grating.shape
        return float(y.numpy()[0, 32:96, 32:96].std() / grating.numpy()[0, 32:96, 32:96].std())

    for s in (0.95, 1.05):
        assert contrast(transforms.zoomed(grating, s)) > 0.97
        assert contrast(transforms.random_scale([s])(grating, tf.constant([0, 0]))) < 0.9
    np.testing.assert_array_equal(transforms.zoomed(grating, 1.0).numpy(), grating)
    zoomed = transforms.zoomed(grating, 1.1).numpy()[0, 64, :, 0]
    spectrum = np.abs(np.fft.rfft(zoomed - zoomed.mean()))
    assert abs(spectrum.argmax() / n - 0.25 / 1.1) <= 1 / n


def test_pad_mode_is_checked():
    with pytest.raises(ValueError, match="'wrap'"):
        transforms.pad(2, mode="wrap")


def test_fourier_images_are_valid_and_smoother_than_pixels():
    filters = tf.constant([0, 1, 2, 3])
    fourier = params.fourier(64, decay=1.5)
    img = fourier.to_image(fourier.init(filters, seed=0) * 50.0).numpy()
    assert img.shape == (4, 64, 64, 3) and img.min() >= 0.0 and img.max() <= 1.0
    pixel = params.pixel(64)
    noise = pixel.to_image(pixel.init(filters, seed=0)).numpy()
    shown = lambda a: (np.clip(a, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    assert np.median(hf_share(shown(img))) < 0.5 * np.median(hf_share(shown(noise)))


def test_maco_keeps_the_photo_spectrum_and_sets_the_contrast():
    from filterviz.metrics import natural_crops

    mag = params.natural_magnitude(natural_crops(32))
    assert mag.shape == (3, 32, 17) and (mag >= 0).all()
    p = params.maco(32, mag, contrast=1.5)
    phase = p.init(tf.constant([0, 5]), seed=0)
    assert phase.shape == (2, 3, 32, 17)
    img = p.to_image(phase).numpy().astype(np.float64)
    assert 0 < img.min() and img.max() < 1
    logit = np.log(img / (1 - img))  # undo the sigmoid, then the colour correlation
    mix = params.COLOR_CORRELATION_SVD_SQRT.astype(np.float64)
    mix = mix / np.max(np.linalg.norm(mix, axis=0))  # the correlation, scaled to unit largest column norm
    dec = logit @ np.linalg.inv(mix).T
    np.testing.assert_allclose(dec.std(axis=(1, 2, 3)), 1.5, rtol=1e-3)  # the contrast, per image
    spec = np.abs(np.fft.rfft2(np.moveaxis(dec, 3, 1), axes=(2, 3)))
    # columns 0 and size/2 hold real-symmetric parts that irfft2d projects; the rest keeps the magnitude exactly
    ratio = spec[:, :, :, 1:-1] / mag[None, :, :, 1:-1]
    ratio = ratio / np.median(ratio, axis=(1, 2, 3), keepdims=True)  # one scale per image (the standardizing)
    np.testing.assert_allclose(ratio, 1.0, atol=0.03)  # float32 rounding through the sigmoid and its inverse
    assert np.median(np.abs(ratio - 1.0)) < 2e-3
    with pytest.raises(ValueError, match="magnitude"):
        params.Parameterization("maco", 32, 3)
