"""Pictures for TensorBoard: named uint8 image grids written as `tf.summary.image` events at a step.

The training callback can log the current filter grid of each watched layer after every epoch, so TensorBoard's
Images tab shows how the filters change during training (one slider step per epoch).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["ImageSummaries", "write_image_grids"]


def _checked(grids: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    checked = {}
    for tag, grid in grids.items():
        image = np.asarray(grid)
        image = image[..., None] if image.ndim == 2 else image
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
            raise ValueError(f"image grid '{tag}' must be uint8 [H,W] or [H,W,C] with C 1, 3 or 4; "
                             f"got {image.dtype} {image.shape}")
        checked[str(tag)] = image
    return checked


class ImageSummaries:
    """One event file in `logdir` that takes named uint8 pictures at steps (e.g. one step per epoch).

    Pictures are stored losslessly (PNG), in the format of tf.summary.image, written with tf.summary.write so
    that the tensorboard package is not needed to write them."""

    def __init__(self, logdir: str | os.PathLike) -> None:
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self._metadata = summary_pb2.SummaryMetadata()
        self._metadata.plugin_data.plugin_name = "images"  # TensorBoard's image plugin; empty content: defaults
        self._writer = tf.summary.create_file_writer(str(self.logdir))

    def write(self, grids: Mapping[str, np.ndarray], step: int) -> None:
        """Each picture of `grids` ({tag: [H,W] or [H,W,C] with C 1, 3 or 4}) at `step`, flushed to disk."""
        import tensorflow as tf

        checked = _checked(grids)
        with self._writer.as_default():
            for tag, image in checked.items():  # the layout tf.summary.image writes: [width, height, png]
                h, w = image.shape[:2]
                tensor = tf.stack([tf.as_string(w), tf.as_string(h), tf.io.encode_png(image)])
                tf.summary.write(tag, tensor, step=int(step), metadata=self._metadata)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def write_image_grids(logdir: str | os.PathLike, grids: Mapping[str, np.ndarray], step: int) -> Path:
    """Write each uint8 picture of `grids` as an image summary at `step` to a new event file in `logdir`."""
    log = ImageSummaries(logdir)
    try:
        log.write(grids, step)
    finally:
        log.close()
    return log.logdir
