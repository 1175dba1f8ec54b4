"""A last chance for filters that nothing fires: find what one of their units responds to, then tile it.

Some units fire only on a precise pixel-level pattern at one phase of the network's strides (vgg16-hed's
block2_conv2 filters 7 and 8, block3_conv3 filter 4): no photo crop fires them, and a smooth picture that must
raise the whole map's mean (with shifts and zooms on top) never gets any place of the map above 0, so the render
and the dead-filter rescue (filterviz.rescue) leave them dead. Yet a unit alone climbs easily: raw pixels with
Adam on the unit at the centre of a small canvas, its receptive field plus a stride on each side, fire it within
a hundred or so steps and at a second of cost.

The patch is then tiled over the picture. Its side is a multiple of the layer's stride, so that every unit one
period away from the centre sees exactly the patch the centre unit saw: the picture fires the filter at one
place in every period (more where the shifted copies fire too). Such a picture is what the unit responds to, not
a texture that survives shifts: these units lose it under a one-pixel shift (their robustness is near 0), and
the metrics row says `woken`.
"""

from __future__ import annotations

import math

import numpy as np

from .ascent import LayerRenderer
from .chunks import ChunkOutput
from .errors import UserError
from .models import LoadedModel
from .objectives import neuron
from .receptive import receptive_field
from .rescue import Measure, merge
from .settings import SCHEMA, RenderSettings

__all__ = ["STEPS", "LONG_STEPS", "LR", "patch_size", "searches", "tile", "wake_dead"]

STEPS = 150  # Adam steps of the first search (vgg16-hed's units above fire within 50-100)
# the second search, for units still dead: the compute of LONG_STEPS steps on a LONG_SIDE-pixel patch (mtcnn's ONet
# conv2 filter 1, whose kernel's norm is 2% of its neighbours', first fires after about 1,060 steps)
LONG_STEPS, LONG_SIDE = 2000, 48
LR = 0.01  # Adam's step in unit space: 2.5 grey levels


def patch_size(model: LoadedModel, layer: str, size: int) -> int:
    """The side of the canvas a unit is searched on: its receptive field and one stride on each side, rounded up
    to a multiple of every stride on the way to `layer` (so that the tiles repeat in step with the map), at least
    8 and at most `size`. The whole canvas where the model takes one size only, the unit sees all of it, or the layer has no
    plain geometry (a nested address)."""
    if model.fixed_size is not None:
        return size
    try:
        field = receptive_field(model, layer, size)
    except UserError:
        return size
    if field.whole:
        return size
    jump = math.lcm(*(int(j) for j, _, _ in field.rows + field.cols))
    side = max(max(field.size) + 2 * jump, int(SCHEMA["size"].min))  # the smallest picture
    return min(size, -(-side // jump) * jump)


def tile(patches: np.ndarray, size: int) -> np.ndarray:
    """[N, p, p, C] patches repeated from the top-left corner to [N, size, size, C]."""
    p = patches.shape[1]
    reps = -(-size // p)
    return np.tile(patches, (1, reps, reps, 1))[:, :size, :size]


def searches(patch: int) -> tuple[int, ...]:
    """The steps of each search on a `patch`-pixel canvas: a short one, then, for the units still dead, a long
    one of a fixed compute (fewer steps on a larger patch), where that is longer."""
    long = int(min(LONG_STEPS, LONG_STEPS * (LONG_SIDE / patch) ** 2))
    return (STEPS, long) if long > STEPS else (STEPS,)


def _finder(renderer: LayerRenderer, patch: int, n: int, steps: int) -> LayerRenderer:
    """The loop that climbs each filter's centre unit on a patch: raw pixels kept in range, Adam, no transforms
    (the unit is searched where it is, whatever a shift does to it), float32."""
    s = renderer.settings
    settings = RenderSettings(size=patch, steps=steps, param="pixel", optimizer="adam", lr=LR, seed=s.seed,
                              display="range")  # raw pixels kept in range as they climb: the picture is the search
    return LayerRenderer(renderer.extractor, settings, channels=renderer.param.channels,
                         input_range=renderer.input_range, objective=neuron(), max_filters=n)


def wake_dead(
    filters: np.ndarray, renderer: LayerRenderer, patch: int, out: ChunkOutput, display: np.ndarray, quality: dict,
    measure: Measure,
) -> tuple[ChunkOutput, np.ndarray, np.ndarray]:
    """Give each filter still dead the tiled patch its centre unit climbed (see the module), where that fires it;
    a second, longer search for those the first leaves dead (`searches`).
    Not for renders with the caller's own objective, from the user's image, with several pictures per filter or
    spread over several devices, nor for layers without a feature map. `measure(images, filters)` -> (display, quality), as for filterviz.rescue.
    Returns the output, the display and a mask of the filters woken; `quality` is updated in place."""
    s = renderer.settings
    woken = np.zeros(len(filters), bool)
    spatial = len(renderer.extractor.model.outputs[0].shape) == 4
    own = renderer.default_objective  # a caller's objective is never swapped (nor by filterviz.rescue)
    if not (spatial and own) or s.init or s.diversity > 1 or renderer.strategy is not None:
        return out, display, woken
    for steps in searches(patch):
        dead = np.flatnonzero(quality["dead"])
        if not len(dead):
            break
        found = _finder(renderer, patch, len(dead), steps).render(filters[dead])
        tiled = ChunkOutput(tile(found.images, s.size), found.scores, found.trace, found.nonfinite, found.filters)
        redo_display, redo_quality = measure(tiled.images, filters[dead])
        fires = ~np.asarray(redo_quality["dead"], bool)
        out, display, took = merge(out, display, quality, dead, tiled, redo_display, redo_quality, fires)
        woken |= took
    return out, display, woken
