"""Second chances (filterviz.rescue): a filter that a photo crop beats is re-run from that crop."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from filterviz import canvas, metrics, params
from filterviz.render import prepare_render, render_plan
from filterviz.settings import RenderSettings

# one step from a random start: the pictures stay noise, which most photo crops beat
BARELY = RenderSettings(size=32, steps=1, optimizer="adam", lr=0.001, display="range", seed=3)


@pytest.mark.parametrize("kind", ["pixel", "fourier"])
def test_start_params_reproduce_the_start_images(kind):
    """pixel and fourier invert exactly: the first picture of a photo start is the crop itself."""
    param = params.Parameterization(kind, 32, 3, decay=1.5)
    crops = metrics.photo_crops(32, 3, flips=False)[:3] / 255.0
    p = canvas.start_params(param, crops)
    assert p.shape == (3, *param.shape)
    back = param.to_image(tf.constant(p)).numpy()
    np.testing.assert_allclose(back, np.clip(crops, 1 / 512, 511 / 512) if kind == "fourier" else crops, atol=2e-3)


@pytest.mark.parametrize("param", ["pixel", "maco"])
def test_failed_filters_restart_from_their_best_crop(tiny_cnn, param):
    """Every filter a crop beats without the rescue is re-run from its best crop; each redo kept beats its first
    picture, is marked photo_start, and at least one filter needs it (the test is not vacuous). MaCo's redo
    climbs in Fourier space, as its fixed spectrum cannot hold the crop."""
    plan = prepare_render(tiny_cnn, "conv2", "0:12", BARELY.replace(param=param))
    plain = render_plan(plan, rescue=False)
    failed = [r["filter"] for r in plain.metrics if r["failed"]]
    assert len(failed) >= 3
    res = render_plan(plan)
    by_filter = {r["filter"]: r for r in res.metrics}
    started = [f for f, r in by_filter.items() if r["photo_start"]]
    assert started and set(started) <= set(failed)
    for r0 in plain.metrics:
        r = by_filter[r0["filter"]]
        if r["photo_start"]:
            assert r["rescued"] and r["photo_ratio"] > r0["photo_ratio"]
            assert r["photo_ratio"] >= 0.99  # from the best crop (ratio 1), one small step up, uint8-rounded
        else:
            assert r["photo_ratio"] == r0["photo_ratio"]
    assert sum(r["failed"] for r in res.metrics) < len(failed)


def test_failed_filters_grow_again_without_the_colour_limit(tiny_cnn):
    """Under a colour limit that holds every picture grey, photo crops beat them all; each is first re-run from
    noise without the limit and the redo kept where it beats the first picture (`colour_free`: more colourful and
    a higher photo_ratio); at least one is (the test is not vacuous). A render without the limit has none."""
    limited = RenderSettings(size=32, steps=16, param="fourier", optimizer="adam", lr=0.05, display="range", seed=3,
                             objective="fired", colour=20.0, colour_limit=0.0, specificity=1.0)
    plan = prepare_render(tiny_cnn, "conv2", "0:12", limited)
    plain = {r["filter"]: r for r in render_plan(plan, rescue=False).metrics}
    res = render_plan(plan)
    free = [r for r in res.metrics if r["colour_free"]]
    assert free
    for r in free:
        r0 = plain[r["filter"]]
        assert r0["failed"] and r["rescued"] and not r["photo_start"]
        assert r["photo_ratio"] > r0["photo_ratio"] and r["colourfulness"] > r0["colourfulness"] + 5
    unlimited = render_plan(prepare_render(tiny_cnn, "conv2", "0:12", limited.replace(colour=0.0)))
    assert not any(r["colour_free"] for r in unlimited.metrics)


def test_best_crops_are_the_best(tiny_cnn):
    """NaturalPhotos.best_crops gives, for each filter, the crop whose activation is its best."""
    plan = prepare_render(tiny_cnn, "conv2", "0:4", BARELY)
    model = plan.post.model
    crops = plan.photos.best_crops(model, np.arange(4))
    acts = metrics.inner_means(model, crops)[np.arange(4), np.arange(4)]
    np.testing.assert_allclose(acts, plan.photos.best(model)[:4], rtol=1e-5)


def test_a_render_judges_against_the_benchmarks_crops_mirror_images_included(tiny_cnn):
    """The render flags (and rescues) a picture beaten by any crop that benchmarks/quality.py scores it against:
    the same best activation per filter, and some filter's best crop here is a mirror image (without them, a
    picture the benchmark counted as beaten by 0.2% passed the render's check)."""
    plan = prepare_render(tiny_cnn, "conv2", "0:4", BARELY)
    model = plan.post.model
    size, channels = plan.settings.size, plan.model.channels
    bench = metrics.best_photo_activation(model, metrics.photo_crops(size, channels))
    np.testing.assert_array_equal(plan.photos.best(model), bench)
    originals = metrics.best_photo_activation(model, metrics.photo_crops(size, channels, flips=False))
    assert (bench >= originals * (1 - 1e-5)).all() and (bench > originals * 1.05).any(), (bench, originals)


