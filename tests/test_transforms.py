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
        (transforms.standard(32), 32 + 2 * 4 - 2 - 1),
    ],
    ids=["pad", "jitter", "scale", "rotate", "shift", "standard"],
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
    t = transforms.compose(transforms.jitter(6), transforms.random_rotate(20.0))
    draws = {t(X, tf.constant([0, step])).numpy().tobytes() for step in range(6)}
    assert len(draws) > 1


def test_reflect_shift_moves_pixels_without_resampling():
    """pad(n, reflect) then jitter(2n): the same size, every interior pixel copied from the source."""
    t = transforms.compose(transforms.pad(3, mode="reflect"), transforms.jitter(6))
    y = t(X, tf.constant([7, 2])).numpy()
    x = X.numpy()
    hits = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
            if np.array_equal(y[:, 3:-3, 3:-3], x[:, 3 + dy : 29 + dy, 3 + dx : 29 + dx])]
    assert len(hits) == 1


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
