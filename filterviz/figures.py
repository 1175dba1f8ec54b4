"""Figures for screens and papers, built with matplotlib's object-oriented API.

The only module that imports matplotlib. Functions here build and return `matplotlib.figure.Figure`
objects; they never change global rcParams and never write files (sweep.py saves them).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg", force=False)  # no display needed; a no-op when a backend is already chosen

from matplotlib.figure import Figure  # noqa: E402

__all__ = ["Figure"]
