"""Parameterizations: a per-filter random start colour (start_colour) that is seeded per filter, leaves the rest
of the draw alone, and batches like one filter at a time; the guarded sigmoid (texture_guard), whose gradient is
the sigmoid's inside its limit and leads saturated logits back, only for texture units."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from filterviz import params
from filterviz.ascent import LayerRenderer
from filterviz.errors import UserError
from filterviz.models import feature_extractor
from filterviz.settings import RenderSettings


def mean_logits(param: params.Parameterization, filters: list[int], seed: int = 0) -> np.ndarray:
    """[N, C]: each start picture's mean logit (the picture before the sigmoid) per RGB channel."""
    unit = param.to_image(param.init(tf.constant(filters, tf.int32), seed)).numpy().astype(np.float64)
    return np.log(unit / (1 - unit)).mean(axis=(1, 2))


def render_batched_and_alone(ex, settings: RenderSettings, filters: list[int]):
    """Render `filters` in one batch, check that each picture equals that filter rendered alone, and return the batch."""
    batched = LayerRenderer(ex, settings.replace(chunk=len(filters))).render(filters)
    single = LayerRenderer(ex, settings.replace(chunk=1))
    for k, f in enumerate(filters):
        np.testing.assert_allclose(batched.images[k], single.render([f]).images[0], rtol=1e-4, atol=1e-3)
    return batched


def test_grey_start_is_unchanged_by_default():
    ids = tf.constant([0, 5, 9], tf.int32)
    plain = params.fourier(32, decay=1.5).init(ids, 3).numpy()
    np.testing.assert_array_equal(plain, params._seeded_normal([2, 3, 32, 17], ids, 3, 0.01).numpy())
    assert np.abs(mean_logits(params.fourier(32, decay=1.5), list(range(16)))).max() < 0.05  # grey


@pytest.mark.parametrize("size,decay", [(32, 1.5), (48, 1.0), (64, 0.0)])
def test_start_colours_differ_between_filters_and_have_the_asked_spread(size, decay):
    param = params.fourier(size, decay=decay, start_colour=1.0)
    colours = mean_logits(param, list(range(64)))
    assert np.all(np.linalg.norm(colours[:, None] - colours[None], axis=2)[~np.eye(64, dtype=bool)] > 1e-3)
    assert np.all((colours.std(axis=0) > 0.75) & (colours.std(axis=0) < 1.3)), colours.std(axis=0)  # N(0, 1) each
    assert abs(np.corrcoef(colours.T)[0, 1]) < 0.4  # RGB drawn independently, not along the luminance
    # only the mean colour moves: the picture minus its mean is the grey start's
    grey = params.fourier(size, decay=decay)
    ids = tf.constant([2, 7], tf.int32)
    diff = (param.init(ids, 0) - grey.init(ids, 0)).numpy()
    assert np.count_nonzero(diff) == 2 * 3 and np.all(diff[:, 0, :, 0, 0] != 0)


def test_start_colour_is_the_same_batched_and_alone_and_follows_the_seed():
    param = params.fourier(32, decay=1.5, start_colour=2.0)
    batch = param.init(tf.constant([1, 4, 6], tf.int32), 0).numpy()
    for k, f in enumerate([1, 4, 6]):
        np.testing.assert_array_equal(batch[k], param.init(tf.constant([f], tf.int32), 0).numpy()[0])
    assert np.abs(mean_logits(param, [4], seed=1) - mean_logits(param, [4], seed=0)).max() > 1e-2
    grey = mean_logits(params.fourier(32, decay=1.5), [4])
    half = mean_logits(params.fourier(32, decay=1.5, start_colour=1.0), [4])
    np.testing.assert_allclose((mean_logits(param, [4]) - grey) * 0.5, half - grey, atol=1e-4)  # std scales one draw


def test_grey_model_and_no_decorrelation_get_a_start_colour_too():
    for param in (params.fourier(32, channels=1, start_colour=1.0), params.fourier(32, decorrelate=False,
                                                                                    start_colour=1.0)):
        colours = mean_logits(param, list(range(32)))
        assert colours.shape[1] == param.channels and 0.6 < colours.std() < 1.4


def test_rendered_start_colours_batch_like_one_at_a_time(tiny_cnn):
    settings = RenderSettings(size=32, steps=8, lr=0.1, segment=4, param="fourier", optimizer="adam", decay=1.5,
                              start_colour=1.0)
    ex = feature_extractor(tiny_cnn, "conv2", pre_activation=True)
    batched = render_batched_and_alone(ex, settings, [0, 3, 5])
    means = batched.images.reshape(3, -1, 3).mean(axis=1)
    assert np.linalg.norm(means[0] - means[1]) > 0.02  # the filters keep colours of their own


