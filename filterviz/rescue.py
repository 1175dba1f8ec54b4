"""Second chances for the weak filters of a render, after the whole layer has been rendered and measured.

Two kinds of weak filter, each re-run and the redo kept only where it measures better on what the user
sees (the displayed picture):

- dead: the picture does not fire its filter at all. Re-run with a calmer optimizer or a sharper objective
  (`rescue_dead`).
- failed: some natural photo crop excites the filter more than its picture does (metrics.photo_ratio < 1).
  Where the settings limit colourfulness, first re-run from noise without the limit (`rescue_colour`): the
  limit keeps pictures in the colours of photographs, which suits a network trained on photographs, but a
  unit that wants saturated colour (a colour classifier's) loses to a saturated photo crop under it. The metrics
  row says so (`colour_free`). Those still beaten are re-run from their best crop (`rescue_failed`): the
  ascent then starts where the photos are best and climbs from there, as feature accentuation does (Hamblin
  et al. 2024), with the layer's settings and objective less the colour limit and specificity, which a photo
  does not obey (for MaCo, whose fixed magnitude spectrum cannot hold the crop, in Lucid's Fourier space),
  climbing what it is judged on: the positive part of the unit's map as the network uses it (after its
  activation). The metrics row says so (`photo_start`), so such a picture is never passed off as one grown
  from noise.

`measure(images, filters)` is the caller's: it returns the displayed pictures and their quality metrics, so
that a redo is judged exactly like the first render.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import metrics, objectives
from .ascent import LayerRenderer
from .chunks import ChunkOutput
from .models import Extractor
from .objectives import build_objective
from .settings import RenderSettings

__all__ = ["Measure", "merge", "rescue_dead", "rescue_colour", "rescue_failed"]

Measure = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, dict]]


def _dead_rescuer(settings: RenderSettings, renderer: LayerRenderer, n: int) -> LayerRenderer | None:
    """The loop that re-runs dead filters, or None where there is none to try.

    With the normalized optimizer: Adam, which takes small steps while the gradient is erratic (a large
    normalized step can overshoot at the start so the objective falls and never recovers). With the settings'
    own objective: twice the steps on the mean of the map's top 5%, making some places positive first (a filter
    negative everywhere on the pictures MaCo's fixed contrast can make)."""
    if settings.optimizer == "normalized":
        return renderer.variant(max_filters=n, optimizer="adam", lr=0.05, chunk=settings.chunk)
    if renderer.default_objective:
        return renderer.variant(max_filters=n, objective=objectives.channel_top(0.05), steps=2 * settings.steps,
                                chunk=settings.chunk)
    return None


def rescue_dead(
    filters: np.ndarray, renderer: LayerRenderer, out: ChunkOutput, display: np.ndarray, quality: dict,
    measure: Measure,
) -> tuple[ChunkOutput, np.ndarray, np.ndarray]:
    """Re-run the dead filters; keep each redo that is more active on its displayed picture. Returns the output,
    the display and a mask of the filters replaced. `quality` is updated in place."""
    dead = np.flatnonzero(quality["dead"])
    rescuer = _dead_rescuer(renderer.settings, renderer, len(dead)) if len(dead) else None
    if rescuer is None:
        return out, display, np.zeros(len(filters), bool)
    redo = rescuer.render(filters[dead])
    redo_display, redo_quality = measure(redo.images, filters[dead])
    better = redo_quality["activation"] > quality["activation"][dead]
    return merge(out, display, quality, dead, redo, redo_display, redo_quality, better)


def _rerun_allowed(renderer: LayerRenderer) -> bool:
    """Whether a failed filter may be re-run alone: not for renders that start from the user's image, draw several
    pictures per filter (they are judged together) or spread over several devices."""
    s = renderer.settings
    return not (s.init or s.diversity > 1 or renderer.strategy is not None)


def rescue_colour(
    filters: np.ndarray, renderer: LayerRenderer, out: ChunkOutput, display: np.ndarray, quality: dict,
    measure: Measure,
) -> tuple[ChunkOutput, np.ndarray, np.ndarray]:
    """Re-run each filter that a photo crop beats from its own random start without the colourfulness penalty;
    keep each redo whose displayed picture has the higher photo_ratio. Only where the settings have the penalty
    and their own objective (built from them, so it can be rebuilt without it). Returns the output, the display
    and a mask of the filters replaced; `quality` is updated in place."""
    s = renderer.settings
    weak = np.flatnonzero(quality["photo_ratio"] < 1.0)
    replaced = np.zeros(len(filters), bool)
    if not len(weak) or s.colour == 0 or not renderer.default_objective or not _rerun_allowed(renderer):
        return out, display, replaced
    redo = renderer.variant(max_filters=len(weak), colour=0.0, chunk=s.chunk).render(filters[weak])
    redo_display, redo_quality = measure(redo.images, filters[weak])
    better = redo_quality["photo_ratio"] > quality["photo_ratio"][weak]
    return merge(out, display, quality, weak, redo, redo_display, redo_quality, better)


