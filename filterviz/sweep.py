"""Writing results: the only module that writes files.

Every file is written atomically (a temp file in the same folder, then an atomic rename), so a process
killed at any moment leaves either the old file, the new file, or nothing; never half a file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import numpy as np

from .errors import Interrupted, UserError
from .files import (
    atomic_write,
    clean_temps,
    ensure_dir,
    jsonable,
    plain,
    read_json,
    safe_name,
    save_figure,
    versions,
    write_json,
    write_npz,
    write_png,
)

__all__ = [
    "atomic_write",
    "write_png",
    "write_npz",
    "write_json",
    "safe_name",
    "ensure_dir",
    "versions",
    "save_layer",
    "read_partial",
    "render_into",
    "layer_dir",
    "save_figure",
    "Job",
    "ModelCache",
    "SweepReport",
    "job_id",
    "plan_jobs",
    "parse_shard",
    "shard_jobs",
    "manifest_name",
    "job_finished",
    "sweep_status",
    "run_sweep",
    "figure_panels",
    "write_figure",
]


def layer_dir(root: str | os.PathLike, model: str, layer: str) -> Path:
    """outputs/<model>/<layer>/ with both names made safe."""
    return Path(root) / safe_name(model) / safe_name(layer)


LAYER_FILES = ("grid.png", "images.npz", "metrics.json")


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
        ),
    ]
    meta = {
        "model": result.model,
        "layer": result.layer,
        "seed": result.settings.seed,
        "settings": dataclasses.asdict(result.settings),
        "input_range": list(result.input_range),
        "seconds": round(result.seconds, 3),
        "complete": bool(complete),
        "request": request,
        "versions": versions(),
        "summary": {
            "filters": len(result.filters),
            "dead": int(sum(r["dead"] for r in result.metrics)),
            "nonfinite": int(sum(r["nonfinite"] for r in result.metrics)),
            "rescued": int(sum(r.get("rescued", False) for r in result.metrics)),
            "median_activation": float(np.median(result.activations)),
            "median_specificity_rank": float(np.median([r["specificity_rank"] for r in result.metrics])),
            "median_robustness": float(np.median([r["robustness"] for r in result.metrics])),
            "median_hf_share": float(np.median([r["hf_share"] for r in result.metrics])),
            "median_colourfulness": float(np.median([r["colourfulness"] for r in result.metrics])),
        },
        "filters": result.metrics,
    }
    written.append(write_json(out / "metrics.json", meta))
    return written


def read_partial(out_dir: str | os.PathLike, request: dict, settings):
    """The filters an earlier run finished in `out_dir` for the same request and settings, as a ChunkOutput
    (`filters` set), or None when there are none. Filters that needed a numerical retry are left out (redone)."""
    from .ascent import ChunkOutput

    out = Path(out_dir)
    meta = read_json(out / "metrics.json")
    if not isinstance(meta, dict) or meta.get("request") != plain(request):
        return None
    if meta.get("settings") != plain(dataclasses.asdict(settings)):
        return None
    try:
        with np.load(out / "images.npz") as z:
            images, trace, filters = z["images"], z["trace"], z["filters"].astype(np.int32)
        rows = meta["filters"]
        if [r["filter"] for r in rows] != filters.tolist() or len(images) != len(rows):
            return None
        keep = np.asarray([not (r["nonfinite"] or r["retried"] or r.get("rescued", False)) for r in rows], bool)
        scores = np.asarray([r["objective_end"] for r in rows], np.float32)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not keep.any():
        return None
    return ChunkOutput(images[keep], scores[keep], trace[keep], np.zeros(int(keep.sum()), bool), filters[keep])


def _clean_layer_temps(out: Path) -> None:
    for name in LAYER_FILES:
        clean_temps(out, f".{name}.")
    clean_temps(out, ".probe-")


def render_into(
    lm,
    layer: str,
    filters: np.ndarray,
    settings,
    out_dir: str | os.PathLike,
    *,
    request: dict,
    renderer=None,
    quiet: bool = True,
    force: bool = False,
):
    """Render `filters` of `layer` and save them in `out_dir`, resuming from a partial result there.

    Filters an earlier run finished there for the same `request` and settings are not rendered again (unless
    `force`). On Ctrl-C or SIGTERM the finished filters are saved as a partial result (metrics.json says
    "complete": false), temp files are removed, and `Interrupted` is raised with a one-line summary.
    Returns (result, how many filters were reused).
    """
    from .ascent import ChunkOutput, render_layer

    out = ensure_dir(out_dir)
    _clean_layer_temps(out)
    prior = None if force else read_partial(out, request, settings)
    parts: list = []
    try:
        result = render_layer(lm, layer, filters, settings, renderer=renderer, quiet=quiet, done=prior,
                              on_chunk=parts.append)
    except KeyboardInterrupt:
        finished = ([] if prior is None else [prior]) + parts
        have = set() if not finished else set(ChunkOutput.concat(finished).filters.tolist())
        kept = [int(f) for f in filters if int(f) in have]
        if parts:  # something new to save (a prior result is already on disk)
            partial = render_layer(lm, layer, kept, settings, renderer=renderer, done=ChunkOutput.concat(finished),
                                   rescue=False)  # no new rendering after Ctrl-C; a resumed run rescues
            save_layer(partial, out, complete=len(kept) == len(filters), request=request)
        _clean_layer_temps(out)
        where = f", saved in {out}/ (partial)" if kept else ", nothing written"
        raise Interrupted(f"{len(kept)} of {len(filters)} filters of layer '{layer}' finished{where}; "
                          "run the same command again to resume") from None
    save_layer(result, out, request=request)
    return result, 0 if prior is None else len(prior.filters)


# -- the sweep runner ------------------------------------------------------------------------------------
# A sweep is a deterministic list of jobs (model x layer x grid point). Each job owns one folder
# <output>/<sweep>/<job-id>/ holding config.yaml (its resolved config, written first), grid.png, images.npz
# and metrics.json (written last). A job is finished when metrics.json exists and config.yaml equals the job's
# resolved config; a redo deletes metrics.json before anything else, so a kill at any moment leaves the job
# either finished or visibly unfinished. Each process writes only its own manifest
# (manifest.json, or manifest.shard-I-of-N.json with --shard), so parallel shards never clobber each other;
# `sweep_status` derives the state of the whole sweep from the job folders.

MANIFEST = "manifest.json"
JOB_CONFIG = "config.yaml"


@dataclasses.dataclass(frozen=True)
class Job:
    """One render: a model, a layer, filters and settings. `index` is its place in the full job list."""

    index: int
    id: str
    model: str
    layer: str
    filters: object
    point: tuple
    settings: object
    preset: str
    selected: int | None = None  # how many filters (known once the model was checked)

    def resolved(self, sweep: str) -> dict:
        """The job's resolved config, as written to config.yaml (plain YAML types only)."""
        filters = list(self.filters) if isinstance(self.filters, tuple) else self.filters
        doc = {
            "job": self.id,
            "sweep": sweep,
            "model": self.model,
            "layer": self.layer,
            "filters": filters,
            "preset": self.preset,
            "point": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.point},
            "settings": dataclasses.asdict(self.settings),
        }
        import yaml

        return yaml.safe_load(yaml.safe_dump(doc, sort_keys=False))


