"""The `figure:` section of a sweep config: which results go into the paper figure and how it looks.

Read key by key with FILE:LINE errors like the rest of the config (filterviz.yamlread); `filterviz.paper` makes
the figure from a FigureSpec and the sweep's finished results.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UserError, suggest
from .settings import FIGURE_WIDTHS, FilterRange
from .yamlread import FLOAT_TEXT, Reader, show

__all__ = ["FigureSpec", "read_figure", "FIGURE_KEYS", "FIGURE_LAYOUTS", "FIGURE_FORMATS"]

FIGURE_LAYOUTS = ("grid", "rows", "compare")
FIGURE_FORMATS = ("pdf", "svg", "png")
FIGURE_KEYS = (
    "layout", "model", "layers", "filters", "columns", "compare", "width", "font_size", "dpi", "formats",
    "file", "panel_labels", "title",
)


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


class _FigureReader(Reader):
    """The `figure:` section: one reader per key (`_KEY`), then FigureSpec's own checks."""

    def read(self, fig, cfg) -> FigureSpec:
        if fig is None:
            fig = {}
        if not isinstance(fig, dict):
            self.fail("figure", f"expected a mapping (layout, layers, filters, width, ...), got {show(fig)}")
        for k in fig:
            if not isinstance(k, str) or k not in FIGURE_KEYS:
                self.fail(f"figure.{k}", f"unknown key; {suggest(str(k), FIGURE_KEYS)}")
        self.cfg = cfg
        kw = {k: getattr(self, f"_{k}")(f"figure.{k}", fig[k]) for k in FIGURE_KEYS if k in fig}
        if kw.get("layout", "rows") == "compare" and "compare" not in kw:
            swept = [k for k, _ in cfg.grid]
            if not swept:
                self.fail("figure.layout", "layout 'compare' needs a 'sweep:' section (e.g. 'preset: [fast, quality]')")
            kw["compare"] = swept[0]
        try:
            return FigureSpec(**kw)
        except UserError as e:
            self.fail("figure", str(e))

    def _layout(self, key: str, value) -> str:
        layout = self.string(key, value)
        if layout not in FIGURE_LAYOUTS:
            self.fail(key, f"unknown layout {layout!r}: {suggest(layout, FIGURE_LAYOUTS)}")
        return layout

    def _model(self, key: str, value) -> str:
        return self.string(key, value)

    def _layers(self, key: str, value) -> tuple[str, ...]:
        return self.names(key, value)

    def _filters(self, key: str, value) -> tuple[int, ...]:
        spec = self.filter_spec(key, value)
        if spec == "all" or (isinstance(spec, FilterRange) and spec.stop is None):
            self.fail(key, "choose the columns: a list like [0, 3, 7] or a range like 0:8")
        return tuple(range(spec.start or 0, spec.stop)) if isinstance(spec, FilterRange) else spec

    def _columns(self, key: str, value) -> int:
        return self.integer(key, value, 1, 256)

    def _compare(self, key: str, value) -> str:
        swept = [k for k, _ in self.cfg.grid] + (["model"] if len(self.cfg.models) > 1 else [])
        name = self.string(key, value)
        if name not in swept:
            self.fail(key, f"{name!r} is not swept in this config: "
                      + (suggest(name, swept) if swept else "add a 'sweep:' section, e.g. 'steps: [64, 256]'"))
        return name

    def _width(self, key: str, value) -> float:
        if isinstance(value, str) and value in FIGURE_WIDTHS:
            value = FIGURE_WIDTHS[value]
        elif isinstance(value, str) and not FLOAT_TEXT.match(value.strip()):
            self.fail(key, f"unknown width {value!r}: single (3.5 in), double (7.16 in) or inches")
        w = self.number(key, value)
        if not 0.5 <= w <= 40:
            self.fail(key, f"{w} in is out of range: single, double, or inches from 0.5 to 40")
        return w

    def _font_size(self, key: str, value) -> float:
        s = self.number(key, value)
        if not 2 <= s <= 72:
            self.fail(key, f"{s} pt is out of range: points from 2 to 72")
        return s

    def _dpi(self, key: str, value) -> int:
        return self.integer(key, value, 36, 2400)

    def _formats(self, key: str, value) -> tuple[str, ...]:
        formats = self.names(key, value)
        for i, f in enumerate(formats):
            if f.lower() not in FIGURE_FORMATS:
                self.fail(f"{key}[{i}]", f"unknown format {f!r}: {suggest(f.lower(), FIGURE_FORMATS)}")
        return tuple(dict.fromkeys(f.lower() for f in formats))

    def _file(self, key: str, value) -> str:
        name = self.string(key, value)
        if "/" in name or "\\" in name or name in (".", ".."):
            self.fail(key, f"a file name without folders or extension, got {name!r}")
        return name

    def _panel_labels(self, key: str, value) -> bool:
        return self.boolean(key, value)

    def _title(self, key: str, value) -> str | None:
        return self.string(key, value, allow_none=True)


def read_figure(path: str, lines: dict, raw: dict, fig, cfg) -> FigureSpec:
    """The validated `figure:` section of `cfg` (a SweepConfig: its sweep keys and models can be compared)."""
    return _FigureReader(path, lines, raw).read(fig, cfg)