def test_bad_start_colour_is_a_user_error():
    with pytest.raises(UserError, match="start_colour"):
        RenderSettings(start_colour=-1.0)


def test_guarded_sigmoid_is_the_sigmoid_and_pulls_back_only_past_the_limit():
    z = tf.constant([[[[-6.0, -2.5, -1.0], [0.0, 1.5, 2.0]], [[2.5, 4.0, -3.0], [0.5, -0.5, 7.0]]]])  # [1, 2, 2, 3]
    dy = tf.constant(np.random.default_rng(0).uniform(-1, 1, z.shape), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        guarded, plain = params.guarded_sigmoid(2.0)(z), tf.sigmoid(z)
    np.testing.assert_array_equal(guarded.numpy(), plain.numpy())  # the picture is the plain sigmoid's
    g, g0 = tape.gradient(guarded, z, output_gradients=dy).numpy(), tape.gradient(plain, z, output_gradients=dy).numpy()
    zn = z.numpy()
    rms = np.sqrt(np.mean(g0**2))
    d = zn - zn.mean(axis=(1, 2), keepdims=True)  # each channel's distance from its mean
    excess = np.maximum(np.abs(d) - 2.0, 0.0) * np.sign(d)
    want = g0 - rms * (excess - excess.mean(axis=(1, 2), keepdims=True))  # the penalty's exact gradient
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-7)
    calm = np.abs(d).max(axis=(1, 2)) <= 2.0  # channels with no logit past the limit: the sigmoid's gradient
    np.testing.assert_allclose(g[..., calm[0]], g0[..., calm[0]], rtol=1e-6)
    deep = np.abs(d) >= 4.0  # far from the rest of the picture, where the sigmoid has almost no gradient left
    assert deep.any() and (np.sign(g[deep]) == -np.sign(d[deep])).all()
    assert (np.abs(g[deep]) > 10 * np.abs(g0[deep])).all()


def test_guarded_sigmoid_lets_a_whole_picture_saturate():
    """A picture that is all white (or all one saturated colour) is what a brightness unit wants: no pull."""
    z = tf.constant(np.full([1, 4, 4, 3], 7.0, np.float32) * np.array([1.0, 1.0, -1.0], np.float32))
    dy = tf.ones_like(z)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        guarded, plain = params.guarded_sigmoid(2.0)(z), tf.sigmoid(z)
    np.testing.assert_allclose(tape.gradient(guarded, z, output_gradients=dy).numpy(),
                               tape.gradient(plain, z, output_gradients=dy).numpy(), rtol=1e-6)


def test_texture_guard_reaches_only_texture_parameterizations_and_guard_the_others():
    from filterviz.canvas import make_param

    settings = RenderSettings(param="fourier", optimizer="adam", lr=0.05, texture_guard=2.5)
    assert make_param(settings, 3, None, texture=True).guard == 2.5
    assert make_param(settings, 3, None, texture=False).guard == 0.0
    both = settings.replace(guard=4.0)
    assert make_param(both, 3, None, texture=True).guard == 2.5
    assert make_param(both, 3, None, texture=False).guard == 4.0
    assert make_param(both.replace(texture_guard=None), 3, None, texture=True).guard == 4.0  # unset: the guard


def test_quality_with_raw_pixels_ignores_the_guard_as_it_does_the_decay():
    """`--param pixel` on the quality preset: no sigmoid, so neither its decay nor its guard applies (no error)."""
    from filterviz.canvas import make_param
    from filterviz.settings import preset

    settings = preset("quality", param="pixel")
    assert settings.texture_guard == 2.0
    pic = make_param(settings, 3, None, texture=True)
    x = tf.random.uniform([1, *pic.shape])
    np.testing.assert_array_equal(pic.to_image(x).numpy(), x.numpy())  # raw pixels, as they are


def test_guarded_renders_batch_like_one_at_a_time(tiny_cnn):
    settings = RenderSettings(size=32, steps=8, lr=0.1, segment=4, param="fourier", optimizer="adam", decay=1.5,
                              transforms="texture", texture_guard=1.0)
    ex = feature_extractor(tiny_cnn, "conv2", pre_activation=True)
    batched = render_batched_and_alone(ex, settings, [0, 3, 5])
    unguarded = LayerRenderer(ex, settings.replace(texture_guard=0.0, chunk=3)).render([0, 3, 5])
    assert np.abs(unguarded.images - batched.images).max() > 1.0  # the guard changed the pictures
