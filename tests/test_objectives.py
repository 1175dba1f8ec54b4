"""Objectives: composable values with hand-checkable numbers."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from filterviz import objectives
from filterviz.ascent import build_objective
from filterviz.settings import RenderSettings


def ctx(features: np.ndarray, filters: list[int]) -> objectives.Context:
    images = tf.zeros([len(filters), 4, 4, 3])
    return objectives.Context(images, tf.constant(features, tf.float32), tf.constant(filters, tf.int32))


def test_channel_and_others_by_hand():
    # two images, 2x2 maps, three filters
    f = np.zeros([2, 2, 2, 3], np.float32)
    f[0, :, :, 0] = [[1, 3], [5, 7]]  # mean 4
    f[0, :, :, 1] = -2.0  # relu -> 0
    f[0, :, :, 2] = 6.0
    f[1, :, :, 1] = [[2, 2], [2, -2]]  # mean 1, relu mean 1.5
    c = ctx(f, [0, 1])
    np.testing.assert_allclose(objectives.channel()(c).numpy(), [4.0, 1.0])
    natural = [2.0, 1.0, 3.0]
    # image 0: mean(4/2, 0/1, 6/3) * 2 = (4/3) * 2; image 1: mean(0, 1.5/1, 0) * 1 = 0.5
    np.testing.assert_allclose(objectives.others(natural)(c).numpy(), [8.0 / 3.0, 0.5], rtol=1e-6)
    total = objectives.channel() - 0.5 * objectives.others(natural)
    np.testing.assert_allclose(total(c).numpy(), [4.0 - 4.0 / 3.0, 1.0 - 0.25], rtol=1e-6)
    assert not total.own_filter_only  # it reads other filters: the engine must compute the whole layer


def test_own_filter_only_survives_algebra():
    a = objectives.channel() - 0.1 * objectives.total_variation() + 2 * objectives.blur() / 4 - objectives.l2()
    assert a.own_filter_only
    assert not (a + objectives.Objective(lambda c: c.images[:, 0, 0, 0], "custom")).own_filter_only


def test_settings_objective_adds_specificity():
    s = RenderSettings(specificity=2.0)
    assert "others" in build_objective(s, [1.0, 1.0]).name
    assert "others" not in build_objective(RenderSettings()).name


def test_colourfulness_penalty_matches_the_metric_and_spares_grey():
    from filterviz.metrics import colourfulness as metric

    rng = np.random.default_rng(0)
    vivid = rng.uniform(0, 1, [2, 8, 8, 3]).astype(np.float32)
    grey = np.repeat(rng.uniform(0, 1, [1, 8, 8, 1]), 3, axis=3).astype(np.float32)
    images = np.concatenate([vivid, grey])
    c = objectives.Context(tf.constant(images), None, tf.constant([0, 0, 0]), tf.zeros([3, 2, 2]))
    expected = np.maximum(metric(np.round(255 * images).astype(np.uint8)) - 40.0, 0.0)
    got = objectives.colourfulness(40.0)(c).numpy()
    np.testing.assert_allclose(got, expected, rtol=0.02, atol=0.5)  # the metric sees uint8-rounded pixels
    assert got[0] > 20 and got[2] == 0.0
    # maximizing minus the penalty makes the picture less colourful
    x = tf.Variable(vivid)
    with tf.GradientTape() as tape:
        score = tf.reduce_sum(-objectives.colourfulness(40.0)(objectives.Context(x, None, tf.constant([0, 0]), None)))
    x.assign_add(0.01 * tape.gradient(score, x))
    assert (metric(np.round(255 * np.clip(x.numpy(), 0, 1)).astype(np.uint8)) < metric(np.round(255 * vivid).astype(np.uint8))).all()
    grey1 = objectives.Context(tf.zeros([2, 4, 4, 1]), None, tf.constant([0, 0]), None)
    assert (objectives.colourfulness()(grey1).numpy() == 0).all()


def test_settings_objective_adds_colour_penalty():
    assert "colourfulness(50)" in build_objective(RenderSettings(colour=1.0, colour_limit=50)).name
    assert build_objective(RenderSettings(colour=1.0)).own_filter_only


def test_channel_top_is_the_mean_of_the_highest_values():
    f = np.zeros([1, 4, 5, 2], np.float32)
    f[0, :, :, 1] = np.arange(20, dtype=np.float32).reshape(4, 5) - 30.0  # -30 .. -11
    c = ctx(f, [1])
    np.testing.assert_allclose(objectives.channel_top(0.1)(c).numpy(), [(-11.0 - 12.0) / 2])  # top 2 of 20
    np.testing.assert_allclose(objectives.channel_top(1.0)(c).numpy(), objectives.channel()(c).numpy())
    assert objectives.channel_top().own_filter_only


def test_channel_fired_by_hand():
    f = np.zeros([1, 2, 2, 1], np.float32)
    f[0, :, :, 0] = [[1, -3], [5, -7]]
    c = ctx(f, [0])
    # relu mean (1 + 5) / 4 = 1.5; top quarter = the highest value, 5
    np.testing.assert_allclose(objectives.channel_fired(share=0.25, top=0.1)(c).numpy(), [1.5 + 0.5])
    np.testing.assert_allclose(objectives.channel_fired(share=0.5, top=0.0)(c).numpy(), [1.5])
    assert objectives.channel_fired().own_filter_only


def test_channel_fired_makes_an_all_negative_filter_fire():
    """A filter with centre weight +1, the 8 neighbours -1 and bias -0.5, on pictures in 0..1: its map is
    -7x - 0.5 on a flat grey picture (all negative). The plain mean is best at a black picture, where the map is
    still -0.5 everywhere (never fires); the ReLU alone has no gradient; channel_fired makes bright dots on dark,
    where the filter fires."""
    kernel = -np.ones([3, 3, 1, 1], np.float32)
    kernel[1, 1] = 1.0

    def post_relu_after(objective: objectives.Objective) -> float:
        x = tf.Variable(0.5 + 0.01 * tf.random.stateless_normal([1, 12, 12, 1], [0, 1]))
        for _ in range(60):
            with tf.GradientTape() as tape:
                maps = tf.nn.conv2d(x, kernel, 1, "SAME")[..., 0] - 0.5
                score = objective(objectives.Context(x, None, tf.constant([0]), maps))
            g = tape.gradient(score, x)
            if g is not None:
                x.assign(tf.clip_by_value(x + 0.05 * g / (tf.norm(g) + 1e-12), 0.0, 1.0))
        maps = tf.nn.conv2d(x, kernel, 1, "SAME")[..., 0] - 0.5
        return float(tf.reduce_mean(tf.nn.relu(maps)))

    start = tf.nn.conv2d(0.5 + 0.01 * tf.random.stateless_normal([1, 12, 12, 1], [0, 1]), kernel, 1, "SAME") - 0.5
    assert float(tf.reduce_max(start)) < 0
    assert post_relu_after(objectives.channel()) == 0.0
    assert post_relu_after(objectives.channel_fired()) > 0.01  # measured 0.017 (a few dots; at most 0.125)
