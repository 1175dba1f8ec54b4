"""The paper figure of a sweep: the config's `figure:` section, drawn from the sweep's finished results."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import figures
from .errors import UserError, suggest
from .figures import TileRow
from .files import clean_temps, ensure_dir, save_figure
from .jobs import Job, format_value, job_finished, model_label, plan_jobs

__all__ = ["figure_panels", "write_figure"]


def _job_for(jobs: list[Job], model: str, layer: str, point: dict) -> Job | None:
    for j in jobs:
        if j.model == model and j.layer == layer and dict(j.point) == point:
            return j
    return None


def _figure_layers(cfg, jobs: list[Job]) -> tuple[str, list[str]]:
    """The figure's model and layers, checked against the sweep (a UserError names the first one not in it)."""
    spec = cfg.figure
    model = spec.model or cfg.models[0]
    if model not in cfg.models:
        raise UserError(f"{cfg.where('figure.model')}: model '{model}' is not in this sweep: "
                        f"{suggest(model, cfg.models)}")
    layers = list(dict.fromkeys(j.layer for j in jobs if j.model == model))
    chosen = list(spec.layers) or layers
    for layer in chosen:
        if layer not in layers:
            raise UserError(f"{cfg.where('figure.layers')}: layer '{layer}' is not in this sweep: "
                            f"{suggest(layer, layers)}")
    return model, chosen


class _Results:
    """The finished jobs' pictures, each read once; a UserError says how to make a missing one."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self._loaded: dict[str, tuple] = {}

    def load(self, job: Job | None, what: str) -> tuple[np.ndarray, np.ndarray]:
        """(display images, filter numbers) of a finished job."""
        cfg = self.cfg
        if job is None:
            raise UserError(f"{cfg.where('figure')}: the sweep has no job for {what}")
        if job.id not in self._loaded:
            if job_finished(job, cfg.root, cfg.name) is None:
                raise UserError(
                    f"figure needs job '{job.id}', which is not finished ({cfg.root / job.id}/metrics.json is missing "
                    f"or stale): run filterviz sweep {cfg.path}"
                )
            with np.load(cfg.root / job.id / "images.npz") as z:
                self._loaded[job.id] = (z["display"], z["filters"].astype(int))
        return self._loaded[job.id]


def _columns(cfg, display: np.ndarray, filters: np.ndarray, where: str) -> tuple[np.ndarray, list[int]]:
    """The tiles the figure shows of one result: the figure's `filters`, else its first `columns` filters."""
    spec = cfg.figure
    if spec.filters:
        pos = {int(f): i for i, f in enumerate(filters)}
        missing = [f for f in spec.filters if f not in pos]
        if missing:
            raise UserError(f"{cfg.where('figure.filters')}: filter {missing[0]} was not rendered for {where} "
                            f"(rendered: {format_value(list(filters[:8]))}{', ...' if len(filters) > 8 else ''})")
        idx = [pos[f] for f in spec.filters]
    else:
        idx = list(range(min(spec.columns, len(filters))))
    return display[idx], [int(filters[i]) for i in idx]


def _compare_panels(cfg, jobs: list[Job], model: str, chosen: list[str], results: _Results) -> list:
    """One panel per layer, one row per value of the compared key (a model or a sweep setting)."""
    key = cfg.figure.compare
    base = cfg.points()[0]
    panels = []
    for layer in chosen:
        rows = []
        values = cfg.models if key == "model" else dict(cfg.grid)[key]
        for v in values:
            if key == "model":
                job, label = _job_for(jobs, v, layer, base), model_label(v)
            else:
                job, label = _job_for(jobs, model, layer, {**base, key: v}), f"{key}={format_value(v)}"
            display, filters = results.load(job, f"{layer} {label}")
            tiles, numbers = _columns(cfg, display, filters, f"{layer} {label}")
            rows.append(TileRow(label, tiles, numbers))
        panels.append((layer, rows))
    return panels


def figure_panels(cfg, jobs: list[Job] | None = None):
    """(kind, panels) for the config's `figure:` section, read from the sweep's finished results.

    Raises UserError naming the first missing job (and how to make it) when results are missing.
    """
    spec = cfg.figure
    if spec is None:
        raise UserError(f"{cfg.path}: no 'figure:' section; add one, e.g. 'figure: {{layout: rows, width: double}}'")
    jobs = plan_jobs(cfg) if jobs is None else jobs
    model, chosen = _figure_layers(cfg, jobs)
    base = cfg.points()[0]
    results = _Results(cfg)
    if spec.layout == "grid":
        layer = chosen[0]
        display, filters = results.load(_job_for(jobs, model, layer, base), f"{model} {layer}")
        if spec.filters:
            display, filters = _columns(cfg, display, filters, layer)
        return "grid", (layer, display, filters)
    if spec.layout == "rows":
        rows = []
        for layer in chosen:
            display, filters = results.load(_job_for(jobs, model, layer, base), f"{model} {layer}")
            tiles, numbers = _columns(cfg, display, filters, layer)
            rows.append(TileRow(layer, tiles, numbers))
        return "rows", rows
    return "compare", _compare_panels(cfg, jobs, model, chosen, results)


def write_figure(cfg, jobs: list[Job] | None = None) -> list[Path]:
    """Make the config's figure from the finished results and write it (pdf/svg/png) to <output>/<sweep>/."""
    spec = cfg.figure
    kind, data = figure_panels(cfg, jobs)
    style = dict(width=spec.width, font_size=spec.font_size, dpi=spec.dpi, panel_labels=spec.panel_labels,
                 title=spec.title)
    if kind == "grid":
        layer, display, filters = data
        fig = figures.layer_figure(display, filters, layer=layer, columns=spec.columns, **style)
    elif kind == "rows":
        fig = figures.rows_figure(data, **style)
    else:
        fig = figures.compare_figure(data, **style)
    root = ensure_dir(cfg.root)
    clean_temps(root, f".{spec.file}.")
    return [save_figure(fig, root / f"{spec.file}.{fmt}", dpi=spec.dpi, tight=False) for fmt in spec.formats]
