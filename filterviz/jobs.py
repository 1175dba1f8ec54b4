"""A sweep's job list: planning (models x layers x grid points), sharding, and which jobs are finished.

A sweep is a deterministic list of jobs (model x layer x grid point). Each job owns one folder
<output>/<sweep>/<job-id>/ holding config.yaml (its resolved config, written first), grid.png, images.npz
and metrics.json (written last). A job is finished when metrics.json exists and config.yaml equals the job's
resolved config, so `sweep_status` derives the state of the whole sweep (all shards) from the job folders.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
from pathlib import Path

import yaml

from . import models
from .errors import UserError, suggest
from .files import jsonable, read_json, safe_name
from .render import fit_size
from .settings import ALL_CONV, select_filters

__all__ = [
    "JOB_CONFIG",
    "Job",
    "ModelCache",
    "model_cache",
    "model_label",
    "format_value",
    "job_id",
    "plan_jobs",
    "parse_shard",
    "shard_jobs",
    "job_finished",
    "sweep_status",
]

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
    inputs: tuple = ()  # (key, value) of the config's input_range / preprocess, where given

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
        doc.update((k, list(v) if isinstance(v, tuple) else v) for k, v in self.inputs)
        return yaml.safe_load(yaml.safe_dump(doc, sort_keys=False))


class ModelCache:
    """Loaded models by name, so every job of one process loads each model once."""

    def __init__(self, unsafe: bool = False, input_range: tuple[float, float] | None = None,
                 preprocess: str | None = None) -> None:
        self.unsafe, self.inputs = unsafe, {"input_range": input_range, "preprocess": preprocess}
        self._models: dict[str, object] = {}

    def get(self, spec: str) -> models.LoadedModel:
        """The model `spec`, loaded on first use."""
        if spec not in self._models:
            self._models[spec] = models.load_model(spec, unsafe=self.unsafe, **self.inputs)
        return self._models[spec]

    def drop(self, spec: str) -> None:
        """Forget a model (its last job is done), so its memory can be freed."""
        self._models.pop(spec, None)


def model_cache(cfg) -> ModelCache:
    """A ModelCache loading the config's models as it says (unsafe, input_range, preprocess)."""
    return ModelCache(cfg.unsafe, getattr(cfg, "input_range", None), getattr(cfg, "preprocess", None))


def _inputs(cfg) -> tuple:
    return tuple((k, getattr(cfg, k, None)) for k in ("input_range", "preprocess") if getattr(cfg, k, None) is not None)


def model_label(spec: str) -> str:
    """A model's short name in job ids and figure labels: a file's stem, else the lower-case model name."""
    p = Path(spec)
    return p.stem if p.suffix.lower() in (".keras", ".h5", ".hdf5") else spec.lower()


def format_value(value) -> str:
    """A setting's value as written in job ids and figure labels: 1,2 for lists, true/false for booleans."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def job_id(model: str, layer: str, point) -> str:
    """A stable, readable, file-name-safe id: model__layer__key-value__..."""
    parts = [model_label(model), layer] + [f"{k}-{format_value(v)}" for k, v in point]
    return "__".join(safe_name(p) for p in parts)


def _resolve_layers(cfg, spec: str, cache: ModelCache | None) -> list[tuple[str, int | None]]:
    """(layer name, filter count) for the config's `layers` in one model: names, globs and all-conv."""
    if cache is None:
        return [(entry, None) for entry in dict.fromkeys(cfg.layers)]
    lm = cache.get(spec)
    infos = models.visual_layers(lm)
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
    jobs: list[Job] = []
    points = cfg.points()
    if cache is None and any(e == ALL_CONV or any(c in e for c in "*?[") for e in cfg.layers):
        cache = model_cache(cfg)  # globs need the model's layer names
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
                    try:  # the one size policy (render.fit_size): a fixed-size model's size unless one is set
                        chosen = "size" in point or "size" in dict(cfg.settings)
                        settings = fit_size(lm, settings, from_model=not chosen)
                    except UserError as e:
                        raise UserError(f"{cfg.where('sweep.size' if 'size' in point else 'size')}: {e}") from None
                    try:
                        spec_f = list(filters) if isinstance(filters, tuple) else filters
                        selected = len(select_filters(spec_f, count, layer))
                    except UserError as e:
                        where = cfg.where("sweep.filters" if "filters" in point else "filters")
                        raise UserError(f"{where}: {e}") from None
                items = tuple(point.items())
                jobs.append(Job(len(jobs), job_id(spec, layer, items), spec, layer, filters, items, settings,
                                str(point.get("preset", cfg.preset)), selected, _inputs(cfg)))
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


def job_finished(job: Job, root: Path, sweep: str) -> dict | None:
    """The job's metrics if it is finished (metrics.json exists and config.yaml matches the job), else None."""
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

