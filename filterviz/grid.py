"""Display deprocessing and tiling of many images into one grid picture. NumPy only.

Display deprocessing (`to_display`), per image:
- mode "std" (pixel parameterization): centre on the image's mean, scale so one standard deviation is
  `contrast` (0.15) of the range, shift to mid-grey, clip to [0, 1]. This is the Keras example's recipe;
  it shows structure even when the raw image drifts far outside the valid range.
- mode "range" (images already in the valid range, e.g. the Fourier parameterization): map the model's
  input range to [0, 1] and clip. Nothing is stretched, so colours are what the model saw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .settings import DISPLAY_MODES

__all__ = ["to_display", "to_model_space", "tile", "tile_with_headers", "FLAG_RGB"]

# 3x5 bitmap digits for filter-index labels.
_DIGITS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001010010010",
    "8": "111101111101111", "9": "111101111001111",
}


def to_display(
    images: np.ndarray, value_range: tuple[float, float], mode: str = "std", contrast: float = 0.15
) -> np.ndarray:
    """Images in model-input space [N,H,W,C] -> uint8 [N,H,W,C] for display (see module docstring)."""
    lo, hi = value_range
    x = (np.asarray(images, dtype=np.float64) - lo) / (hi - lo)
    x = np.where(np.isfinite(x), x, 0.5)
    if mode == "std":
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        std = x.std(axis=(1, 2, 3), keepdims=True)
        x = (x - mean) / (std + 1e-5) * contrast + 0.5
    elif mode != "range":
        raise ValueError(f"unknown display mode {mode!r}; valid: {', '.join(DISPLAY_MODES)}")
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_model_space(display: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """uint8 display images -> float32 model-input space (the inverse of mode "range")."""
    lo, hi = value_range
    return (display.astype(np.float32) / 255.0 * (hi - lo) + lo).astype(np.float32)


def _label(text: str, scale: int) -> np.ndarray:
    """A black-on-transparent mask [h, w] of the digits in `text`."""
    glyphs = [np.array([int(b) for b in _DIGITS[ch]], dtype=bool).reshape(5, 3) for ch in text if ch in _DIGITS]
    if not glyphs:
        return np.zeros((0, 0), bool)
    row = np.concatenate([np.pad(g, ((0, 0), (0, 1))) for g in glyphs], axis=1)[:, :-1]
    return np.kron(row, np.ones((scale, scale), bool))


FLAG_RGB = (220, 0, 0)  # the label box of a flagged tile (dead, or beaten by a photo): white digits on red
PHOTO_RGB = (0, 80, 200)  # the label box of a picture grown from a photo crop (filterviz.rescue): white on blue
PATCH_RGB = (130, 0, 170)  # the label box of a unit's tiled patch (filterviz.wake): white on purple


def tile(
    images: np.ndarray,
    cols: int | None = None,
    margin: int = 2,
    labels: list[int] | None = None,
    background: int = 255,
    flagged: Sequence[bool] | None = None,
    from_photo: Sequence[bool] | None = None,
    woken: Sequence[bool] | None = None,
) -> np.ndarray:
    """Tile uint8 images [N,H,W,C] into one picture of rows x cols with `margin` pixels between tiles.

    With `labels`, each tile's number is drawn in a small box at its top-left corner: black on white; white on
    red (on black for grey pictures) where `flagged`; else white on blue (on mid-grey for grey pictures) where
    `from_photo`, or on purple (dark grey) where `woken`. A label never covers more than a sixteenth of its tile;
    where it would, it is left out (use `tile_with_headers` for small tiles).
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"tile needs a non-empty batch [N,H,W,C], got shape {images.shape}")
    n, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.full((rows * h + (rows + 1) * margin, cols * w + (cols + 1) * margin, c), background, np.uint8)
    scale = max(1, h // 64)
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = margin + r * (h + margin), margin + q * (w + margin)
        out[y : y + h, x : x + w] = images[i]
        if labels is not None:
            style = ("flag" if flagged is not None and flagged[i] else
                     "photo" if from_photo is not None and from_photo[i] else
                     "patch" if woken is not None and woken[i] else "plain")
            _draw_label(out[y : y + h, x : x + w], str(labels[i]), scale, style)
    return out


_BOXES = {"flag": (FLAG_RGB, 0), "photo": (PHOTO_RGB, 100), "patch": (PATCH_RGB, 50),
          "plain": ((255, 255, 255), 255)}  # (RGB, grey) box


def _draw_label(tile_view: np.ndarray, text: str, scale: int, style: str = "plain") -> None:
    """Draw `text` in a box at the tile's top-left corner, in place, if the box covers at most 1/16 of the tile:
    black on white (`plain`), or white on the box colour of `flag`, `photo` or `patch`."""
    h, w, c = tile_view.shape
    mask = _label(text, scale)
    mh, mw = mask.shape
    bh, bw = mh + 2 * scale, mw + 2 * scale
    if not mh or bh * bw * 16 > h * w or bh > h or bw > w:
        return
    box = tile_view[:bh, :bw]
    rgb, grey = _BOXES[style]
    box[...] = rgb if c == 3 else grey
    box[scale : scale + mh, scale : scale + mw][mask] = 0 if style == "plain" else 255


def tile_with_headers(
    images: np.ndarray,
    cols: int,
    row_labels: Sequence[int] | None = None,
    col_labels: Sequence[int] | None = None,
    margin: int = 2,
    background: int = 255,
) -> np.ndarray:
    """Tile like `tile`, with numbers in margins instead of on the tiles: `row_labels` left of each row,
    `col_labels` above each column (e.g. a kernel grid: filters as rows, input channels as columns)."""
    body = tile(images, cols=cols, margin=margin, background=background)
    _, h, w, c = np.asarray(images).shape
    scale = max(1, min(h, w) // 16)
    glyph_h = 5 * scale
    left = (max(len(str(v)) for v in row_labels) * 4 * scale + 2 * scale) if row_labels is not None else 0
    top = glyph_h + 2 * scale if col_labels is not None else 0
    out = np.full((body.shape[0] + top, body.shape[1] + left, c), background, np.uint8)
    out[top:, left:] = body
    for k, v in enumerate(row_labels or []):
        mask = _label(str(v), scale)
        y = top + margin + k * (h + margin) + (h - mask.shape[0]) // 2
        out[y : y + mask.shape[0], left - scale - mask.shape[1] : left - scale][mask] = 0
    for k, v in enumerate(col_labels or []):
        mask = _label(str(v), scale)
        x = left + margin + k * (w + margin) + max(0, (w - mask.shape[1]) // 2)
        mw = min(mask.shape[1], out.shape[1] - x)
        out[scale : scale + glyph_h, x : x + mw][mask[:, :mw]] = 0
    return out
