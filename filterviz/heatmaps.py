"""Attribution maps as pictures: a [0, 1] heatmap per image, a perceptual colour ramp, and an overlay.

Plain numpy, so figures and the CLI can show maps without TensorFlow.
"""

from __future__ import annotations

import numpy as np

__all__ = ["heatmap", "colorize", "overlay"]


def heatmap(raw: np.ndarray, method: str = "saliency", percentile: float = 99.5) -> np.ndarray:
    """Raw maps [N,H,W,C] -> [N,H,W] in [0,1]: abs-max over channels (|sum| for gradient_x_input), each image
    divided by its own `percentile` so a few extreme pixels do not wash out the rest."""
    raw = np.asarray(raw, dtype=np.float64)
    mag = np.abs(raw.sum(axis=-1)) if method == "gradient_x_input" else np.abs(raw).max(axis=-1)
    mag = np.where(np.isfinite(mag), mag, 0.0)
    scale = np.percentile(mag.reshape(len(mag), -1), percentile, axis=1)[:, None, None]
    return np.clip(mag / np.where(scale > 0, scale, 1.0), 0.0, 1.0).astype(np.float32)


# A perceptually ordered black -> purple -> orange -> yellow ramp (close to matplotlib's "inferno").
_RAMP = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
                  [250, 193, 39], [252, 255, 164]], dtype=np.float64)


def colorize(heat: np.ndarray) -> np.ndarray:
    """Heatmaps [..., H, W] in [0,1] -> uint8 RGB [..., H, W, 3] (black for 0, pale yellow for 1)."""
    t = np.clip(np.asarray(heat, dtype=np.float64), 0.0, 1.0) * (len(_RAMP) - 1)
    stops = np.arange(len(_RAMP))
    rgb = np.stack([np.interp(t, stops, _RAMP[:, c]) for c in range(3)], axis=-1)
    return np.round(rgb).astype(np.uint8)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.85) -> np.ndarray:
    """A uint8 RGB picture: `image` [H,W,C] (uint8, RGB or gray) dimmed and desaturated, the coloured `heat`
    [H,W] on top, more opaque where the map is strong."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[..., None]
    grey = img.mean(axis=-1, keepdims=True) * np.ones(3)
    h = np.clip(np.asarray(heat, dtype=np.float64), 0.0, 1.0)[..., None]
    a = alpha * np.sqrt(h)
    base = 0.6 * (0.5 * grey + 0.5 * (img if img.shape[-1] == 3 else grey))
    out = (1.0 - a) * base + a * colorize(h[..., 0])
    return np.round(np.clip(out, 0, 255)).astype(np.uint8)
