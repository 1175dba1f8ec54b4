"""The YAML schema of sweep and figure configs, validated before any work.

A config is loaded with PyYAML's safe loader. Every mistake (unknown key, wrong type, value out of range,
bad YAML) raises one `UserError` line of the form `FILE:LINE: key 'KEY': what is wrong; what is valid`.
Line numbers come from `yaml.compose` (SafeLoader too), see `filterviz.yamlread`.

The setting keys are the fields of `filterviz.settings.RenderSettings` (its SCHEMA gives each key's type), and
each value is checked by building the preset with it, so the config accepts exactly what the engine accepts.
Filters are read by `filterviz.settings.parse_filters`, the one filter grammar. Nothing here loads a model:
layer globs and filter indices are resolved against the model by the sweep runner.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError, suggest
from .settings import (
    ALL_CONV,
    DEFAULT_MODEL,
    DEFAULT_OUTPUT,
    DEFAULT_PRESET,
    PRESETS,
    SCHEMA,
    RenderSettings,
    preset,
)
from .figconfig import FigureSpec, read_figure
from .yamlread import Reader, compose, show

__all__ = [
    "SweepConfig",
    "load_config",
    "parse_config",
    "setting_keys",
    "TOP_KEYS",
    "EXECUTORS",
]

_BASE_KEYS = ("name", "model", "layers", "filters", "preset", "sweep", "output", "unsafe", "figure", "executor",
              "ray_address", "input_range", "preprocess", "examples", "gallery")
EXAMPLES_KEYS = ("images", "k", "batch", "size")
EXECUTORS = ("serial", "ray")  # how a sweep runs its jobs: one after the other here, or as Ray tasks


def setting_keys() -> tuple[str, ...]:
    """Every field of `filterviz.settings.RenderSettings`, in declaration order: the YAML setting keys."""
    return tuple(SCHEMA)


def _top_keys() -> tuple[str, ...]:
    return _BASE_KEYS + setting_keys()


TOP_KEYS = _BASE_KEYS  # the non-settings keys; every RenderSettings field is a valid top-level key too


@dataclass(frozen=True)
class ExamplesSpec:
    """The `examples:` section: a folder of images, and how many patches per filter (see filterviz examples)."""

    images: str
    k: int = 9
    batch: int = 32
    size: int | None = None


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep config. `settings` are the top-level setting overrides, `grid` the `sweep:` lists."""

    path: str
    name: str
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    layers: tuple[str, ...] = (ALL_CONV,)
    filters: str | tuple[int, ...] = "all"
    preset: str = DEFAULT_PRESET
    settings: tuple[tuple[str, object], ...] = ()
    grid: tuple[tuple[str, tuple], ...] = ()
    output: str = DEFAULT_OUTPUT
    unsafe: bool = False
    figure: FigureSpec | None = None
    executor: str = "serial"
    ray_address: str | None = None  # executor ray: the cluster to join (none: start a local one)
    input_range: tuple[float, float] | None = None  # what the models' networks take (filterviz.inputs)
    preprocess: str | None = None
    examples: ExamplesSpec | None = None  # also find each layer's top dataset patches (filterviz.examples)
    gallery: bool = False  # then write the sweep's offline gallery to <output>/<name>/gallery/
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def where(self, key: str) -> str:
        """'FILE:LINE: key 'KEY'' for messages about `key` (dotted for nested keys, e.g. 'sweep.steps')."""
        shown = re.sub(r"\[\d+\]$", "", key)
        line = self.lines.get(key) or self.lines.get(shown) or self.lines.get(key.split(".")[0])
        return f"{self.path}:{line}: key '{shown}'" if line else f"{self.path}: key '{shown}'"

    @property
    def root(self) -> Path:
        """The sweep's output folder: <output>/<name>/."""
        from .files import safe_name

        return Path(self.output) / safe_name(self.name)

    def points(self) -> list[dict]:
        """The grid points of `sweep:` in order (the last key varies fastest); [{}] without a sweep."""
        keys = [k for k, _ in self.grid]
        return [dict(zip(keys, combo)) for combo in itertools.product(*(v for _, v in self.grid))]

    def settings_for(self, point: Mapping[str, object]) -> RenderSettings:
        """The RenderSettings of one grid point: preset, then top-level overrides, then the point's values."""
        values = dict(self.settings)
        values.update({k: v for k, v in point.items() if k not in ("preset", "filters")})
        return preset(str(point.get("preset", self.preset)), **values)

    def filters_for(self, point: Mapping[str, object]) -> str | tuple[int, ...]:
        return point.get("filters", self.filters)


