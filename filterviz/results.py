"""Saving and resuming one layer's result: outputs/<model>/<layer>/ with grid.png, images.npz, metrics.json.

metrics.json is written last and marks the folder done; an interrupted render saves the filters it finished as
a partial result ("complete": false) that a re-run of the same request resumes from.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from . import grid, metrics
from .ascent import ChunkOutput
from .loop import PICTURE_VERSION
from .errors import Interrupted
from .render import LayerResult, RenderPlan, render_plan
from .files import clean_temps, ensure_dir, plain, read_json, safe_name, versions, write_json, write_npz, write_png

__all__ = ["LAYER_FILES", "layer_dir", "diversity_grid", "save_layer", "read_partial", "render_into"]

LAYER_FILES = ("grid.png", "images.npz", "metrics.json")


def layer_dir(root: str | os.PathLike, model: str, layer: str) -> Path:
    """outputs/<model>/<layer>/ with both names made safe."""
    return Path(root) / safe_name(model) / safe_name(layer)


def _summary(result) -> dict:
    """The per-layer summary stored in metrics.json: counts and medians over the filters."""
    rows = result.metrics
    return {
        "filters": len(result.filters),
        "dead": int(sum(r["dead"] for r in rows)),
        "nonfinite": int(sum(r["nonfinite"] for r in rows)),
        "rescued": int(sum(r.get("rescued", False) for r in rows)),
        "woken": int(sum(r.get("woken", False) for r in rows)),  # one unit's patch, tiled (filterviz.wake)
        "colour_free": int(sum(r.get("colour_free", False) for r in rows)),  # grown without the colour limit
        "photo_start": int(sum(r.get("photo_start", False) for r in rows)),  # re-run from their best photo crop
        "median_activation": float(np.median(result.activations)),
        "median_specificity_rank": float(np.median([r["specificity_rank"] for r in rows])),
        "median_robustness": metrics.median_defined([r["robustness"] for r in rows]),  # dead ones left out
        "median_hf_share": float(np.median([r["hf_share"] for r in rows])),
        "failed": int(sum(r.get("failed", False) for r in rows)),  # below the best photo crop
        "median_photo_ratio": float(np.median([r.get("photo_ratio", np.nan) for r in rows])),
        "median_edge": float(np.median([r.get("edge", np.nan) for r in rows])),
        "spread": metrics.palette_spread(result.display),  # 0: every filter the same palette (photos: ~67)
        "median_colourfulness": float(np.median([r["colourfulness"] for r in rows])),
    }


def diversity_grid(result) -> np.ndarray:
    """uint8 picture of a LayerResult's `diversity` extras: one row per filter (numbered), its pictures in a row."""
    div = result.extras["diversity"]  # [F, K, H, W, C], model-input space
    shown = grid.to_display(div.reshape((-1,) + div.shape[2:]), result.input_range, result.settings.display_mode)
    labels = [int(f) for f in result.filters] if result.settings.labels else None
    return grid.tile_with_headers(shown, div.shape[1], row_labels=labels)


def save_layer(result, out_dir: str | os.PathLike, *, complete: bool = True, request: dict | None = None) -> list[Path]:
    """Write grid.png, images.npz and metrics.json for a LayerResult; metrics.json last, as the 'done' mark.

    `complete=False` marks a partial result (the filters finished before an interrupt); `request` (what was
    asked: model, layer, filters...) is stored so that a re-run can tell whether it may resume from it.
    """
    out = ensure_dir(out_dir)
    written = [
        write_png(out / "grid.png", result.grid),
        write_npz(
            out / "images.npz",
            images=result.images.astype(np.float32),
            display=result.display,
            filters=result.filters,
            activations=result.activations.astype(np.float32),
            trace=result.trace.astype(np.float32),
            **{k: v.astype(np.float32) for k, v in getattr(result, "extras", {}).items()},  # diversity, alpha
        ),
    ]
    if "diversity" in getattr(result, "extras", {}):  # one row per filter, its K pictures side by side
        written.append(write_png(out / "diversity.png", diversity_grid(result)))
    meta = {
        "model": result.model,
        "layer": result.layer,
        "seed": result.settings.seed,
        "settings": dataclasses.asdict(result.settings),
        "preset": (request or {}).get("preset"),  # the preset the settings started from, where known
        "precision": result.precision,  # "auto" resolved: what the loop computed in
        "transforms": result.transforms,  # "auto" resolved: what the network saw the pictures through
        "input_range": list(result.input_range),
        "preprocess": result.preprocess,
        "network_range": None if result.network_range is None else list(result.network_range),
        "seconds": round(result.seconds, 3),
        "complete": bool(complete),
        "request": request,
        "versions": versions(),
        "picture_version": PICTURE_VERSION,  # read_partial resumes only from pictures this code makes
        "summary": _summary(result),
        "filters": result.metrics,
    }
    written.append(write_json(out / "metrics.json", meta))
    return written


