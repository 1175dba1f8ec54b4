"""What the compiled loop returns for a list of filters (`ChunkOutput`), and how parts of a render combine.

Plain numpy, so that results can be saved, resumed and merged without TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["ChunkOutput"]


@dataclass(frozen=True)
class ChunkOutput:
    """Results for a list of filters: images in model-input space, final objective, loss trace, NaN flags,
    (where known) the filter indices, and `extras`: more arrays with one row per filter, saved in images.npz
    (`diversity` [F, K, H, W, C]: each filter's K pictures in model-input space, the first being `images`;
    `alpha` [F, H, W]: the transparency map, 0..1)."""

    images: np.ndarray
    scores: np.ndarray
    trace: np.ndarray
    nonfinite: np.ndarray
    filters: np.ndarray | None = None
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @staticmethod
    def concat(parts: Sequence[ChunkOutput]) -> ChunkOutput:
        """The parts one after another (every part needs its `filters`); extras that every part has."""
        fields = ("images", "scores", "trace", "nonfinite", "filters")
        keys = [k for k in parts[0].extras if all(k in p.extras for p in parts)] if parts else []
        return ChunkOutput(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields),
                           extras={k: np.concatenate([p.extras[k] for p in parts]) for k in keys})

    def extras_with(self, rows: np.ndarray, other: ChunkOutput, other_rows: np.ndarray | None = None) -> dict:
        """The extras with `rows` (a mask or indices) replaced by `other`'s (its `other_rows`, default all), for
        the keys both have: a retry or rescue keeps its pictures' extras with them."""
        out = {}
        for k, v in self.extras.items():
            v = v.copy()
            if k in other.extras:
                v[rows] = other.extras[k] if other_rows is None else other.extras[k][other_rows]
            out[k] = v
        return out