class ModelCache:
    """Loaded models by name, so every job of one process loads each model once."""

    def __init__(self, unsafe: bool = False) -> None:
        self.unsafe = unsafe
        self._models: dict[str, object] = {}

    def get(self, spec: str):
        from .models import load_model

        if spec not in self._models:
            self._models[spec] = load_model(spec, unsafe=self.unsafe)
        return self._models[spec]

    def drop(self, spec: str) -> None:
        """Forget a model (its last job is done), so its memory can be freed."""
        self._models.pop(spec, None)


def _model_label(spec: str) -> str:
    p = Path(spec)
    return p.stem if p.suffix.lower() in (".keras", ".h5", ".hdf5") else spec.lower()


def _fmt(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def job_id(model: str, layer: str, point) -> str:
    """A stable, readable, file-name-safe id: model__layer__key-value__..."""
    parts = [_model_label(model), layer] + [f"{k}-{_fmt(v)}" for k, v in point]
    return "__".join(safe_name(p) for p in parts)


def _resolve_layers(cfg, spec: str, cache: ModelCache | None) -> list[tuple[str, int | None]]:
    """(layer name, filter count) for the config's `layers` in one model: names, globs and all-conv."""
    import fnmatch

    from .settings import ALL_CONV
    from .errors import suggest

    if cache is None:
        return [(entry, None) for entry in dict.fromkeys(cfg.layers)]
    from .models import visual_layers

    lm = cache.get(spec)
    infos = visual_layers(lm)
    counts = {i.name: i.filters for i in infos}
    out: dict[str, int] = {}
    for i, entry in enumerate(cfg.layers):
        key = f"layers[{i}]" if f"layers[{i}]" in cfg.lines else "layers"
        if entry == ALL_CONV:
            found = [x.name for x in infos if "Conv" in x.kind]
            if not found:
                raise UserError(f"{cfg.where(key)}: model '{lm.name}' has no convolution layers")
        elif any(c in entry for c in "*?["):
            found = [x.name for x in infos if fnmatch.fnmatchcase(x.name, entry)]
            if not found:
                raise UserError(
                    f"{cfg.where(key)}: pattern '{entry}' matches no layer with filters in model '{lm.name}': "
                    f"{suggest(entry, counts)}"
                )
        else:
            if entry not in counts:
                raise UserError(
                    f"{cfg.where(key)}: unknown layer '{entry}' in model '{lm.name}': {suggest(entry, counts)}"
                )
            found = [entry]
        for name in found:
            out.setdefault(name, counts[name])
    return list(out.items())


def plan_jobs(cfg, cache: ModelCache | None = None) -> list[Job]:
    """The full, deterministic job list of a config: models x layers x grid points, in that order.

    With a `cache` every model is loaded and every layer and filter selection is checked against it (so a
    sweep fails before any work). Without one, plain layer names are taken as written and nothing is loaded.
    """
    from .ascent import select_filters

    from .settings import ALL_CONV

    jobs: list[Job] = []
    points = cfg.points()
    if cache is None and any(e == ALL_CONV or any(c in e for c in "*?[") for e in cfg.layers):
        cache = ModelCache(cfg.unsafe)  # globs need the model's layer names
    for m, spec in enumerate(cfg.models):
        try:
            layers = _resolve_layers(cfg, spec, cache)
        except UserError as e:
            if str(e).startswith(cfg.path):
                raise
            key = f"model[{m}]" if f"model[{m}]" in cfg.lines else "model"
            raise UserError(f"{cfg.where(key)}: {e}") from None
        lm = cache.get(spec) if cache is not None else None
        for layer, count in layers:
            for point in points:
                settings = cfg.settings_for(point)
                filters = cfg.filters_for(point)
                selected = None
                if count is not None:
                    if lm.fixed_size is not None and lm.fixed_size != (settings.size, settings.size):
                        raise UserError(
                            f"{cfg.where('sweep.size' if 'size' in point else 'size')}: model '{lm.name}' takes "
                            f"only {lm.fixed_size[0]}x{lm.fixed_size[1]} images; set size to {lm.fixed_size[0]}"
                        )
                    try:
                        spec_f = list(filters) if isinstance(filters, tuple) else filters
                        selected = len(select_filters(spec_f, count, layer))
                    except UserError as e:
                        raise UserError(f"{cfg.where('sweep.filters' if 'filters' in point else 'filters')}: {e}") from None
                items = tuple(point.items())
                jobs.append(Job(len(jobs), job_id(spec, layer, items), spec, layer, filters, items, settings,
                                str(point.get("preset", cfg.preset)), selected))
    seen: dict[str, Job] = {}
    for job in jobs:
        if job.id in seen:
            raise UserError(
                f"{cfg.where('sweep' if cfg.grid else 'model')}: two jobs get the same folder name '{job.id}'; "
                "use models, layers and sweep values whose names differ"
            )
        seen[job.id] = job
    return jobs


def parse_shard(text: str | None) -> tuple[int, int]:
    """'I/N' (1-based, 1 <= I <= N) -> (I, N); None -> (1, 1)."""
    if text is None:
        return 1, 1
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not (1 <= int(m.group(1)) <= int(m.group(2))):
        raise UserError(f"bad shard '{text}': use I/N with 1 <= I <= N, e.g. --shard 1/4")
    return int(m.group(1)), int(m.group(2))


def shard_jobs(jobs: list[Job], shard: int, shards: int) -> list[Job]:
    """The jobs of shard `shard` of `shards` (1-based): job k goes to shard k % shards + 1."""
    return [j for j in jobs if j.index % shards + 1 == shard]


def manifest_name(shard: int, shards: int) -> str:
    return MANIFEST if shards == 1 else f"manifest.shard-{shard}-of-{shards}.json"


def job_finished(job: Job, root: Path, sweep: str) -> dict | None:
    """The job's metrics if it is finished (metrics.json exists and config.yaml matches the job), else None."""
    import yaml

    out = root / job.id
    metrics = read_json(out / "metrics.json")
    if not isinstance(metrics, dict) or metrics.get("layer") != job.layer or metrics.get("complete") is False:
        return None
    try:
        written = yaml.safe_load((out / JOB_CONFIG).read_text())
    except (OSError, yaml.YAMLError):
        return None
    if written != job.resolved(sweep):
        return None
    if metrics.get("settings") != json.loads(json.dumps(jsonable(dataclasses.asdict(job.settings)))):
        return None
    return metrics


def sweep_status(cfg, jobs: list[Job]) -> dict[str, dict | None]:
    """Job id -> its metrics if finished, else None; read from the job folders (all shards)."""
    return {j.id: job_finished(j, cfg.root, cfg.name) for j in jobs}


@dataclasses.dataclass
class SweepReport:
    """What one run_sweep call did."""

    jobs: list
    rendered: list
    skipped: list
    manifest: Path | None
    figure: list


def run_sweep(
    cfg,
    *,
    shard: tuple[int, int] = (1, 1),
    force: bool = False,
    quiet: bool = False,
    dry_run: bool = False,
    echo=print,
) -> SweepReport:
    """Run (or, with dry_run, list) this shard's unfinished jobs; skip finished ones unless `force`."""
    import time

    import yaml

    cache = ModelCache(cfg.unsafe)
    jobs = plan_jobs(cfg, cache)  # loads and checks everything before any work
    mine = shard_jobs(jobs, *shard)
    root = cfg.root
    if dry_run:
        status = sweep_status(cfg, mine) if root.is_dir() else {}
        for j in mine:
            state = "done" if status.get(j.id) and not force else "todo"
            echo(f"{j.index + 1:>4}/{len(jobs)}  {state:<4}  {j.id}")
        todo = sum(1 for j in mine if force or not status.get(j.id))
        echo(f"{len(mine)} jobs in shard {shard[0]}/{shard[1]} of sweep '{cfg.name}' ({len(jobs)} in all), "
             f"{todo} to run -> {root}/ (dry run: nothing written)")
        return SweepReport(mine, [], [], None, [])

    ensure_dir(root)
    mname = manifest_name(*shard)
    clean_temps(root, f".{mname}.")
    clean_temps(root, ".probe-")
    rows = {
        j.id: {"id": j.id, "index": j.index, "model": j.model, "layer": j.layer, "point": dict(j.point),
               "status": "pending", "seconds": None, "summary": None, "dir": j.id}
        for j in mine
    }

    def write_manifest() -> None:
        write_json(root / mname, {
            "sweep": cfg.name, "config": cfg.path, "shard": f"{shard[0]}/{shard[1]}",
            "jobs_in_shard": len(mine), "jobs_in_sweep": len(jobs), "jobs": list(rows.values()),
        })

    bar = None
    if not quiet:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(mine), desc=f"sweep {cfg.name}", unit="job", position=0, dynamic_ncols=True)
    import gc

    from .ascent import LayerRenderer, select_filters
    from .models import feature_extractor

    rendered, skipped = [], []
    renderers: dict = {}
    last_job = {j.model: j.index for j in mine}
    try:
        for j in mine:
            out = root / j.id
            clean_temps(out)
            done = None if force else job_finished(j, root, cfg.name)
            if done is not None:
                rows[j.id].update(status="skipped", seconds=done.get("seconds"), summary=done.get("summary"))
                skipped.append(j)
            else:
                rows[j.id]["status"] = "running"
                write_manifest()
                ensure_dir(out)
                old = read_json(out / "metrics.json")
                if not (isinstance(old, dict) and old.get("complete") is False):  # a partial one may be resumed
                    (out / "metrics.json").unlink(missing_ok=True)  # from here on the job reads as unfinished
                atomic_write(out / JOB_CONFIG, yaml.safe_dump(j.resolved(cfg.name), sort_keys=False).encode())
                lm = cache.get(j.model)
                key = (j.model, j.layer, j.settings)
                if key not in renderers:
                    stale = [k for k in renderers if k[:2] != key[:2]]  # keep one layer's renderers
                    if stale:  # their traced loops sit in reference cycles: free them now, not at some later gc
                        for k in stale:
                            del renderers[k]
                        gc.collect()
                    same = [x.selected or 0 for x in mine if (x.model, x.layer, x.settings) == key]
                    extractor = feature_extractor(lm, j.layer, pre_activation=j.settings.pre_activation)
                    renderers[key] = LayerRenderer(
                        extractor, j.settings, channels=lm.channels, input_range=lm.input_range,
                        max_filters=max(same) or None,
                    )
                filters = list(j.filters) if isinstance(j.filters, tuple) else j.filters
                idx = select_filters(filters, renderers[key].extractor.filters, j.layer)
                t0 = time.perf_counter()
                try:
                    render_into(lm, j.layer, idx, j.settings, out, request=j.resolved(cfg.name),
                                renderer=renderers[key], quiet=quiet, force=force)
                except Interrupted as e:
                    raise Interrupted(f"job '{j.id}': {e}") from None
                metrics = read_json(out / "metrics.json") or {}
                rows[j.id].update(status="done", seconds=round(time.perf_counter() - t0, 3),
                                  summary=metrics.get("summary"))
                rendered.append(j)
            write_manifest()
            if bar is not None:
                bar.update(1)
            if last_job[j.model] == j.index:  # the model's last job: let its model, extractors and traces go
                cache.drop(j.model)
                renderers.clear()
                gc.collect()
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: finished jobs stay finished; say how far it got
        for j in mine:  # the job folders are the truth: a job may have finished just before the signal
            if rows[j.id]["status"] == "running":
                rows[j.id]["status"] = "done" if job_finished(j, root, cfg.name) else "interrupted"
        write_manifest()
        clean_temps(root, f".{mname}.")
        finished = sum(row["status"] in ("done", "skipped") for row in rows.values())
        tail = f"; {e}" if isinstance(e, Interrupted) else "; run the same command again to resume"
        raise Interrupted(f"sweep '{cfg.name}': {finished} of {len(mine)} jobs finished{tail}") from None
    finally:
        if bar is not None:
            bar.close()
    write_manifest()
    figures: list[Path] = []
    if cfg.figure is not None:
        missing = [j for j, m in sweep_status(cfg, jobs).items() if m is None]
        if missing:
            echo(f"figure not made yet: {len(missing)} jobs of other shards are unfinished (then run: "
                 f"filterviz figure {cfg.path})")
        else:
            figures = write_figure(cfg, jobs)
    return SweepReport(mine, rendered, skipped, root / mname, figures)


