"""One way to render a layer: `prepare_render` builds everything once, `render_plan` runs it.

The CLI, the sweep, the training callback and the Python API all call `prepare_render`, so the size policy,
the filter selection, the extractors and the compiled loop are decided in one place. `render_plan` is a short
pipeline of named steps: render the chunks (halving the batch when memory runs out), put them in order, retry
numerical faults with a smaller step, measure what the user sees, give weak filters a second chance
(filterviz.rescue), and tile the grid.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from .quiet import tf

from . import canvas, grid, metrics, objectives
from .ascent import ChunkOutput, LayerRenderer
from .errors import UserError
from .models import Extractor, LoadedModel, feature_extractor, load_model, warn_pending
from .rescue import rescue_colour, rescue_dead, rescue_failed
from .settings import DEFAULT_PRESET, PRESETS, RenderSettings, select_filters
from .wake import wake_dead

__all__ = ["RenderPlan", "LayerResult", "prepare_render", "render_plan", "render_layer", "fit_size"]


@dataclass(frozen=True)
class RenderPlan:
    """Everything one layer's render needs, built once: the model, the layer, the filters, the settings, the
    compiled loop (`renderer`), the post-activation extractor that measures the pictures, and the sample-photo
    statistics at this size (shared by the loop's objective, MaCo's spectrum and the metrics)."""

    model: LoadedModel
    layer: str
    filters: np.ndarray
    settings: RenderSettings
    renderer: LayerRenderer
    post: Extractor
    photos: metrics.NaturalPhotos

    def with_filters(self, filters: str | Sequence[int] | None) -> RenderPlan:
        """The same plan (same compiled loop) for other filters of the layer."""
        idx = select_filters(filters, self.renderer.extractor.filters, self.layer)
        return dataclasses.replace(self, filters=idx)


@dataclass(frozen=True)
class LayerResult:
    """Everything a render produced for one layer. `metrics` has one row (a dict) per filter."""

    model: str
    layer: str
    filters: np.ndarray
    images: np.ndarray
    display: np.ndarray
    grid: np.ndarray
    activations: np.ndarray
    trace: np.ndarray
    metrics: list[dict]
    settings: RenderSettings
    seconds: float
    input_range: tuple[float, float]
    preprocess: str = "none"
    network_range: tuple[float, float] | None = None
    precision: str = "float32"  # what the loop computed in ('auto' resolved, see filterviz.precision)
    transforms: str = "none"  # what the network saw the pictures through ('auto' resolved, see canvas.transforms_for)
    extras: dict = dataclasses.field(default_factory=dict)  # per-filter arrays for images.npz (ChunkOutput.extras)


def fit_size(lm: LoadedModel, settings: RenderSettings, *, from_model: bool = False) -> RenderSettings:
    """The one size policy: a model that takes only one input size renders at that size when the size was not
    chosen (`from_model`), and a chosen size that does not fit is an error naming the model's size."""
    if lm.fixed_size is None or lm.fixed_size == (settings.size, settings.size):
        return settings
    h, w = lm.fixed_size
    if from_model and h == w:
        return settings.replace(size=int(h))
    raise UserError(f"model '{lm.name}' takes only {h}x{w} images; set size to {h} (got {settings.size})")


def prepare_render(
    model: str | LoadedModel,
    layer: str | None,
    filters: str | Sequence[int] | None = None,
    settings: RenderSettings | None = None,
    *,
    objective: objectives.Objective | None = None,
    size_from_model: bool = False,
    max_filters: int | None = None,
    unsafe: bool = False,
    strategy: tf.distribute.Strategy | None = None,
) -> RenderPlan:
    """Load the model (once), apply the size policy, select the filters and build the compiled loop.

    `layer` None renders the model's output (e.g. of `models.callable_model`). Fails on a bad layer, filter index
    or size before any work. `max_filters` (default: the selected count)
    lets the loop balance its chunks for the largest call it will get (a sweep reuses one plan across jobs).
    """
    lm = load_model(model, unsafe=unsafe, warn=False)
    settings = fit_size(lm, settings or PRESETS[DEFAULT_PRESET], from_model=size_from_model)
    extractor = feature_extractor(lm, layer, pre_activation=settings.pre_activation)
    layer = extractor.layer
    idx = select_filters(filters, extractor.filters, layer)
    lm = warn_pending(lm)  # the checks passed: a model file's assumed input range is worth a line now
    photos = metrics.NaturalPhotos(settings.size, lm.channels)
    renderer = LayerRenderer(
        extractor, settings, channels=lm.channels, input_range=lm.input_range, objective=objective,
        max_filters=max_filters or len(idx), photos=photos, strategy=strategy,
    )
    post = feature_extractor(lm, layer, pre_activation=False)
    return RenderPlan(lm, layer, idx, settings, renderer, post, photos)