# -- reading -------------------------------------------------------------------------------------------
def load_config(path: str | os.PathLike) -> SweepConfig:
    """Read and validate a sweep/figure config file. Raises UserError (one line with FILE:LINE) on any mistake."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file '{p}' does not exist") from None
    except IsADirectoryError:
        raise UserError(f"config file '{p}' is a folder, not a YAML file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"config file '{p}' could not be read: {e}") from None
    return parse_config(text, str(p), default_name=p.stem)


def parse_config(text: str, path: str = "<config>", default_name: str = "sweep") -> SweepConfig:
    """Validate config text. `path` is only used in messages; `default_name` is the sweep name if unset."""
    data, lines, raw = compose(text, path)
    if not isinstance(data, dict):
        raise UserError(f"{path}:1: a config must be a mapping of keys (like 'layers: all-conv'), "
                        f"got {type(data).__name__}")
    return _Validator(path, lines, raw).config(data, default_name)


class _Validator(Reader):
    """Turns the loaded mapping into a SweepConfig, raising FILE:LINE errors."""

    def setting(self, key: str, name: str, value, preset_name: str):
        """Check one setting (its type from the SCHEMA) by building the preset with it; return the value."""
        spec = SCHEMA[name]
        if spec.kind is float:
            value = self.coerce_float(key, value)
            if isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
        elif spec.kind is bool:
            self.boolean(key, value)
        elif spec.kind is str and value is not None and not isinstance(value, str):
            self.fail(key, f"expected a string, got {show(value)}")
        try:
            preset(preset_name, **{name: value})
        except UserError as e:
            self.fail(key, str(e))
        return value

    def preset_name(self, key: str, value) -> str:
        name = self.string(key, value)
        if name not in PRESETS:
            self.fail(key, f"unknown preset {name!r}: {suggest(name, PRESETS)}")
        return name

    def config(self, data: dict, default_name: str) -> SweepConfig:
        keys = _top_keys()
        for k in data:
            if not isinstance(k, str) or k not in keys:
                self.fail(str(k), f"unknown key; {suggest(str(k), keys)}")
        name = self.string("name", data.get("name", default_name))
        if name in (".", "..") or "/" in name or "\\" in name:
            self.fail("name", f"the sweep name {name!r} becomes a folder name: no '/', '\\', '.' or '..'")
        models = self.names("model", data.get("model", DEFAULT_MODEL))
        layers = self.names("layers", data.get("layers", ALL_CONV))
        filters = self.filters("filters", data.get("filters", "all"))
        preset_name = self.preset_name("preset", data.get("preset", DEFAULT_PRESET))
        output = self.string("output", data.get("output", DEFAULT_OUTPUT))
        unsafe = self.boolean("unsafe", data.get("unsafe", False))
        executor, ray_address = self.executor(data)
        input_range, preprocess = self.model_input(data)
        examples = self.examples(data.get("examples")) if "examples" in data else None
        gallery = self.boolean("gallery", data.get("gallery", False))
        settings = tuple((k, self.setting(k, k, data[k], preset_name)) for k in data if k in SCHEMA)
        grid = self.grid(data.get("sweep"), data, preset_name)
        cfg = SweepConfig(
            path=self.path, name=name, models=models, layers=layers, filters=filters, preset=preset_name,
            settings=settings, grid=grid, output=output, unsafe=unsafe, figure=None, executor=executor,
            ray_address=ray_address, input_range=input_range, preprocess=preprocess, examples=examples,
            gallery=gallery, lines=self.lines,
        )
        for point in cfg.points():  # every combination builds (no cross-field surprises)
            try:
                cfg.settings_for(point)
            except UserError as e:
                self.fail("sweep", str(e))
        if "figure" in data:
            figure = read_figure(self.path, self.lines, self.raw, data["figure"], cfg)
            cfg = dataclasses.replace(cfg, figure=figure)
        return cfg

    def executor(self, data: dict) -> tuple[str, str | None]:
        """`executor` (serial or ray) and, with ray, the optional `ray_address` of a cluster to join."""
        executor = self.string("executor", data.get("executor", "serial"))
        if executor not in EXECUTORS:
            self.fail("executor", f"unknown executor {executor!r}: {suggest(executor, EXECUTORS)}")
        address = self.string("ray_address", data.get("ray_address"), allow_none=True)
        if address is not None and executor != "ray":
            self.fail("ray_address", "needs 'executor: ray' (a Ray cluster runs the jobs)")
        return executor, address

    def examples(self, spec) -> ExamplesSpec:
        """`examples: {images: DIR, k: 9, batch: 32, size: 224}`: the folder must exist."""
        if isinstance(spec, str):
            spec = {"images": spec}
        if not isinstance(spec, dict) or "images" not in spec:
            self.fail("examples", f"expected a mapping with 'images: FOLDER' (and k, batch, size), got {show(spec)}")
        for k in spec:
            if k not in EXAMPLES_KEYS:
                self.fail(f"examples.{k}", f"unknown key; {suggest(str(k), EXAMPLES_KEYS)}")
        images = self.string("examples.images", spec["images"])
        if not Path(images).is_dir():
            self.fail("examples.images", f"folder '{images}' does not exist")
        size = spec.get("size")
        return ExamplesSpec(
            images, self.integer("examples.k", spec.get("k", 9), 1, 1000),
            self.integer("examples.batch", spec.get("batch", 32), 1, 4096),
            None if size is None else self.integer("examples.size", size, 8, 4096),
        )

    def model_input(self, data: dict) -> tuple[tuple[float, float] | None, str | None]:
        """`input_range` ('0:1' or [0, 1]) and `preprocess` (filterviz.inputs), for every model of the sweep."""
        from .inputs import check_preprocess, parse_input_range

        values = []
        for key, check in (("input_range", parse_input_range), ("preprocess", check_preprocess)):
            value = data.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and ":" in self.raw.get(key, ""):
                value = self.raw[key]  # -1:1 unquoted is a YAML 1.1 base-60 integer (-61); the user meant a range
            try:
                values.append(None if value is None else check(value))
            except UserError as e:
                self.fail(key, str(e))
        return values[0], values[1]

    def grid(self, sweep, data: dict, preset_name: str) -> tuple[tuple[str, tuple], ...]:
        if sweep is None:
            return ()
        if not isinstance(sweep, dict):
            self.fail("sweep", f"expected a mapping of key: [values], like 'steps: [64, 256]', got {show(sweep)}")
        valid = ("preset", "filters") + setting_keys()
        out = []
        for k, values in sweep.items():
            key = f"sweep.{k}"
            if not isinstance(k, str) or k not in valid:
                extra = (" (list several models under 'model', several layers under 'layers')"
                         if k in ("model", "layers") else "")
                self.fail(key, f"cannot be swept{extra}; {suggest(str(k), valid)}")
            if k in data:
                self.fail(key, f"'{k}' is set both at the top level and in sweep; keep one")
            if not isinstance(values, list) or not values:
                self.fail(key, f"expected a non-empty list of values, like '{k}: [a, b]', got {show(values)}")
            checked = []
            for i, v in enumerate(values):
                item = f"{key}[{i}]"
                if k == "preset":
                    v = self.preset_name(item, v)
                elif k == "filters":
                    v = self.filters(item, v)
                else:
                    v = self.setting(item, k, v, preset_name)
                if v in checked:
                    self.fail(item, f"value {v!r} is listed twice")
                checked.append(v)
            out.append((k, tuple(checked)))
        return tuple(out)

