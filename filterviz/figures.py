"""Figures for screens and papers, built with matplotlib's object-oriented API.

The only module that imports matplotlib. Functions here build and return `matplotlib.figure.Figure`
objects; they never change global rcParams and never write files (sweep.py saves them).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)  # no display needed; a no-op when a backend is already chosen

from matplotlib.figure import Figure  # noqa: E402

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
