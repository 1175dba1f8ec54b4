"""The YAML schema of sweep and figure configs, validated before any work.

A config is loaded with PyYAML's safe loader. Every mistake (unknown key, wrong type, value out of range,
bad YAML) raises one `UserError` line of the form `FILE:LINE: key 'KEY': what is wrong; what is valid`.
Line numbers come from `yaml.compose` (SafeLoader too), which keeps each node's position.

Render settings are checked by building the engine's own `RenderSettings` / `preset(...)`, so the config
accepts exactly what the engine accepts. Nothing here loads a model: layer globs and filter indices are
resolved against the model by the sweep runner (`filterviz.sweep.plan_jobs`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UserError, suggest
from .settings import ALL_CONV, DEFAULT_MODEL, DEFAULT_OUTPUT, FIGURE_WIDTHS

__all__ = [
    "SweepConfig",
    "FigureSpec",
    "load_config",
    "parse_config",
    "setting_keys",
    "TOP_KEYS",
    "FIGURE_KEYS",
    "FIGURE_WIDTHS",
    "FIGURE_LAYOUTS",
    "FIGURE_FORMATS",
    "ALL_CONV",
]

FIGURE_LAYOUTS = ("grid", "rows", "compare")
FIGURE_FORMATS = ("pdf", "svg", "png")
_BASE_KEYS = ("name", "model", "layers", "filters", "preset", "sweep", "output", "unsafe", "figure")
FIGURE_KEYS = (
    "layout", "model", "layers", "filters", "columns", "compare", "width", "font_size", "dpi", "formats",
    "file", "panel_labels", "title",
)
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def setting_keys() -> tuple[str, ...]:
    """Every field of `filterviz.ascent.RenderSettings`, in declaration order."""
    from .ascent import RenderSettings

    return tuple(f.name for f in dataclasses.fields(RenderSettings))


def _top_keys() -> tuple[str, ...]:
    return _BASE_KEYS + setting_keys()


TOP_KEYS = _BASE_KEYS  # the non-settings keys; every RenderSettings field is a valid top-level key too


@dataclass(frozen=True)
class FigureSpec:
    """The `figure:` section: which results go into the figure and how it looks."""

    layout: str = "rows"
    model: str | None = None
    layers: tuple[str, ...] = ()
    filters: tuple[int, ...] = ()
    columns: int = 8
    compare: str | None = None
    width: float = FIGURE_WIDTHS["double"]
    font_size: float = 7.0
    dpi: int = 300
    formats: tuple[str, ...] = ("pdf", "png")
    file: str = "figure"
    panel_labels: bool = True
    title: str | None = None

    def __post_init__(self) -> None:
        if self.layout not in FIGURE_LAYOUTS:
            raise UserError(f"bad layout {self.layout!r}: valid: {', '.join(FIGURE_LAYOUTS)}")
        if not (0.5 <= self.width <= 40):
            raise UserError(f"bad width {self.width!r}: single, double, or inches from 0.5 to 40")
        if not (2 <= self.font_size <= 72):
            raise UserError(f"bad font_size {self.font_size!r}: points from 2 to 72")
        if not (36 <= self.dpi <= 2400):
            raise UserError(f"bad dpi {self.dpi!r}: an integer from 36 to 2400")
        if not (1 <= self.columns <= 256):
            raise UserError(f"bad columns {self.columns!r}: an integer from 1 to 256")


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep config. `settings` are the top-level setting overrides, `grid` the `sweep:` lists."""

    path: str
    name: str
    models: tuple[str, ...] = (DEFAULT_MODEL,)
    layers: tuple[str, ...] = (ALL_CONV,)
    filters: str | tuple[int, ...] = "all"
    preset: str = "fast"
    settings: tuple[tuple[str, object], ...] = ()
    grid: tuple[tuple[str, tuple], ...] = ()
    output: str = DEFAULT_OUTPUT
    unsafe: bool = False
    figure: FigureSpec | None = None
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

    def settings_for(self, point: Mapping[str, object]):
        """The RenderSettings of one grid point: preset, then top-level overrides, then the point's values."""
        from .ascent import preset

        values = dict(self.settings)
        values.update({k: v for k, v in point.items() if k not in ("preset", "filters")})
        return preset(str(point.get("preset", self.preset)), **values)

    def filters_for(self, point: Mapping[str, object]) -> str | tuple[int, ...]:
        return point.get("filters", self.filters)


