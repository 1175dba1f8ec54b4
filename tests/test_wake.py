"""The last chance for dead filters (filterviz.wake): one unit's patch, tiled."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from filterviz.models import feature_extractor, load_model
from filterviz.render import prepare_render, render_plan
from filterviz.settings import RenderSettings
from filterviz.wake import Patch, patch_geometry, tile

# one step from a random start: a unit that needs a precise pattern stays dead
BARELY = RenderSettings(size=32, steps=1, optimizer="adam", lr=0.001, display="range", seed=3)


def test_patch_is_the_receptive_field_searched_with_a_stride_each_side(tiny_cnn):
    """tiny_cnn: conv1 sees 3 pixels (stride 1): period 3, searched on 3 + 2 = 5 raised to the smallest picture,
    8, where the centre unit (4) sees pixels 3-5; conv3 (after a 2x2 pool) sees 10 at stride 2: period 10,
    searched on 10 + 4 = 14 (never more than the picture), where the centre unit (3) sees pixels 2-11."""
    lm = load_model(tiny_cnn)
    assert patch_geometry(lm, "conv1", 64) == Patch(8, 3, 3, 3)
    assert patch_geometry(lm, "conv3", 64) == Patch(14, 10, 2, 2)
    assert patch_geometry(lm, "conv3", 12) == Patch(12, 10, 2, 2)


def _fixed_size(side: int = 24) -> keras.Model:
    inp = keras.Input((side, side, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inp)
    x = keras.layers.MaxPooling2D(2)(x)
    return keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same", name="c")(x), name="fixed")


def test_a_model_of_one_size_is_searched_whole_and_tiled_around_its_centre_unit():
    """The model takes 24x24 only: the search canvas is the picture; the period, 8, is the window the centre unit
    sees (map 12x12, unit (6, 6): pool cells 5-7, conv a 10-15, pixels 9-16), so the picture equals the canvas
    there and repeats it every 8 pixels."""
    patch = patch_geometry(load_model(_fixed_size()), "c", 24)
    assert patch == Patch(24, 8, 9, 9)
    canvas = np.arange(24 * 24, dtype="float32").reshape(1, 24, 24, 1)
    picture = tile(canvas, patch, 24)
    np.testing.assert_array_equal(picture[0, 9:17, 9:17], canvas[0, 9:17, 9:17])
    np.testing.assert_array_equal(picture[0, 1:9], picture[0, 9:17])
    np.testing.assert_array_equal(picture[0, 17:], picture[0, 9:16])


@pytest.mark.parametrize("fixed", [False, True])
def test_tiles_repeat_the_centre_units_view(tiny_cnn, fixed):
    """Every unit a whole number of periods from the centre unit sees exactly what it saw on the search canvas:
    the same value (the period is a multiple of the stride, and its window holds the unit's whole receptive
    field)."""
    lm = load_model(_fixed_size(48) if fixed else tiny_cnn)
    layer, size = ("c", 48) if fixed else ("conv3", 56)
    model = feature_extractor(lm, layer).model
    patch = patch_geometry(lm, layer, size)
    canvas = np.random.default_rng(0).uniform(0, 255, (1, patch.search, patch.search, 3)).astype("float32")
    searched = model(canvas).numpy()[0]
    c = searched.shape[0] // 2  # neuron() climbs the map's (h//2, w//2)
    tiled = model(tile(canvas, patch, size)).numpy()[0]
    step = patch.period // 2  # one period in map units (stride 2)
    for i in (-1, 1) if fixed else (1, 2):
        for j in (-1, 1) if fixed else (1, 2):
            np.testing.assert_allclose(tiled[c + i * step, c + j * step], searched[c, c], rtol=1e-4, atol=1e-3)


def _pattern_unit() -> keras.Model:
    """One filter that fires only where a 3x3 checkerboard of black and white meets it closely (bias -20 of the
    27 a perfect one gives), beside an ordinary filter."""
    inp = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    conv = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="pattern")
    out = conv(x)
    board = np.indices((3, 3)).sum(axis=0) % 2 * 2.0 - 1.0  # +-1
    kernel = np.zeros((3, 3, 3, 2), "float32")
    kernel[..., 0] = board[..., None]
    kernel[1, 1, :, 1] = 1.0
    conv.set_weights([kernel, np.asarray([-20.0, 0.0], "float32")])
    return keras.Model(inp, out, name="pattern_model")


def test_a_unit_only_a_pattern_fires_is_woken():
    """Dead after one step from noise (and after the dead-filter rescue); woken by its centre unit's patch,
    tiled: it fires, the row says so, and the picture repeats with the patch's period."""
    plan = prepare_render(_pattern_unit(), "pattern", "0:2", BARELY)
    plain = render_plan(plan, rescue=False)
    assert [r["dead"] for r in plain.metrics] == [True, False]
    res = render_plan(plan)
    row = res.metrics[0]
    assert not row["dead"] and row["woken"] and row["rescued"] and row["activation"] > 0
    from filterviz import grid

    assert res.grid[2, 2].tolist() == list(grid.PATCH_RGB)  # its label box is purple (the tile's top-left corner)
    assert not res.metrics[1]["woken"]
    p = patch_geometry(plan.model, "pattern", 32).period
    picture = res.images[0]
    np.testing.assert_array_equal(picture[p : 2 * p], picture[:p])
    np.testing.assert_array_equal(picture[:, p : 2 * p], picture[:, :p])