def rescue_failed(
    filters: np.ndarray, renderer: LayerRenderer, photos: metrics.NaturalPhotos, model, out: ChunkOutput,
    display: np.ndarray, quality: dict, measure: Measure,
) -> tuple[ChunkOutput, np.ndarray, np.ndarray]:
    """Re-run each filter that a photo crop beats, starting from its best crop (of `photos`, scored by `model`,
    the layer's post-activation); keep each redo whose displayed picture has the higher photo_ratio. A filter
    still beaten climbs once more with a ten times smaller step (some filters are so sensitive that the first
    climb fell). Not for renders that start from the user's image, spread over several devices or draw several
    pictures per filter. Returns the output, the display and a mask of the filters replaced; `quality` is updated
    in place."""
    s = renderer.settings
    replaced = np.zeros(len(filters), bool)
    if not _rerun_allowed(renderer):
        return out, display, replaced
    climber = _climber(s, renderer, model)
    for step in (1.0, 0.1):
        weak = np.flatnonzero(quality["photo_ratio"] < 1.0)
        if not len(weak):
            break
        starts = photos.best_crops(model, filters[weak]) / 255.0
        redo = climber(len(weak), step).render(filters[weak], starts=starts)
        redo_display, redo_quality = measure(redo.images, filters[weak])
        better = redo_quality["photo_ratio"] > quality["photo_ratio"][weak]
        out, display, took = merge(out, display, quality, weak, redo, redo_display, redo_quality, better)
        replaced |= took
    return out, display, replaced


def _climber(s: RenderSettings, renderer: LayerRenderer, model) -> Callable[[int, float], LayerRenderer]:
    """(number of filters, step factor) -> the loop of a climb from a photo crop.

    The settings without the trade-offs a photo does not make: a colour limit (a saturated crop would be pulled
    below itself) and specificity (the crop excites the other filters too). With the settings' own objective it
    climbs what photo_ratio judges: the positive part of the unit's map after its activation (the `fired`
    objective on `model`, the layer's post-activation). The plain mean of the map before it can rise while that
    falls (a PReLU filter of mtcnn's ONet lost half its photo's activation climbing the mean), and a negative PReLU
    slope passes on the negative side too. MaCo's fixed magnitude spectrum cannot hold the crop (only its phase):
    it climbs in Lucid's Fourier space with the Fourier presets' step. Raw pixels climb with Adam at half a grey
    level per step (some filters lose a third of their activation to a one-level step; a normalized step leaves
    the crop behind at once)."""
    changes = {"colour": 0.0, "specificity": 0.0, "lr": s.lr, "chunk": s.chunk}
    if s.param == "maco":
        changes.update(param="fourier", lr=0.05)
    if s.param == "pixel":
        changes.update(optimizer="adam", lr=0.002)
    if not renderer.default_objective:  # the caller's objective, on the map it was written for
        return lambda n, step: renderer.variant(max_filters=n, **dict(changes, lr=changes["lr"] * step))
    changes["objective"] = "fired"
    objective = build_objective(s.replace(**changes))
    post = Extractor(model, renderer.extractor.layer, renderer.extractor.filters, pre_activation=False)
    return lambda n, step: LayerRenderer(
        post, s.replace(**dict(changes, lr=changes["lr"] * step)), channels=renderer.param.channels,
        input_range=renderer.input_range, objective=objective, max_filters=n, photos=renderer.photos)


def merge(
    out: ChunkOutput, display: np.ndarray, quality: dict, rows: np.ndarray, redo: ChunkOutput,
    redo_display: np.ndarray, redo_quality: dict, better: np.ndarray,
) -> tuple[ChunkOutput, np.ndarray, np.ndarray]:
    """`out` with rows[j] replaced by redo's j-th picture where better[j] (and finite); of a longer redo, the
    trace's last steps."""
    replaced = np.zeros(len(out.images), bool)
    images, scores, trace, display = out.images.copy(), out.scores.copy(), out.trace.copy(), display.copy()
    for j, k in enumerate(rows):
        if better[j] and np.isfinite(redo.images[j]).all():
            images[k], scores[k], display[k] = redo.images[j], redo.scores[j], redo_display[j]
            trace[k] = redo.trace[j][-trace.shape[1]:]
            for key in quality:
                quality[key][k] = redo_quality[key][j]
            replaced[k] = True
    taken = np.asarray([j for j, k in enumerate(rows) if replaced[k]], int)
    extras = out.extras_with(rows[taken], redo, taken)
    return ChunkOutput(images, scores, trace, out.nonfinite, out.filters, extras), display, replaced