def render_layer(
    model: str | LoadedModel,
    layer: str,
    filters: str | Sequence[int] | None = None,
    settings: RenderSettings | None = None,
    *,
    objective: objectives.Objective | None = None,
    quiet: bool = True,
) -> LayerResult:
    """Render `filters` (default: all) of `layer` and tile them into a grid: `prepare_render` + `render_plan`."""
    return render_plan(prepare_render(model, layer, filters, settings, objective=objective), quiet=quiet)


def render_plan(
    plan: RenderPlan,
    *,
    quiet: bool = True,
    done: ChunkOutput | None = None,
    on_chunk: Callable[[ChunkOutput], None] | None = None,
    rescue: bool = True,
) -> LayerResult:
    """Run a prepared render.

    Returns the images in model-input space, what the user sees (uint8), the final post-activation of each
    filter measured on the displayed picture, the loss traces and one metrics row per filter (with the quality
    metrics of `filterviz.metrics`). Filters whose image or gradient became non-finite are re-run with a 10x
    smaller step and flagged in the metrics.

    Resuming: `done` holds earlier results (same settings) of some of the filters, named by `done.filters`; only
    the others are rendered, and the result covers all. `on_chunk(part)` gets each chunk as soon as it is
    finished (with `part.filters` set), so a caller can keep them when the run is interrupted.

    Filters dead on their displayed picture, or beaten by a photo crop, are re-run once (filterviz.rescue) and
    kept if that does better (`rescued`, `photo_start` in the metrics); those still dead get one unit's patch,
    tiled, where it fires them (filterviz.wake, `woken`); `rescue=False` skips this (e.g. when saving after
    Ctrl-C).
    """
    t0 = time.perf_counter()
    parts, renderer = _render_chunks(plan, done, on_chunk, quiet)
    out = _in_order(parts, plan.filters)
    out, retried = _retry_nonfinite(renderer, plan, out)
    out, bad = _replace_nonfinite(plan, out)
    display, quality = _measure(plan, out.images, plan.filters, renderer.chunk)
    out, display, chances = _second_chances(plan, renderer, out, display, quality, rescue)
    rows = _rows(plan.filters, quality, out, bad, retried, chances)
    labels = [int(i) for i in plan.filters] if plan.settings.labels else None
    flagged = quality["dead"] | (quality["photo_ratio"] < 1.0)  # honest grids: red numbers on the weak tiles
    shown = canvas.fade(display, out.extras["alpha"]) if plan.settings.show_alpha else display
    return LayerResult(
        plan.model.name, plan.layer, plan.filters, out.images, display,
        grid.tile(_shown(shown), labels=labels, flagged=None if plan.settings.negative else flagged,
                  from_photo=chances["photo_start"], woken=chances["woken"]),
        quality["activation"], out.trace, rows, plan.settings, time.perf_counter() - t0, plan.model.input_range,
        precision=renderer.precision, transforms=renderer.transforms, preprocess=plan.model.preprocess,
        network_range=plan.model.network_range,
        extras=out.extras,
    )


def _shown(display: np.ndarray) -> np.ndarray:
    """The grid's tiles: grey (1 channel) and RGB (3) as they are; a 4-channel picture as its first three
    channels in colour with the fourth in grey to their right (each tile twice as wide), never as transparency."""
    if display.shape[-1] != 4:
        return display
    return np.concatenate([display[..., :3], np.repeat(display[..., 3:], 3, axis=3)], axis=2)