# -- reading -------------------------------------------------------------------------------------------
def _line_map(node, prefix: str = "", out: dict | None = None) -> dict[str, int]:
    """Dotted key -> 1-based line, for the top-level mapping and its nested mappings."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}" if isinstance(k, yaml.ScalarNode) else f"{prefix}?"
            out.setdefault(key, k.start_mark.line + 1)
            if isinstance(v, yaml.MappingNode):
                _line_map(v, key + ".", out)
            elif isinstance(v, yaml.SequenceNode):
                for i, item in enumerate(v.value):
                    out.setdefault(f"{key}[{i}]", item.start_mark.line + 1)
    return out


def _raw_node_text(node, prefix: str = "", out: dict | None = None) -> dict[str, str]:
    """Dotted key (sequence items as key[i]) -> scalar text as written, with plain style only."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}" if isinstance(k, yaml.ScalarNode) else f"{prefix}?"
            if isinstance(v, yaml.ScalarNode) and v.style is None:
                out[key] = v.value
            elif isinstance(v, yaml.SequenceNode):
                for i, item in enumerate(v.value):
                    if isinstance(item, yaml.ScalarNode) and item.style is None:
                        out[f"{key}[{i}]"] = item.value
            elif isinstance(v, yaml.MappingNode):
                _raw_node_text(v, key + ".", out)
    return out


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
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{where}: bad YAML: {problem}") from None
    if data is None:
        data, node = {}, None
    if not isinstance(data, dict):
        raise UserError(f"{path}:1: a config must be a mapping of keys (like 'layers: all-conv'), got {type(data).__name__}")
    lines = _line_map(node) if node is not None else {}
    raw = _raw_node_text(node) if node is not None else {}
    return _Validator(path, lines, raw).config(data, default_name)


