"""Image grids written for TensorBoard read back from the event file, pixel for pixel."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from filterviz.tensorboard import write_image_grids


def _read_images(logdir) -> dict[tuple[str, int], np.ndarray]:
    found = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                data = tf.make_ndarray(value.tensor)  # [width, height, png bytes]
                assert value.metadata.plugin_data.plugin_name == "images"
                image = np.asarray(Image.open(io.BytesIO(data[2])))
                assert (int(data[0]), int(data[1])) == (image.shape[1], image.shape[0])
                found[value.tag, event.step] = image
    return found


def test_grids_read_back(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (7, 5), dtype=np.uint8)
    write_image_grids(tmp_path, {"block1_conv1": rgb, "conv/grey": grey}, step=3)
    write_image_grids(tmp_path, {"block1_conv1": rgb[::-1]}, step=4)
    got = _read_images(tmp_path)
    assert sorted(got) == [("block1_conv1", 3), ("block1_conv1", 4), ("conv/grey", 3)]
    np.testing.assert_array_equal(got["block1_conv1", 3], rgb)
    np.testing.assert_array_equal(got["block1_conv1", 4], rgb[::-1])
    np.testing.assert_array_equal(got["conv/grey", 3], grey)


def test_rejects_non_uint8(tmp_path):
    with pytest.raises(ValueError, match="must be uint8"):
        write_image_grids(tmp_path, {"x": np.zeros((4, 4, 3), np.float32)}, step=0)
    with pytest.raises(ValueError, match="must be uint8"):
        write_image_grids(tmp_path, {"x": np.zeros((4, 4, 2), np.uint8)}, step=0)