# -- the pipeline's steps ----------------------------------------------------------------------------------
def _progress_bar(plan: RenderPlan, initial: int):
    from tqdm.auto import tqdm

    return tqdm(total=len(plan.filters), initial=initial, desc=plan.layer, unit="filter", leave=False,
                dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}]")


def _render_chunks(
    plan: RenderPlan, done: ChunkOutput | None, on_chunk: Callable[[ChunkOutput], None] | None, quiet: bool
) -> tuple[list[ChunkOutput], LayerRenderer]:
    """Render the filters `done` lacks, one chunk per call (the same chunks as one call over them all); on
    running out of memory, halve the batch and go on. Returns the parts (with `filters`) and the renderer used."""
    have = set() if done is None else {int(f) for f in done.filters}
    todo = np.asarray([f for f in plan.filters if int(f) not in have], np.int32)
    parts = [] if done is None else [done]
    renderer = plan.renderer
    bar = None if quiet else _progress_bar(plan, len(plan.filters) - len(todo))
    try:
        while len(todo):
            ids, before = todo[: renderer.batch], bar.n if bar is not None else 0
            try:
                part = renderer.render(ids, progress=bar.update if bar is not None else None)
            except tf.errors.ResourceExhaustedError:
                renderer = _halved(renderer, plan)
                if bar is not None:
                    bar.update(before - bar.n)
                continue
            parts.append(dataclasses.replace(part, filters=ids))
            todo = todo[len(ids) :]
            if on_chunk is not None:
                on_chunk(parts[-1])
    finally:
        if bar is not None:
            bar.close()
    return parts, renderer