def _job_for(jobs: list[Job], model: str, layer: str, point: dict) -> Job | None:
    for j in jobs:
        if j.model == model and j.layer == layer and dict(j.point) == point:
            return j
    return None


def figure_panels(cfg, jobs: list[Job] | None = None):
    """(kind, panels) for the config's `figure:` section, read from the sweep's finished results.

    Raises UserError naming the first missing job (and how to make it) when results are missing.
    """
    from .figures import TileRow

    spec = cfg.figure
    if spec is None:
        raise UserError(f"{cfg.path}: no 'figure:' section; add one, e.g. 'figure: {{layout: rows, width: double}}'")
    jobs = plan_jobs(cfg) if jobs is None else jobs
    model = spec.model or cfg.models[0]
    if model not in cfg.models:
        from .errors import suggest

        raise UserError(f"{cfg.where('figure.model')}: model '{model}' is not in this sweep: {suggest(model, cfg.models)}")
    layers = list(dict.fromkeys(j.layer for j in jobs if j.model == model))
    chosen = list(spec.layers) or layers
    for i, layer in enumerate(chosen):
        if layer not in layers:
            from .errors import suggest

            raise UserError(f"{cfg.where('figure.layers')}: layer '{layer}' is not in this sweep: {suggest(layer, layers)}")
    base = cfg.points()[0]
    cache: dict[str, tuple] = {}

    def load(job: Job | None, what: str):
        if job is None:
            raise UserError(f"{cfg.where('figure')}: the sweep has no job for {what}")
        if job.id not in cache:
            if job_finished(job, cfg.root, cfg.name) is None:
                raise UserError(
                    f"figure needs job '{job.id}', which is not finished ({cfg.root / job.id}/metrics.json is missing "
                    f"or stale): run filterviz sweep {cfg.path}"
                )
            with np.load(cfg.root / job.id / "images.npz") as z:
                cache[job.id] = (z["display"], z["filters"].astype(int))
        return cache[job.id]

    def columns(display, filters, where: str):
        if spec.filters:
            pos = {int(f): i for i, f in enumerate(filters)}
            missing = [f for f in spec.filters if f not in pos]
            if missing:
                raise UserError(f"{cfg.where('figure.filters')}: filter {missing[0]} was not rendered for {where} "
                                f"(rendered: {_fmt(list(filters[:8]))}{', ...' if len(filters) > 8 else ''})")
            idx = [pos[f] for f in spec.filters]
        else:
            idx = list(range(min(spec.columns, len(filters))))
        return display[idx], [int(filters[i]) for i in idx]

    if spec.layout == "grid":
        layer = chosen[0]
        display, filters = load(_job_for(jobs, model, layer, base), f"{model} {layer}")
        if spec.filters:
            display, filters = columns(display, filters, layer)
        return "grid", (layer, display, filters)
    if spec.layout == "rows":
        rows = []
        for layer in chosen:
            display, filters = load(_job_for(jobs, model, layer, base), f"{model} {layer}")
            tiles, numbers = columns(display, filters, layer)
            rows.append(TileRow(layer, tiles, numbers))
        return "rows", rows
    key = spec.compare
    panels = []
    for layer in chosen:
        rows = []
        values = cfg.models if key == "model" else dict(cfg.grid)[key]
        for v in values:
            if key == "model":
                job, label = _job_for(jobs, v, layer, base), _model_label(v)
            else:
                job, label = _job_for(jobs, model, layer, {**base, key: v}), f"{key}={_fmt(v)}"
            display, filters = load(job, f"{layer} {label}")
            tiles, numbers = columns(display, filters, f"{layer} {label}")
            rows.append(TileRow(label, tiles, numbers))
        panels.append((layer, rows))
    return "compare", panels


def write_figure(cfg, jobs: list[Job] | None = None) -> list[Path]:
    """Make the config's figure from the finished results and write it (pdf/svg/png) to <output>/<sweep>/."""
    from . import figures

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
