"""The last chance for dead filters (filterviz.wake): one unit's patch, tiled."""

from __future__ import annotations

import keras
import numpy as np

from filterviz.models import feature_extractor, load_model
from filterviz.render import prepare_render, render_plan
from filterviz.settings import RenderSettings
from filterviz.wake import patch_size, tile

# one step from a random start: a unit that needs a precise pattern stays dead
BARELY = RenderSettings(size=32, steps=1, optimizer="adam", lr=0.001, display="range", seed=3)


def test_patch_is_the_receptive_field_and_a_stride_each_side(tiny_cnn):
    """tiny_cnn: conv1 sees 3 pixels (stride 1): 3 + 2 = 5, raised to the smallest picture, 8; conv3 (after a 2x2 pool) sees 10 at stride 2:
    10 + 4 = 14; never more than the picture; a model of one input size searches the whole picture."""
    lm = load_model(tiny_cnn)
    assert patch_size(lm, "conv1", 64) == 8
    assert patch_size(lm, "conv3", 64) == 14
    assert patch_size(lm, "conv3", 12) == 12
    inp = keras.Input((24, 24, 3))
    fixed = keras.Model(inp, keras.layers.Conv2D(2, 3, name="c")(inp))
    assert patch_size(load_model(fixed), "c", 24) == 24


def test_tiles_repeat_the_centre_units_view(tiny_cnn):
    """Every unit a whole number of periods from the patch's centre unit sees exactly what it saw: the same
    value (the patch side is a multiple of the stride and holds the unit's whole receptive field)."""
    lm = load_model(tiny_cnn)
    model = feature_extractor(lm, "conv3").model
    p = patch_size(lm, "conv3", 64)
    patch = np.random.default_rng(0).uniform(0, 255, (1, p, p, 3)).astype("float32")
    centre = model(patch).numpy()[0, p // 4, p // 4]  # the map is p/2 wide; neuron() takes its (h//2, w//2)
    tiled = model(tile(patch, 4 * p)).numpy()[0]
    step = p // 2  # one period in map units
    for i in (1, 2):
        for j in (1, 2):
            np.testing.assert_allclose(tiled[p // 4 + i * step, p // 4 + j * step], centre, rtol=1e-4, atol=1e-3)


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
    p = patch_size(plan.model, "pattern", 32)
    picture = res.images[0]
    np.testing.assert_array_equal(picture[p : 2 * p], picture[:p])
    np.testing.assert_array_equal(picture[:, p : 2 * p], picture[:, :p])