def _halved(renderer: LayerRenderer, plan: RenderPlan) -> LayerRenderer:
    if renderer.chunk == 1:
        raise UserError(
            f"out of memory rendering layer '{plan.layer}' even one filter at a time at size "
            f"{plan.settings.size}; use a smaller size"
        )
    return renderer.variant(chunk=renderer.chunk // 2)


def _in_order(parts: list[ChunkOutput], filters: np.ndarray) -> ChunkOutput:
    """The parts' results in the order of `filters` (a later part wins)."""
    out = ChunkOutput.concat(parts)
    where = {int(f): k for k, f in enumerate(out.filters)}
    order = np.asarray([where[int(f)] for f in filters])
    return ChunkOutput(out.images[order], out.scores[order], out.trace[order], out.nonfinite[order], filters,
                       {k: v[order] for k, v in out.extras.items()})


def _retry_nonfinite(renderer: LayerRenderer, plan: RenderPlan, out: ChunkOutput) -> tuple[ChunkOutput, np.ndarray]:
    """Re-run the filters whose image or gradient became non-finite with a 10x smaller step."""
    bad = out.nonfinite
    if not bad.any():
        return out, np.zeros(len(bad), bool)
    redo = renderer.render(plan.filters[bad], lr=plan.settings.lr / 10.0)
    images, scores, trace, nonfinite = out.images.copy(), out.scores.copy(), out.trace.copy(), np.zeros_like(bad)
    images[bad], scores[bad], trace[bad] = redo.images, redo.scores, redo.trace
    nonfinite[bad] = redo.nonfinite
    return ChunkOutput(images, scores, trace, nonfinite, out.filters, out.extras_with(bad, redo)), bad.copy()


def _replace_nonfinite(plan: RenderPlan, out: ChunkOutput) -> tuple[ChunkOutput, np.ndarray]:
    """Pictures still non-finite become flat mid-grey; returns them flagged."""
    finite = np.isfinite(out.images).all(axis=(1, 2, 3))
    bad = out.nonfinite | ~finite
    grey = np.float32(np.mean(plan.model.input_range))
    images = np.where(finite[:, None, None, None], out.images, grey)
    return dataclasses.replace(out, images=images), bad


def _measure(plan: RenderPlan, images: np.ndarray, ids: np.ndarray, batch: int) -> tuple[np.ndarray, dict]:
    """What the user sees (uint8) and the quality metrics measured on exactly that."""
    lo_hi = plan.model.input_range
    shown_uint8 = grid.to_display(images, lo_hi, plan.settings.display_mode)
    shown = grid.to_model_space(shown_uint8, lo_hi)
    natural = plan.photos.means(plan.post.model, batch=batch)
    quality = metrics.quality_metrics(plan.post, shown, shown_uint8, ids, batch=batch, seed=plan.settings.seed,
                                      natural=natural)
    best = plan.photos.best(plan.post.model, batch=batch)  # the best photo crop, per filter
    quality["photo_ratio"] = metrics.photo_ratio(plan.post.model, shown, ids, best, batch=batch)
    quality["photo_best"] = best[ids]  # 0: no photo crop fires the filter either (dead in the network, not the picture)
    quality["edge"] = metrics.edge_score(shown_uint8)
    return shown_uint8, quality


def _second_chances(
    plan: RenderPlan, renderer: LayerRenderer, out: ChunkOutput, display: np.ndarray, quality: dict, rescue: bool
) -> tuple[ChunkOutput, np.ndarray, dict[str, np.ndarray]]:
    """filterviz.rescue and filterviz.wake: re-run the dead filters, wake those still dead from one unit's tiled
    patch, re-run those a photo crop beats without the colour limit, then start the filters a photo crop still
    beats from that crop. Not for negative pictures (meant to be dead) or when `rescue` is off. Returns the
    output, the display and the masks of the filters rescued at all (`rescued`), woken (`woken`), grown without
    the colour limit (`colour_free`) and started from a photo (`photo_start`)."""
    none = np.zeros(len(plan.filters), bool)
    if not rescue or plan.settings.negative:
        return out, display, {"rescued": none, "woken": none, "colour_free": none, "photo_start": none}

    def measure(images: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, dict]:
        return _measure(plan, images, ids, renderer.chunk)

    out, display, dead = rescue_dead(plan.filters, renderer, out, display, quality, measure)
    out, display, woken = wake_dead(plan.filters, renderer, plan.model, plan.layer, out, display, quality, measure)
    out, display, free = rescue_colour(plan.filters, renderer, out, display, quality, measure)
    out, display, photo = rescue_failed(plan.filters, renderer, plan.photos, plan.post.model, out, display, quality,
                                        measure)
    return out, display, {"rescued": dead | woken | free | photo, "woken": woken & ~photo & ~free,
                          "colour_free": free & ~photo, "photo_start": photo}


def _rows(
    filters: np.ndarray, quality: dict, out: ChunkOutput, bad: np.ndarray, retried: np.ndarray,
    chances: dict[str, np.ndarray],
) -> list[dict]:
    """One metrics row per filter, as stored in metrics.json."""
    return [
        {
            "filter": int(f),
            "activation": float(quality["activation"][k]),
            "dead": bool(quality["dead"][k]),
            "specificity_rank": int(quality["specificity_rank"][k]),
            "robustness": float(quality["robustness"][k]),
            "hf_share": float(quality["hf_share"][k]),
            "colourfulness": float(quality["colourfulness"][k]),
            "photo_ratio": float(quality["photo_ratio"][k]),
            "photo_best": float(quality["photo_best"][k]),
            "failed": bool(quality["photo_ratio"][k] < 1.0),
            "edge": float(quality["edge"][k]),
            "objective_start": float(out.trace[k, 0]),
            "objective_end": float(out.scores[k]),
            "nonfinite": bool(bad[k]),
            "retried": bool(retried[k]),
            "rescued": bool(chances["rescued"][k]),
            "woken": bool(chances["woken"][k]),  # one unit's patch, tiled (filterviz.wake)
            "colour_free": bool(chances["colour_free"][k]),  # grown without the colour limit (filterviz.rescue)
            "photo_start": bool(chances["photo_start"][k]),  # re-run from its best photo crop (filterviz.rescue)
        }
        for k, f in enumerate(filters)
    ]