class _Validator:
    """Turns the loaded mapping into a SweepConfig, raising FILE:LINE errors."""

    def __init__(self, path: str, lines: dict[str, int], raw: dict[str, str]) -> None:
        self.path, self.lines, self.raw = path, lines, raw

    def fail(self, key: str, msg: str):
        line = self.lines.get(key) or self.lines.get(re.sub(r"\[\d+\]$", "", key)) or self.lines.get(key.split(".")[0])
        where = f"{self.path}:{line}" if line else self.path
        shown = re.sub(r"\[\d+\]$", "", key)
        raise UserError(f"{where}: key '{shown}': {msg}")

    # -- small typed readers ------------------------------------------------------------------------
    def string(self, key: str, value, *, allow_none: bool = False) -> str | None:
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or (isinstance(value, str) and not value.strip()):
            self.fail(key, f"expected a non-empty string, got {_show(value)}")
        return str(value)

    def boolean(self, key: str, value) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {_show(value)}")
        return value

    def integer(self, key: str, value, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer from {lo} to {hi}, got {_show(value)}")
        if not lo <= value <= hi:
            self.fail(key, f"{value} is out of range: an integer from {lo} to {hi}")
        return value

    def number(self, key: str, value) -> float:
        value = self.coerce_float(key, value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"expected a number, got {_show(value)}")
        return float(value)

    def coerce_float(self, key: str, value):
        """YAML 1.1 reads an unquoted 1e-3 as a string; take it as the number the user meant."""
        if isinstance(value, str) and key in self.raw and _FLOAT_TEXT.match(value.strip()):
            return float(value)
        return value

    def names(self, key: str, value) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            self.fail(key, "expected a name or a non-empty list of names, got an empty list")
        return tuple(self.string(f"{key}[{i}]" if isinstance(value, list) else key, v) for i, v in enumerate(items))

    def filters(self, key: str, value) -> str | tuple[int, ...]:
        """'all', 'a:b', '3,7,9', an integer, or a list of integers (indices >= 0)."""
        if isinstance(value, int) and not isinstance(value, bool) and ":" in self.raw.get(key, ""):
            value = self.raw[key]  # 8:16 unquoted is a YAML 1.1 base-60 integer (496); the user meant a range
        if isinstance(value, bool) or value is None:
            self.fail(key, f"expected all, a range like 0:64, or a list of filter indices, got {_show(value)}")
        if isinstance(value, int):
            value = [value]
        if isinstance(value, list):
            if not value:
                self.fail(key, "an empty list selects no filters; use all, a range like 0:64, or indices")
            for i, v in enumerate(value):
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    self.fail(f"{key}[{i}]", f"filter indices are integers >= 0, got {_show(v)}")
            return tuple(value)
        if not isinstance(value, str):
            self.fail(key, f"expected all, a range like 0:64, or a list of filter indices, got {_show(value)}")
        text = value.strip().lower()
        if text == "all":
            return "all"
        m = re.fullmatch(r"(\d*)\s*:\s*(\d*)", text)
        if m:
            a, b = m.groups()
            if a and b and int(a) >= int(b):
                self.fail(key, f"range '{value}' is empty: the end is exclusive, e.g. 0:16")
            return f"{a}:{b}"
        if re.fullmatch(r"\d+(\s*,\s*\d+)*\s*,?", text):
            return tuple(int(t) for t in text.split(",") if t.strip())
        self.fail(key, f"bad filters {value!r}: use all, a range like 0:64, or a list like [3, 7, 9]")

    # -- render settings ----------------------------------------------------------------------------
    def setting(self, key: str, name: str, value, preset_name: str):
        """Check one setting by building the preset with it alone; return the (normalized) value."""
        from .ascent import RenderSettings, preset

        default = getattr(RenderSettings(), name)
        kind = type(default) if default is not None else None
        if name in ("chunk", "display"):
            kind = int if name == "chunk" else str
        if kind is float:
            value = self.coerce_float(key, value)
            if isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
        if kind is bool and not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {_show(value)}")
        if kind is str and value is not None and not isinstance(value, str):
            self.fail(key, f"expected a string, got {_show(value)}")
        try:
            preset(preset_name, **{name: value})
        except UserError as e:
            self.fail(key, str(e))
        except TypeError as e:  # e.g. a list where a number goes
            self.fail(key, f"wrong type {_show(value)}: {e}")
        return value

    def preset_name(self, key: str, value) -> str:
        from .ascent import PRESETS

        name = self.string(key, value)
        if name not in PRESETS:
            self.fail(key, f"unknown preset {name!r}: {suggest(name, PRESETS)}")
        return name

    # -- the whole file -----------------------------------------------------------------------------
    def config(self, data: dict, default_name: str) -> SweepConfig:
        keys = _top_keys()
        settings_names = setting_keys()
        for k in data:
            if not isinstance(k, str) or k not in keys:
                self.fail(str(k), f"unknown key; {suggest(str(k), keys)}")
        name = self.string("name", data.get("name", default_name))
        if name in (".", "..") or "/" in name or "\\" in name:
            self.fail("name", f"the sweep name {name!r} becomes a folder name: no '/', '\\', '.' or '..'")
        models = self.names("model", data.get("model", DEFAULT_MODEL))
        layers = self.names("layers", data.get("layers", ALL_CONV))
        filters = self.filters("filters", data.get("filters", "all"))
        preset_name = self.preset_name("preset", data.get("preset", "fast"))
        output = self.string("output", data.get("output", DEFAULT_OUTPUT))
        unsafe = self.boolean("unsafe", data.get("unsafe", False))
        settings = tuple(
            (k, self.setting(k, k, data[k], preset_name)) for k in data if k in settings_names
        )
        grid = self.grid(data.get("sweep"), data, preset_name, settings_names)
        cfg = SweepConfig(
            path=self.path, name=name, models=models, layers=layers, filters=filters, preset=preset_name,
            settings=settings, grid=grid, output=output, unsafe=unsafe, figure=None, lines=self.lines,
        )
        for point in cfg.points():  # every combination builds (no cross-field surprises)
            try:
                cfg.settings_for(point)
            except UserError as e:
                self.fail("sweep", str(e))
        if "figure" in data:
            cfg = dataclasses.replace(cfg, figure=self.figure(data["figure"], cfg))
        return cfg

    def grid(self, sweep, data: dict, preset_name: str, settings_names) -> tuple[tuple[str, tuple], ...]:
        if sweep is None:
            return ()
        if not isinstance(sweep, dict):
            self.fail("sweep", f"expected a mapping of key: [values], like 'steps: [64, 256]', got {_show(sweep)}")
        valid = ("preset", "filters") + tuple(settings_names)
        out = []
        for k, values in sweep.items():
            key = f"sweep.{k}"
            if not isinstance(k, str) or k not in valid:
                extra = " (list several models under 'model', several layers under 'layers')" if k in ("model", "layers") else ""
                self.fail(key, f"cannot be swept{extra}; {suggest(str(k), valid)}")
            if k in data:
                self.fail(key, f"'{k}' is set both at the top level and in sweep; keep one")
            if not isinstance(values, list) or not values:
                self.fail(key, f"expected a non-empty list of values, like '{k}: [a, b]', got {_show(values)}")
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

    def figure(self, fig, cfg: SweepConfig) -> FigureSpec:
        if fig is None:
            fig = {}
        if not isinstance(fig, dict):
            self.fail("figure", f"expected a mapping (layout, layers, filters, width, ...), got {_show(fig)}")
        for k in fig:
            if not isinstance(k, str) or k not in FIGURE_KEYS:
                self.fail(f"figure.{k}", f"unknown key; {suggest(str(k), FIGURE_KEYS)}")
        kw: dict = {}
        if "layout" in fig:
            layout = self.string("figure.layout", fig["layout"])
            if layout not in FIGURE_LAYOUTS:
                self.fail("figure.layout", f"unknown layout {layout!r}: {suggest(layout, FIGURE_LAYOUTS)}")
            kw["layout"] = layout
        if "model" in fig:
            kw["model"] = self.string("figure.model", fig["model"])
        if "layers" in fig:
            kw["layers"] = self.names("figure.layers", fig["layers"])
        if "filters" in fig:
            f = self.filters("figure.filters", fig["filters"])
            if isinstance(f, str):
                m = re.fullmatch(r"(\d*):(\d+)", f)
                if not m:
                    self.fail("figure.filters", "choose the columns: a list like [0, 3, 7] or a range like 0:8")
                f = tuple(range(int(m.group(1) or 0), int(m.group(2))))
            kw["filters"] = f
        if "columns" in fig:
            kw["columns"] = self.integer("figure.columns", fig["columns"], 1, 256)
        if "compare" in fig:
            swept = [k for k, _ in cfg.grid] + (["model"] if len(cfg.models) > 1 else [])
            key = self.string("figure.compare", fig["compare"])
            if key not in swept:
                self.fail("figure.compare", f"{key!r} is not swept in this config: "
                          + (suggest(key, swept) if swept else "add a 'sweep:' section, e.g. 'steps: [64, 256]'"))
            kw["compare"] = key
        if "width" in fig:
            w = fig["width"]
            if isinstance(w, str) and w in FIGURE_WIDTHS:
                w = FIGURE_WIDTHS[w]
            elif isinstance(w, str) and not _FLOAT_TEXT.match(w.strip()):
                self.fail("figure.width", f"unknown width {w!r}: single (3.5 in), double (7.16 in) or inches")
            w = self.number("figure.width", w)
            if not 0.5 <= w <= 40:
                self.fail("figure.width", f"{w} in is out of range: single, double, or inches from 0.5 to 40")
            kw["width"] = w
        if "font_size" in fig:
            s = self.number("figure.font_size", fig["font_size"])
            if not 2 <= s <= 72:
                self.fail("figure.font_size", f"{s} pt is out of range: points from 2 to 72")
            kw["font_size"] = s
        if "dpi" in fig:
            kw["dpi"] = self.integer("figure.dpi", fig["dpi"], 36, 2400)
        if "formats" in fig:
            formats = self.names("figure.formats", fig["formats"])
            for i, f in enumerate(formats):
                if f.lower() not in FIGURE_FORMATS:
                    self.fail(f"figure.formats[{i}]", f"unknown format {f!r}: {suggest(f.lower(), FIGURE_FORMATS)}")
            kw["formats"] = tuple(dict.fromkeys(f.lower() for f in formats))
        if "file" in fig:
            name = self.string("figure.file", fig["file"])
            if "/" in name or "\\" in name or name in (".", ".."):
                self.fail("figure.file", f"a file name without folders or extension, got {name!r}")
            kw["file"] = name
        if "panel_labels" in fig:
            kw["panel_labels"] = self.boolean("figure.panel_labels", fig["panel_labels"])
        if "title" in fig:
            kw["title"] = self.string("figure.title", fig["title"], allow_none=True)
        layout = kw.get("layout", "rows")
        if layout == "compare" and "compare" not in kw:
            swept = [k for k, _ in cfg.grid]
            if not swept:
                self.fail("figure.layout", "layout 'compare' needs a 'sweep:' section (e.g. 'preset: [fast, quality]')")
            kw["compare"] = swept[0]
        try:
            return FigureSpec(**kw)
        except UserError as e:
            self.fail("figure", str(e))


def _show(value) -> str:
    """A value and its YAML type, for 'got ...' messages."""
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping",
            type(None): "nothing"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text[:40] + '...' if len(text) > 40 else text}"
