"""Figures for screens and papers, built with matplotlib's object-oriented API.

The only module that imports matplotlib. Functions here build and return `matplotlib.figure.Figure`
objects; they never change global rcParams or the backend (a Figure made directly needs none) and never write
files (`files.save_figure` saves them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from .settings import FIGURE_WIDTHS

__all__ = ["Figure"]


def attribution_figure(
    images: "np.ndarray",
    maps: "dict[str, np.ndarray]",
    row_labels: "list[str] | None" = None,
    title: str | None = None,
    cmap: str = "inferno",
) -> Figure:
    """Methods side by side: one row per image, its input first, then each method's heatmap.

    `images` is uint8 [N,H,W,C] (C 1 or 3); `maps` maps a method name to heatmaps [N,H,W] in [0,1].
    """
    import numpy as np

    images = np.asarray(images)
    n, cols = len(images), 1 + len(maps)
    fig = Figure(figsize=(2.2 * cols, 2.3 * n + (0.4 if title else 0.0)), layout="constrained")
    axes = np.asarray(fig.subplots(n, cols, squeeze=False))
    for r in range(n):
        img = images[r]
        axes[r, 0].imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                          vmin=0, vmax=255)
        axes[r, 0].set_ylabel(row_labels[r] if row_labels else "", fontsize=8)
        for c, (method, heat) in enumerate(maps.items(), start=1):
            axes[r, c].imshow(np.asarray(heat)[r], cmap=cmap, vmin=0.0, vmax=1.0)
        for c, name in enumerate(["input", *maps]):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name.replace("_", " "), fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


__all__ += ["attribution_figure"]


# -- tile figures for sweeps and papers --------------------------------------------------------------------
# Geometry is computed in inches and every axes is placed by hand (fig.add_axes), so the page width is
# exactly the width asked for (e.g. 7.16 in for a double column) and the same inputs give the same figure.



class TileRow:
    """One row of tiles: a label (a layer name, a setting) and uint8 images [N,H,W,C] with their filter numbers."""

    __slots__ = ("label", "tiles", "numbers")

    def __init__(self, label: str, tiles, numbers=None) -> None:
        self.label = str(label)
        self.tiles = np.asarray(tiles)
        if self.tiles.ndim != 4 or self.tiles.shape[0] == 0 or self.tiles.dtype != np.uint8:
            raise ValueError(f"TileRow needs non-empty uint8 tiles [N,H,W,C], "
                             f"got {self.tiles.dtype} {self.tiles.shape}")
        self.numbers = tuple(int(n) for n in numbers) if numbers is not None else None


def _width(width: float | str) -> float:
    if isinstance(width, str):
        if width not in FIGURE_WIDTHS:
            raise ValueError(f"unknown width {width!r}; valid: {', '.join(FIGURE_WIDTHS)} or inches")
        return FIGURE_WIDTHS[width]
    return float(width)


def _text_in(chars: int, font_size: float) -> float:
    """Rough width in inches of `chars` characters of DejaVu Sans at `font_size` points."""
    return chars * 0.6 * font_size / 72.0


@dataclass(frozen=True)
class _Layout:
    """Where everything of a tile figure goes, in inches: page width and height, the left margin (panel tags and
    row labels), the tile width, and each panel's height."""

    w: float
    h: float
    left: float
    tile: float
    heights: tuple[float, ...]
    heads: tuple[bool, ...]
    pt: float
    top: float
    labelled: bool

    gap = 0.02  # between tiles
    row_gap = 0.03

    @property
    def head(self) -> float:  # the filter-number line above a panel's first row
        return 1.4 * self.pt

    @property
    def ptitle(self) -> float:  # a panel's title line
        return 1.5 * self.pt

    @property
    def panel_gap(self) -> float:
        return 2.0 * self.pt


def _layout(panels, width, font_size: float, panel_labels: bool, title: str | None, numbers) -> _Layout:
    w = _width(width)
    pt = font_size / 72.0
    cols = max(len(r.tiles) for _, rows in panels for r in rows)
    labelled = panel_labels and len(panels) > 1
    tag_w = _text_in(4, font_size) if labelled else 0.0
    label_chars = max(len(r.label) for _, rows in panels for r in rows)
    left = tag_w + min(_text_in(label_chars, font_size) + 0.6 * pt, 0.4 * w) if label_chars else tag_w + 0.02
    tile = (w - left - 0.03 - _Layout.gap * (cols - 1)) / cols
    if tile <= 0.05:
        raise ValueError(f"{cols} columns do not fit in {w} in; choose fewer filters or a wider figure")
    heads = tuple(rows[0].numbers is not None and (numbers is True or (numbers == "first" and p == 0))
                  for p, (_, rows) in enumerate(panels))
    top = (1.8 * pt if title else 0.0) + 0.03
    heights = []
    for (ptext, rows), has_head in zip(panels, heads):
        aspect = [r.tiles.shape[1] / r.tiles.shape[2] for r in rows]
        heights.append((1.5 * pt if ptext else 0.0) + (1.4 * pt if has_head else 0.0)
                       + sum(tile * a for a in aspect) + _Layout.row_gap * (len(rows) - 1))
    h = top + sum(heights) + 2.0 * pt * (len(panels) - 1) + 0.03
    return _Layout(w, h, left, tile, tuple(heights), heads, pt, top, labelled)


