"""A last chance for filters that nothing fires: find what one of their units responds to, then tile it.

Some units fire only on a precise pixel-level pattern at one phase of the network's strides (vgg16-hed's
block2_conv2 filters 7 and 8, block3_conv3 filter 4): no photo crop fires them, and a smooth picture that must
raise the whole map's mean (with shifts and zooms on top) never gets any place of the map above 0, so the render
and the dead-filter rescue (filterviz.rescue) leave them dead. Yet a unit alone climbs easily: raw pixels with
Adam on the unit at the centre of a small canvas, its receptive field plus a stride on each side, fire it within
a hundred or so steps and at a second of cost.

The window of the search canvas that the centre unit sees is then tiled over the picture. Its side, the period, is
the unit's receptive field rounded up to a multiple of the layer's stride, so that every unit one period away from
the centre sees exactly what the centre unit saw: the picture fires the filter at one place in every period (more
where the shifted copies fire too). A model that takes one input size only is searched on the whole picture. Such
a picture is what the unit responds to, not a texture that survives shifts: these units lose it under a one-pixel
shift (their robustness is near 0), and the metrics row says `woken`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .ascent import LayerRenderer
from .chunks import ChunkOutput
from .errors import UserError
from .models import LoadedModel
from .objectives import neuron
from .receptive import receptive_field
from .rescue import Measure, merge
from .settings import SCHEMA, RenderSettings

__all__ = ["STEPS", "LONG_STEPS", "LR", "Patch", "patch_geometry", "searches", "tile", "wake_dead"]

STEPS = 150  # Adam steps of the first search (vgg16-hed's units above fire within 50-100)
# the second search, for units still dead: the compute of LONG_STEPS steps on a LONG_SIDE-pixel patch (mtcnn's ONet
# conv2 filter 1, whose kernel's norm is 2% of its neighbours', first fires after about 1,060 steps)
LONG_STEPS, LONG_SIDE = 2000, 48
LR = 0.01  # Adam's step in unit space: 2.5 grey levels


@dataclass(frozen=True)
class Patch:
    """Where a unit is searched and how its picture repeats: the search canvas is `search` pixels square; the
    `period` x `period` window at (`top`, `left`) of it, which holds the centre unit's whole receptive field, is
    tiled over the picture in place (so the picture equals the search canvas inside the window)."""

    search: int
    period: int
    top: int = 0
    left: int = 0


def patch_geometry(model: LoadedModel, layer: str, size: int) -> Patch:
    """The period: the centre unit's receptive field rounded up to a multiple of every stride on the way to
    `layer` (so that the tiles repeat in step with the map), at most `size`. The search canvas: the field and one
    stride on each side (at least 8, the smallest picture), or the whole picture where the model takes one size
    only; the window is cut around the centre unit's field. No tiling (a period of `size`) where the unit sees the
    whole picture or the layer has no plain geometry (a nested address)."""
    try:
        field = receptive_field(model, layer, size)
    except UserError:
        return Patch(size, size)
    if field.whole:
        return Patch(size, size)
    jump = math.lcm(*(int(j) for j, _, _ in field.rows + field.cols))
    up = lambda n: -(-n // jump) * jump  # noqa: E731
    span = max(field.size)
    period = min(size, up(span))
    search = size if model.fixed_size is not None else min(size, up(max(span + 2 * jump, int(SCHEMA["size"].min))))
    if search != size:
        try:
            field = receptive_field(model, layer, search)
        except UserError:  # e.g. 'valid' padding leaves no map at that size: search the whole picture
            return Patch(size, size)
    h, w = field.map_size
    top, left, bottom, right = field.box(h // 2, w // 2)  # the unit neuron() climbs
    start = lambda lo, hi: int(np.clip(lo - (period - (hi - lo)) // 2, 0, search - period))  # noqa: E731
    return Patch(search, period, start(top, bottom), start(left, right))


def tile(canvases: np.ndarray, patch: Patch, size: int) -> np.ndarray:
    """[N, search, search, C] canvases -> [N, size, size, C]: each one's window (`patch`) repeated in place."""
    p = patch.period
    rows = patch.top + (np.arange(size) - patch.top) % p
    cols = patch.left + (np.arange(size) - patch.left) % p
    return canvases[:, rows][:, :, cols]


def searches(side: int) -> tuple[int, ...]:
    """The steps of each search on a `side`-pixel canvas: a short one, then, for the units still dead, a long
    one of a fixed compute (fewer steps on a larger canvas), where that is longer."""
    long = int(min(LONG_STEPS, LONG_STEPS * (LONG_SIDE / side) ** 2))
    return (STEPS, long) if long > STEPS else (STEPS,)


def _finder(renderer: LayerRenderer, side: int, n: int, steps: int) -> LayerRenderer:
    """The loop that climbs each filter's centre unit on a patch: raw pixels kept in range, Adam, no transforms
    (the unit is searched where it is, whatever a shift does to it), float32."""
    s = renderer.settings
    settings = RenderSettings(size=side, steps=steps, param="pixel", optimizer="adam", lr=LR, seed=s.seed,
                              display="range")  # raw pixels kept in range as they climb: the picture is the search
    return LayerRenderer(renderer.extractor, settings, channels=renderer.param.channels,
                         input_range=renderer.input_range, objective=neuron(), max_filters=n)


def wake_dead(
    filters: np.ndarray, renderer: LayerRenderer, model: LoadedModel, layer: str, out: ChunkOutput,
    display: np.ndarray, quality: dict, measure: Measure,
) -> tuple[ChunkOutput, np.ndarray, np.ndarray]:
    """Give each filter still dead the tiled patch its centre unit climbed (see the module), where that fires it; a
    second, longer search for those the first leaves dead (`searches`). Not for renders with the caller's own
    objective, from the user's image, with several pictures per filter or spread over several devices, nor for
    layers without a feature map. `model` and `layer` are what `renderer` climbs (for the patch's geometry);
    `measure(images, filters)` -> (display, quality), as for filterviz.rescue.
    Returns the output, the display and a mask of the filters woken; `quality` is updated in place."""
    s = renderer.settings
    woken = np.zeros(len(filters), bool)
    spatial = len(renderer.extractor.model.outputs[0].shape) == 4
    own = renderer.default_objective  # a caller's objective is never swapped (nor by filterviz.rescue)
    plain = not s.init and s.diversity == 1 and renderer.strategy is None
    if not (quality["dead"].any() and spatial and own and plain):
        return out, display, woken
    patch = patch_geometry(model, layer, s.size)  # `layer` of `model`, whose unit `renderer` climbs
    for steps in searches(patch.search):
        dead = np.flatnonzero(quality["dead"])
        if not len(dead):
            break
        found = _finder(renderer, patch.search, len(dead), steps).render(filters[dead])
        tiled = ChunkOutput(tile(found.images, patch, s.size), found.scores, found.trace, found.nonfinite,
                            found.filters)
        redo_display, redo_quality = measure(tiled.images, filters[dead])
        fires = ~np.asarray(redo_quality["dead"], bool)
        out, display, took = merge(out, display, quality, dead, tiled, redo_display, redo_quality, fires)
        woken |= took
    return out, display, woken