def test_tile_labels_say_how_each_picture_was_made():
    """White box: grown from noise; red: flagged (dead or beaten by a photo); blue: grown from a photo crop
    (red wins); purple: a unit's tiled patch; grey pictures get black, mid-grey and dark grey boxes."""
    from filterviz import grid

    pics = np.full((3, 64, 64, 3), 128, np.uint8)
    out = grid.tile(pics, cols=3, margin=0, labels=[0, 1, 2], flagged=[False, True, True],
                    from_photo=[False, False, True])
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 64].tolist() == list(grid.FLAG_RGB) and out[0, 128].tolist() == list(grid.FLAG_RGB)
    out = grid.tile(pics, cols=3, margin=0, labels=[0, 1, 2], from_photo=[False, True, False])
    assert out[0, 64].tolist() == list(grid.PHOTO_RGB) and out[0, 128].tolist() == [255, 255, 255]
    out = grid.tile(pics, cols=3, margin=0, labels=[0, 1, 2], from_photo=[False, True, False],
                    woken=[False, False, True])
    assert out[0, 64].tolist() == list(grid.PHOTO_RGB) and out[0, 128].tolist() == list(grid.PATCH_RGB)
    grey = grid.tile(pics[..., :1], cols=3, margin=0, labels=[0, 1, 2], flagged=[False, True, False],
                     from_photo=[False, False, True])
    assert grey[0, 0, 0] == 255 and grey[0, 64, 0] == 0 and grey[0, 128, 0] == 100
    grey = grid.tile(pics[..., :1], cols=3, margin=0, labels=[0, 1, 2], woken=[False, True, False])
    assert grey[0, 64, 0] == 50


def test_summary_line_names_each_kind_of_weak_filter():
    from filterviz.cli.layer import weak_filters

    def row(f, dead=False, failed=False, best=1.0, photo=False, woken=False, free=False):
        return {"filter": f, "dead": dead, "failed": failed, "photo_best": best, "photo_start": photo, "woken": woken,
                "colour_free": free}

    text = weak_filters([row(0), row(1, dead=True, failed=True), row(2, dead=True, best=0.0),
                         row(3, failed=True), row(4, photo=True), row(5, best=0.0, woken=True), row(6, free=True)])
    assert text == (", 2 dead (1, 2) of which 1 no photo crop fires either (2), 1 below the best photo crop (3), "
                    "1 grown without the colour limit (6), "
                    "1 grown from their best photo crop (4; blue numbers in the grid), 1 woken from one unit's "
                    "tiled patch (5; purple numbers in the grid); red numbers in the grid")
    assert weak_filters([row(0), row(1)]) == ", 0 dead"