def _draw_panel(fig: Figure, lay: _Layout, p: int, ptext: str | None, rows, y: float, font_size: float) -> float:
    """Draw panel `p` from `y` inches below the top; returns where the next panel starts."""
    w, h, left, tile, pt = lay.w, lay.h, lay.left, lay.tile, lay.pt
    if lay.labelled:
        fig.text(0.0, 1 - y / h, f"({chr(ord('a') + p)})", ha="left", va="top", fontsize=font_size,
                 fontweight="bold")
    if ptext:
        fig.text(left / w, 1 - y / h, ptext, ha="left", va="top", fontsize=font_size)
        y += lay.ptitle
    if lay.heads[p]:
        for c, n in enumerate(rows[0].numbers):
            x = left + c * (tile + lay.gap) + tile / 2
            fig.text(x / w, 1 - (y + lay.head * 0.9) / h, str(n), ha="center", va="bottom",
                     fontsize=font_size * 0.8, color="0.3")
        y += lay.head
    for r, row in enumerate(rows):
        th = tile * row.tiles.shape[1] / row.tiles.shape[2]
        for c, img in enumerate(row.tiles):
            x = left + c * (tile + lay.gap)
            ax = fig.add_axes((x / w, 1 - (y + th) / h, tile / w, th / h))
            shown = img[..., 0] if img.shape[-1] == 1 else img
            ax.imshow(shown, cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=255,
                      interpolation="nearest", aspect="auto")
            ax.set_axis_off()
        if row.label:
            fig.text((left - 0.5 * pt) / w, 1 - (y + th / 2) / h, row.label, ha="right", va="center",
                     fontsize=font_size)
        y += th + (lay.row_gap if r < len(rows) - 1 else 0.0)
    return y + lay.panel_gap


def tile_figure(
    panels: "list[tuple[str | None, list[TileRow]]]",
    *,
    width: float | str = "double",
    font_size: float = 7.0,
    dpi: int = 300,
    panel_labels: bool = True,
    title: str | None = None,
    numbers: bool | str = True,
) -> Figure:
    """Panels stacked top to bottom; each panel is rows of tiles with row labels on the left.

    `panels` is a list of (panel title or None, rows). Panel labels (a), (b), ... are drawn in bold at each
    panel's top-left when there is more than one panel. With `numbers`, filter numbers head the first row of a
    panel (`numbers="first"`: above the first panel only). All sizes are inches and points; the figure is
    exactly `width` inches wide.
    """
    if not panels or any(not rows for _, rows in panels):
        raise ValueError("tile_figure needs at least one panel with at least one row")
    lay = _layout(panels, width, font_size, panel_labels, title, numbers)
    fig = Figure(figsize=(lay.w, lay.h), dpi=dpi)
    if title:
        fig.text(0.5, 1 - 0.03 / lay.h, title, ha="center", va="top", fontsize=font_size * 1.15)
    y = lay.top  # inches from the top
    for p, (ptext, rows) in enumerate(panels):
        y = _draw_panel(fig, lay, p, ptext, rows, y, font_size)
    return fig


def layer_figure(display, filters=None, *, layer: str = "", columns: int = 8, **style) -> Figure:
    """One layer's grid: its rendered filters in rows of `columns` tiles, the layer name as the title."""
    display = np.asarray(display)
    numbers = list(filters) if filters is not None else list(range(len(display)))
    rows = [
        TileRow("", display[s : s + columns], numbers[s : s + columns]) for s in range(0, len(display), columns)
    ]
    style.setdefault("title", layer or None)
    style.setdefault("numbers", len(rows) == 1)  # numbers head the columns only when they hold one filter each
    return tile_figure([(None, rows)], **style)


def rows_figure(rows: "list[TileRow]", **style) -> Figure:
    """One row per layer (row labels = layer names), the chosen filters as columns; rows labelled (a), (b)...

    Filter numbers head the columns once, above the first row.
    """
    style.setdefault("numbers", "first")
    return tile_figure([(None, [row]) for row in rows], **style)


def compare_figure(panels: "list[tuple[str, list[TileRow]]]", **style) -> Figure:
    """Settings side by side: per panel (a layer), one row per setting (e.g. 'steps=64'), the same filters."""
    return tile_figure(panels, **style)


__all__ += ["TileRow", "tile_figure", "layer_figure", "rows_figure", "compare_figure"]
