"""Pictures of a convolution's raw weights (its kernels), tiled into one grid. NumPy only.

Layout:
- a layer with 3 input channels (the first layer of an RGB network): one RGB tile per filter;
- any other layer: one row per filter, one grayscale tile per input channel, showing at most `max_inputs`
  (default 8) input channels, the first ones (a 3x3x512 kernel has 512 slices; a few show the texture).

Normalization: symmetric per filter. Each filter's weights (over all its shown slices) are divided by their
largest absolute value, so zero is mid-grey (128), the most positive weight white and the most negative black
(for RGB tiles, per colour channel in the same way). Filters are scaled independently so weak filters stay
visible; relative strengths between a filter's own channels are kept. Tiles are enlarged with nearest-neighbour
pixels to about `tile_px` pixels so each weight shows as a sharp square.
"""

from __future__ import annotations

import math

import numpy as np

from .grid import tile, tile_with_headers

__all__ = ["kernel_tiles", "kernel_grid"]


def _check(weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 4:
        raise ValueError(f"conv kernels are [kh, kw, in, out]; got shape {w.shape}")
    return np.where(np.isfinite(w), w, 0.0)


def kernel_tiles(
    weights: np.ndarray, filters: np.ndarray | None = None, max_inputs: int = 8, tile_px: int = 24
) -> tuple[np.ndarray, int]:
    """uint8 tiles [n, h, w, C] of the selected `filters` (default all), and the number of grid columns."""
    w = _check(weights)
    kh, kw, cin, _ = w.shape
    idx = np.arange(w.shape[3]) if filters is None else np.asarray(filters, dtype=int)
    scale = max(1, int(round(tile_px / max(kh, kw))))
    w = w[..., idx]  # [kh, kw, in, n]
    if cin != 3:
        w = w[:, :, : max(1, int(max_inputs)), :]
    peak = np.abs(w).max(axis=(0, 1, 2), keepdims=True)
    unit = 0.5 + 0.5 * w / np.where(peak > 0, peak, 1.0)  # [-peak, peak] -> [0, 1], zero -> 0.5
    pix = np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
    pix = pix.repeat(scale, axis=0).repeat(scale, axis=1)
    if cin == 3:
        return np.transpose(pix, (3, 0, 1, 2)), 0  # [n, h, w, 3]; columns chosen by tile()
    shown = pix.shape[2]
    tiles = np.transpose(pix, (3, 2, 0, 1)).reshape(-1, pix.shape[0], pix.shape[1], 1)  # filter-major
    return tiles, shown


def kernel_grid(
    weights: np.ndarray,
    filters: np.ndarray | None = None,
    max_inputs: int = 8,
    tile_px: int = 24,
    labels: bool = False,
) -> np.ndarray:
    """One uint8 picture of a conv layer's kernels (see the module docstring for layout and normalization).

    RGB layers give [H, W, 3]; other layers give [H, W, 1], one row per filter and one column per input channel.
    With `labels`, numbers go in margins and never cover a weight: each RGB tile's filter number above it; for
    other layers the filter numbers left of the rows and the input channels above the columns.
    """
    idx = np.arange(np.shape(weights)[3]) if filters is None else np.asarray(filters, dtype=int)
    tiles, cols = kernel_tiles(weights, idx, max_inputs, tile_px)
    if cols == 0:  # one RGB tile per filter, numbered above each tile
        cols = math.ceil(math.sqrt(len(idx)))
        if not labels:
            return tile(tiles, cols=cols, margin=2, background=255)
        rows = [tile_with_headers(tiles[s : s + cols], cols, col_labels=[int(i) for i in idx[s : s + cols]])
                for s in range(0, len(idx), cols)]
        width = max(r.shape[1] for r in rows)
        return np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])
    if not labels:
        return tile(tiles, cols=cols, margin=2, background=255)
    # filters as rows, input channels as columns
    return tile_with_headers(tiles, cols, row_labels=[int(i) for i in idx], col_labels=list(range(cols)))