def read_partial(
    out_dir: str | os.PathLike, request: dict, settings, precision: str | None = None
) -> ChunkOutput | None:
    """The filters an earlier run finished in `out_dir` for the same request and settings (and, where given, the
    same resolved `precision`: 'auto' may differ between machines, and the same loop.PICTURE_VERSION), as a
    ChunkOutput (`filters` set), or None when there are none. Filters that needed a numerical retry are left out
    (redone)."""
    out = Path(out_dir)
    meta = read_json(out / "metrics.json")
    if not isinstance(meta, dict) or meta.get("request") != plain(request):
        return None
    if meta.get("settings") != plain(dataclasses.asdict(settings)):
        return None
    if meta.get("picture_version") != PICTURE_VERSION:  # made by older code: the same settings, other pictures
        return None
    if precision is not None and meta.get("precision", precision) != precision:
        return None
    try:
        with np.load(out / "images.npz") as z:
            images, trace, filters = z["images"], z["trace"], z["filters"].astype(np.int32)
            extras = {k: z[k] for k in ("diversity", "alpha") if k in z.files}
        rows = meta["filters"]
        if [r["filter"] for r in rows] != filters.tolist() or len(images) != len(rows):
            return None
        keep = np.asarray([not (r["nonfinite"] or r["retried"] or r.get("rescued", False)) for r in rows], bool)
        scores = np.asarray([r["objective_end"] for r in rows], np.float32)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not keep.any():
        return None
    return ChunkOutput(images[keep], scores[keep], trace[keep], np.zeros(int(keep.sum()), bool), filters[keep],
                       {k: v[keep] for k, v in extras.items()})


def _clean_layer_temps(out: Path) -> None:
    """Remove the temp files a killed write of this layer folder may have left."""
    for name in LAYER_FILES:
        clean_temps(out, f".{name}.")
    clean_temps(out, ".probe-")


def _save_interrupted(plan: RenderPlan, out: Path, request: dict, prior, parts) -> str:
    """After Ctrl-C: save what finished (prior result + new chunks) as a partial result; the summary line."""
    finished = ([] if prior is None else [prior]) + parts
    have = set() if not finished else set(ChunkOutput.concat(finished).filters.tolist())
    kept = [int(f) for f in plan.filters if int(f) in have]
    if parts:  # something new to save (a prior result is already on disk)
        partial = render_plan(plan.with_filters(kept), done=ChunkOutput.concat(finished),
                              rescue=False)  # no new rendering after Ctrl-C; a resumed run rescues
        save_layer(partial, out, complete=len(kept) == len(plan.filters), request=request)
    _clean_layer_temps(out)
    where = f", saved in {out}/ (partial)" if kept else ", nothing written"
    return (f"{len(kept)} of {len(plan.filters)} filters of layer '{plan.layer}' finished{where}; "
            "run the same command again to resume")


def render_into(
    plan: RenderPlan, out_dir: str | os.PathLike, *, request: dict, quiet: bool = True, force: bool = False
) -> tuple[LayerResult, int]:
    """Render a prepared plan and save it in `out_dir`, resuming from a partial result there.

    Filters an earlier run finished there for the same `request` and settings are not rendered again (unless
    `force`). On Ctrl-C or SIGTERM the finished filters are saved as a partial result (metrics.json says
    "complete": false), temp files are removed, and `Interrupted` is raised with a one-line summary.
    Returns (result, how many filters were reused).
    """
    out = ensure_dir(out_dir)
    _clean_layer_temps(out)
    prior = None if force else read_partial(out, request, plan.settings, plan.renderer.precision)
    parts: list = []
    try:
        result = render_plan(plan, quiet=quiet, done=prior, on_chunk=parts.append)
    except KeyboardInterrupt:
        raise Interrupted(_save_interrupted(plan, out, request, prior, parts)) from None
    save_layer(result, out, request=request)
    return result, 0 if prior is None else len(prior.filters)
