"""The compiled ascent engine: activations rise, batching changes nothing, one trace per layer."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_tiny_cnn

from filterviz import objectives
from filterviz.ascent import LayerRenderer
from filterviz import render as render_module
from filterviz.render import render_layer
from filterviz.settings import RenderSettings, preset, select_filters
from filterviz.errors import UserError
from filterviz.models import feature_extractor, load_model

SMALL = RenderSettings(size=24, steps=12, lr=5.0, segment=4)


def renderer(model, layer="conv2", settings=SMALL, **kw) -> LayerRenderer:
    ex = feature_extractor(model, layer, pre_activation=settings.pre_activation)
    return LayerRenderer(ex, settings, **kw)


@pytest.mark.parametrize(
    "settings",
    [
        SMALL,
        SMALL.replace(param="fourier", optimizer="adam", lr=0.1, transforms="standard", size=32, steps=24),
        SMALL.replace(tv=0.5, schedule="cosine"),
        SMALL.replace(param="maco", optimizer="adam", lr=0.3, transforms="standard", size=32, steps=24, colour=0.5),
    ],
    ids=["pixel", "fourier-adam-transforms", "tv-cosine", "maco-colour"],
)
def test_activation_rises_for_every_filter(tiny_cnn, settings):
    out = renderer(tiny_cnn, settings=settings, input_range=(0.0, 255.0)).render(range(12))
    assert out.trace.shape == (12, settings.steps)
    assert np.all(out.trace[:, -1] > out.trace[:, 0]), out.trace[:, [0, -1]]
    assert np.all(out.scores > out.trace[:, 0])
    assert not out.nonfinite.any()


def test_batched_equals_one_at_a_time(tiny_cnn):
    ids = [0, 3, 5, 11]
    batched = renderer(tiny_cnn, settings=SMALL.replace(chunk=4)).render(ids)
    single = renderer(tiny_cnn, settings=SMALL.replace(chunk=1))
    for k, f in enumerate(ids):
        one = single.render([f])
        np.testing.assert_allclose(batched.images[k], one.images[0], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(batched.trace[k], one.trace[0], rtol=1e-4, atol=1e-4)


def test_one_trace_serves_every_chunk(tiny_cnn):
    r = renderer(tiny_cnn, settings=SMALL.replace(chunk=5))
    out = r.render(range(12))  # chunks of 5, 5 and a padded 2
    assert r.traces == 1
    r.render([1, 2])
    assert r.traces == 1
    assert out.images.shape == (12, 24, 24, 3)


def test_gradient_is_normalized_per_image(tiny_cnn):
    """Scaling one image's objective by 1000 changes nothing: no image's step depends on another's."""
    ids = [0, 1, 2, 3]
    base = renderer(tiny_cnn, settings=SMALL.replace(chunk=4)).render(ids)

    def louder(c: objectives.Context) -> tf.Tensor:
        weight = tf.where(tf.equal(c.filters, 2), 1000.0, 1.0)
        return weight * objectives.channel()(c)

    out = renderer(tiny_cnn, settings=SMALL.replace(chunk=4), objective=objectives.Objective(louder, "loud")).render(ids)
    np.testing.assert_allclose(out.images, base.images, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(out.trace[[0, 1, 3]], base.trace[[0, 1, 3]], rtol=1e-4, atol=1e-4)


def test_same_seed_same_images_other_seed_differs(tiny_cnn):
    a = renderer(tiny_cnn).render([0, 1])
    b = renderer(tiny_cnn).render([0, 1])
    c = renderer(tiny_cnn, settings=SMALL.replace(seed=1)).render([0, 1])
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.allclose(a.images, c.images)


def test_pre_activation_copy_leaves_model_untouched(tiny_cnn, tiny_weights):
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    before = tiny_cnn(x).numpy()
    ex = feature_extractor(tiny_cnn, "conv2")
    assert tiny_cnn.get_layer("conv2").activation.__name__ == "relu"
    feats = ex.model(x).numpy()
    post = feature_extractor(tiny_cnn, "conv2", pre_activation=False).model(x).numpy()
    assert (feats < 0).any() and (post >= 0).all()
    np.testing.assert_allclose(np.maximum(feats, 0), post, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(tiny_cnn(x).numpy(), before)
    for w, w0 in zip(tiny_cnn.get_weights(), tiny_weights):
        np.testing.assert_array_equal(w, w0)


def test_extractor_sync_follows_new_weights(tiny_cnn):
    ex = feature_extractor(tiny_cnn, "conv2")
    layer = tiny_cnn.get_layer("conv2")
    layer.kernel.assign(layer.kernel * 2.0)
    ex.sync()
    x = np.ones((1, 8, 8, 3), "float32") * 100
    post = feature_extractor(tiny_cnn, "conv2", pre_activation=False).model(x).numpy()
    np.testing.assert_allclose(np.maximum(ex.model(x).numpy(), 0), post, rtol=1e-5, atol=1e-4)


def test_render_layer_result(tiny_cnn):
    res = render_layer(load_model(tiny_cnn), "conv3", "0:4", SMALL)
    assert res.filters.tolist() == [0, 1, 2, 3]
    assert res.display.dtype == np.uint8 and res.display.shape == (4, 24, 24, 3)
    assert res.grid.ndim == 3 and res.grid.shape[2] == 3
    assert len(res.metrics) == 4 and all(r["objective_end"] > r["objective_start"] for r in res.metrics)
    assert np.isfinite(res.activations).all()


def test_nonfinite_is_flagged_and_retried(tiny_cnn):
    """A NaN forced into one filter's objective is caught inside the loop; it never reaches a picture."""

    def poisoned(c: objectives.Context) -> tf.Tensor:
        factor = tf.where(tf.equal(c.filters, 1), np.float32(np.nan), np.float32(1.0))  # NaN for filter 1 only
        return objectives.channel()(c) * factor

    res = render_layer(load_model(tiny_cnn), "conv2", [0, 1, 2], SMALL, objective=objectives.Objective(poisoned, "nan"))
    rows = {r["filter"]: r for r in res.metrics}
    assert rows[1]["nonfinite"] and rows[1]["retried"]
    assert not rows[0]["nonfinite"] and not rows[2]["nonfinite"]
    assert np.isfinite(res.images).all() and res.display.dtype == np.uint8


def test_objective_algebra():
    c = objectives.Context(
        images=tf.fill([2, 4, 4, 3], 0.5), features=tf.reshape(tf.range(2 * 2 * 2 * 3, dtype=tf.float32), [2, 2, 2, 3]),
        filters=tf.constant([0, 2]),
    )
    ch = objectives.channel()(c).numpy()
    np.testing.assert_allclose(ch, [4.5, 18.5])
    combo = objectives.channel() - 0.5 * objectives.total_variation() + 2 * objectives.l2()
    np.testing.assert_allclose(combo(c).numpy(), ch)  # flat grey image: tv = l2 = 0
    np.testing.assert_allclose((-objectives.channel() / 2)(c).numpy(), -ch / 2)


@pytest.mark.parametrize(
    "spec, n, expected",
    [(None, 4, [0, 1, 2, 3]), ("all", 3, [0, 1, 2]), ("1:3", 5, [1, 2]), (":2", 5, [0, 1]), ("3:", 5, [3, 4]),
     ("3,1", 5, [3, 1]), ([2], 5, [2]), (4, 5, [4])],
)
def test_select_filters(spec, n, expected):
    assert select_filters(spec, n).tolist() == expected


@pytest.mark.parametrize("spec, word", [("9", "9"), ("0:99", "0:99"), ("a,b", "a,b"), ("-1", "-1"), ("3:3", "3:3")])
def test_select_filters_errors_name_the_value(spec, word):
    with pytest.raises(UserError, match=word):
        select_filters(spec, 5, "conv")


@pytest.mark.parametrize(
    "field, value", [("size", 0), ("steps", 0), ("steps", -3), ("lr", 0.0), ("chunk", 0), ("param", "voxel"),
                     ("optimizer", "sgd"), ("tv", -1.0), ("size", 2.5), ("precision", "fp8"),
                     ("colour", -1.0), ("colour_limit", -5.0), ("contrast", 0.0), ("contrast", 3.0), ("param", "maco2")],
)
def test_settings_validation_names_field_and_value(field, value):
    with pytest.raises(UserError, match=field):
        RenderSettings(**{field: value})


def test_maco_and_specificity_on_a_four_channel_model():
    """The photo-based pieces (MaCo's spectrum, the specificity baseline) work for any channel count."""
    four = make_tiny_cnn(channels=4)
    settings = SMALL.replace(param="maco", optimizer="adam", lr=0.3, size=16, steps=4, specificity=1.0)
    out = renderer(four, settings=settings, channels=4).render([0, 1])
    assert out.images.shape == (2, 16, 16, 4) and np.isfinite(out.images).all()
    assert (out.scores > out.trace[:, 0]).all(), (out.trace[:, 0], out.scores)


def test_unknown_preset():
    with pytest.raises(UserError, match="'best'.*fast"):
        preset("best")


def test_vgg16_hed_small():
    """The embedded default model loads offline and renders at a small size."""
    lm = load_model("vgg16-hed")
    assert lm.name == "vgg16-hed" and lm.input_range == (0.0, 255.0)
    res = render_layer(lm, "block1_conv1", "0:3", RenderSettings(size=24, steps=4, segment=2))
    assert (res.trace[:, -1] > res.trace[:, 0]).all()
    assert (res.activations > 0).all()


def test_tiny_other_channels():
    """A grayscale model works end to end."""
    m = make_tiny_cnn(channels=1)
    res = render_layer(load_model(m), "conv1", "0:2", SMALL)
    assert res.images.shape == (2, 24, 24, 1) and res.grid.shape[2] == 1
    assert (res.trace[:, -1] > res.trace[:, 0]).all() and (res.activations > 0).all()


def test_out_of_memory_halves_the_chunk(tiny_cnn, monkeypatch):
    real = LayerRenderer.render
    seen = []

    def render(self, filters, progress=None, lr=None, starts=None):
        seen.append(self.chunk)
        if self.chunk > 2:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
        return real(self, filters, progress, lr, starts)

    monkeypatch.setattr(LayerRenderer, "render", render)
    res = render_layer(load_model(tiny_cnn), "conv2", "0:8", SMALL.replace(chunk=8))
    # render_layer calls render once per chunk (then maybe once more for the rescue: filterviz.rescue)
    assert seen[:6] == [8, 4, 2, 2, 2, 2] and len(res.filters) == 8


def test_out_of_memory_at_one_filter_is_a_user_error(tiny_cnn, monkeypatch):
    def render(self, filters, progress=None, lr=None, starts=None):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM")

    monkeypatch.setattr(LayerRenderer, "render", render)
    with pytest.raises(UserError, match="out of memory.*conv2"):
        render_layer(load_model(tiny_cnn), "conv2", "0:2", SMALL.replace(chunk=1))


@pytest.fixture
def filter_0_dead_once(monkeypatch):
    """Make the first quality_metrics call of a render report filter 0 as dead; returns the filters of each call.
    `calls.real()` restores the real metrics."""
    from filterviz import metrics

    real = metrics.quality_metrics

    class Calls(list):
        def real(self):
            monkeypatch.setattr(metrics, "quality_metrics", real)

    calls = Calls()

    def first_call_says_filter_0_is_dead(post, shown, display, filters, **kw):
        q = real(post, shown, display, filters, **kw)
        calls.append([int(f) for f in filters])
        if len(calls) == 1:
            q["activation"][0], q["dead"][0] = 0.0, True
        return q

    monkeypatch.setattr(metrics, "quality_metrics", first_call_says_filter_0_is_dead)

    def no_photo_rescue(filters, renderer, photos, model, out, display, quality, measure):
        return out, display, np.zeros(len(filters), bool)  # these tests are about the dead filters' rescue only

    monkeypatch.setattr(render_module, "rescue_failed", no_photo_rescue)
    return calls


def test_dead_filter_is_rescued_with_adam(tiny_cnn, filter_0_dead_once):
    """A filter dead on its displayed picture is re-run once with Adam (small steps) and flagged."""
    calls = filter_0_dead_once
    res = render_layer(tiny_cnn, "conv2", [0, 1], SMALL)
    assert calls == [[0, 1], [0]]
    assert res.metrics[0]["rescued"] and not res.metrics[0]["dead"] and res.activations[0] > 0
    assert not res.metrics[1]["rescued"]
    calls.real()
    adam = render_layer(tiny_cnn, "conv2", [0], SMALL.replace(optimizer="adam", lr=0.05))
    np.testing.assert_allclose(res.images[0], adam.images[0], rtol=1e-4, atol=1e-2)


def test_dead_filter_of_an_adam_preset_is_rescued_on_its_map_top(tiny_cnn, filter_0_dead_once):
    """With Adam (e.g. MaCo pictures), a dead filter is re-run for twice the steps on the mean of its map's top
    5%; a caller's own objective is left alone."""
    calls = filter_0_dead_once
    settings = SMALL.replace(param="maco", optimizer="adam", lr=0.3, size=32, steps=6, segment=3)
    res = render_layer(tiny_cnn, "conv2", [0, 1], settings)
    assert calls == [[0, 1], [0]]
    assert res.metrics[0]["rescued"] and not res.metrics[1]["rescued"] and res.trace.shape == (2, 6)
    calls.clear()
    render_layer(tiny_cnn, "conv2", [0, 1], settings, objective=objectives.channel())
    assert calls == [[0, 1]]  # no rescue with the caller's objective
    calls.real()
    top = render_layer(tiny_cnn, "conv2", [0], settings.replace(steps=12), objective=objectives.channel_top(0.05))
    np.testing.assert_allclose(res.images[0], top.images[0], rtol=1e-4, atol=1e-2)


def test_raw_pixels_shown_as_rendered_stay_in_range(tiny_cnn):
    """Pixel pictures shown as rendered (display range) are kept in the input range at every step, so the grid
    shows exactly what was optimized; stretched ones (display std) are free to leave it."""
    shown = render_layer(tiny_cnn, "conv2", "0:3", SMALL.replace(display="range", lr=50.0))
    assert shown.images.min() >= 0.0 and shown.images.max() <= 255.0
    np.testing.assert_array_equal(shown.display, np.round(shown.images / 255.0 * 255.0).astype(np.uint8))
    free = render_layer(tiny_cnn, "conv2", "0:3", SMALL.replace(lr=50.0))
    assert free.images.min() < 0.0 or free.images.max() > 255.0


def test_auto_transforms_follow_the_receptive_field(tiny_cnn):
    """transforms 'auto': texture (a roll anywhere, then wide) where the unit sees at most 1/8 of the picture's
    side, wide where it sees more; wide for a model without a layer graph (no field to work out)."""
    auto = SMALL.replace(transforms="auto", size=64)
    assert renderer(tiny_cnn, "conv1", auto).transform.name.startswith("roll(32) > pad(8, reflect)")  # field 3 <= 8
    assert renderer(tiny_cnn, "conv3", auto).transform.name.startswith("pad(8, reflect)")  # field 10 > 8
    assert renderer(tiny_cnn, "conv3", auto.replace(size=96)).transform.name.startswith("roll(48)")  # 10 <= 12
    from filterviz.models import callable_model

    net = callable_model(lambda x: tf.nn.relu(tf.nn.avg_pool2d(x, 3, 1, "SAME") - 100.0))
    ex = feature_extractor(net, None)
    assert LayerRenderer(ex, auto).transform.name.startswith("pad(8, reflect)")


def test_photo_colour_starts_each_filter_towards_its_photos_colour(tiny_cnn):
    """photo_colour s: filter f's picture starts s of the way from grey to the mean colour of the 5 photo crops
    that excite f most (its mean logit shifted exactly, the random draw kept); batched equals one at a time."""
    from filterviz import canvas

    s = SMALL.replace(param="fourier", optimizer="adam", lr=0.05, size=32, photo_colour=0.5)
    r = renderer(tiny_cnn, "conv2", s)
    ids = np.asarray([0, 3, 7], np.int32)
    fav = r.photos.favourite_colours(r.extractor.model, ids) / 255.0
    assert np.ptp(fav, axis=0).max() > 0.05  # the filters like differently coloured photos
    start = r.param.to_image(r.param.init(tf.constant(ids), s.seed) + canvas.photo_colour_offset(
        r.param, r.photos, r.extractor.model, ids, 0.5)).numpy()
    np.testing.assert_allclose(start.mean(axis=(1, 2)), 0.5 + 0.5 * (fav - 0.5), atol=0.01)
    acts = r.photos._responses(r.extractor.model, 16)[::2, ids]  # each crop, its mirror image (same colour) left out
    top = np.argsort(-acts, axis=0)[:5]
    np.testing.assert_allclose(fav[1], r.photos.photos[::2][top[:, 1]].mean(axis=(0, 1, 2)) / 255.0, atol=1e-5)
    batched = renderer(tiny_cnn, "conv2", s.replace(chunk=3)).render(ids)
    for k, f in enumerate(ids):
        one = renderer(tiny_cnn, "conv2", s.replace(chunk=1)).render([f])
        np.testing.assert_allclose(batched.images[k], one.images[0], rtol=1e-4, atol=1e-3)
    grey = renderer(tiny_cnn, "conv2", s.replace(photo_colour=0.0)).render(ids)
    assert np.abs(grey.images.mean(axis=(1, 2)) - batched.images.mean(axis=(1, 2))).max() > 1.0  # 0-255 input
