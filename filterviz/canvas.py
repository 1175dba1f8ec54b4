"""What the compiled loop optimizes and what the network sees of it, beyond one random picture per filter.

- The parameterization at the canvas size, with MaCo's fixed spectrum: of the sample photo's crops, or averaged
  over every offline photo (`spectrum: photos`, as Fel et al. 2023 average over natural images).
- `crops > 1` (MaCo): the picture is optimized on a canvas 1.5x larger than `size`, and at every step the
  network sees a few random crops of it, each resized to `size`; the result is the canvas's centre.
- The picture ids of `diversity`: picture k of filter f starts from the random draw of id f + k * COPY_STRIDE,
  so picture 0 is the one rendered without diversity.
- The transforms the network sees the picture through; `auto` picks them from the unit's receptive field
  (`transforms_for`).
- `photo_colour`: each filter's pictures start from a share of the mean colour of the photo crops that excite
  it most (`photo_colour_offset`) instead of grey.
- `init` (feature accentuation, Hamblin et al. 2024): every picture starts from the user's image, inverted to
  the parameters (`Parameterization.invert`); `start_params` does the same for one start image per filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from .quiet import tf

from . import metrics, params
from .errors import UserError
from .images import read_image
from .models import Extractor
from .receptive import receptive_field
from .settings import RenderSettings

__all__ = ["COPY_STRIDE", "TEXTURE_FIELD", "Start", "canvas_size", "make_param", "transforms_for",
           "photo_colour_offset", "picture_ids", "read_start", "start_params", "random_crops", "centre", "fade"]

COPY_STRIDE = 2**20  # more filters than any layer has; 64 pictures per filter stay below 2**31
TEXTURE_FIELD = 1 / 8  # `auto`: a unit that sees at most this share of the picture's side gets `texture`


def canvas_size(settings: RenderSettings) -> int:
    """The side of the optimized picture: `size`, or with random crops 1.5x `size` (an even margin)."""
    return settings.size if settings.crops == 1 else settings.size + 2 * round(settings.size / 4)


def make_param(
    settings: RenderSettings, channels: int, photos: metrics.NaturalPhotos, texture: bool = False
) -> params.Parameterization:
    """The settings' parameterization at the canvas size; for maco with the magnitude spectrum they ask for; with
    the spectrum decay `texture_decay` and the sigmoid's guard `texture_guard` instead of `decay` and `guard` where
    the transforms in use are `texture` (and they are set)."""
    canvas = canvas_size(settings)
    magnitude = None
    if settings.param == "maco":
        if settings.spectrum == "photos":  # every offline photo, several crops each (flips have the same magnitude)
            magnitude = params.natural_magnitude(metrics.photo_crops(canvas, channels, flips=False))
        elif canvas == settings.size:
            magnitude = photos.magnitude  # the sample photo's, shared with the metrics
        else:
            magnitude = params.natural_magnitude(metrics.natural_crops(canvas, channels))
    decay = settings.texture_decay if texture and settings.texture_decay is not None else settings.decay
    guard = settings.texture_guard if texture and settings.texture_guard is not None else settings.guard
    return params.Parameterization(settings.param, canvas, channels, decay=decay,
                                   contrast=settings.contrast, magnitude=magnitude, start_colour=settings.start_colour,
                                   guard=guard)


def transforms_for(settings: RenderSettings, extractor: Extractor) -> str:
    """The name of the transforms the network sees the pictures through: the settings', with `auto` resolved.
    `auto`: `texture` (a circular shift anywhere, then `wide`) for a unit whose receptive field spans at most
    TEXTURE_FIELD of the picture's side, which sees the picture as a texture, so that no part of it is tuned to
    the border; `wide` for the others, which need a middle to build one object in, and where the field cannot be
    worked out (a model without a layer graph, a layer that resamples)."""
    if settings.transforms != "auto":
        return settings.transforms
    try:
        field = receptive_field(extractor.model, extractor.model.layers[-1].name, settings.size)
        small = not field.whole and max(field.size) <= TEXTURE_FIELD * settings.size
    except UserError:
        small = False
    return "texture" if small else "wide"


def photo_colour_offset(
    param: params.Parameterization, photos: metrics.NaturalPhotos, model, filters: np.ndarray, share: float
) -> tf.Tensor:
    """Fourier parameters [len(filters), *shape] to add to each filter's random start so that its picture starts
    `share` of the way from grey to the mean colour of the 5 photo crops that excite it most (`model`: the unit
    the render maximizes). From grey, a layer's filters tend to drift to the one palette the network pulls grey
    towards (vgg16-hed's block4_conv3: blue-violet and white); from the photos' colours more keep their own
    (benchmarks/quality.py at share 0.5: palette spread 28 -> 32 at block4_conv3, but 28 -> 26 at block5_conv3,
    so no preset uses it; docs/quality.md)."""
    unit = 0.5 + share * (photos.favourite_colours(model, filters) / 255.0 - 0.5)
    unit = np.clip(unit, 1 / 512, 511 / 512)
    return param.mean_logits(tf.constant(np.log(unit / (1.0 - unit)), tf.float32))


def picture_ids(filters: np.ndarray, k: int) -> np.ndarray:
    """[len(filters) * k] int32: each filter's k picture ids, one filter after another."""
    f = np.asarray(filters, np.int64)[:, None] + COPY_STRIDE * np.arange(k)[None, :]
    return f.reshape(-1).astype(np.int32)


@dataclass(frozen=True)
class Start:
    """A start image inverted to the parameters: `params` [1, *shape], `offset` [1, H, W, C] or None (see
    Parameterization.invert) and the image itself in unit space, `unit` [1, H, W, C]."""

    params: tf.Tensor
    offset: tf.Tensor | None
    unit: tf.Tensor


def read_start(path: str, param: params.Parameterization) -> Start:
    """The image at `path` (resized to the canvas; UserError if it cannot be read) inverted to `param`."""
    grey = param.channels != 3
    arr = read_image(path, (param.size, param.size), channels=1 if grey else 3).astype(np.float32) / 255.0
    if grey:
        arr = np.repeat(arr[..., :1], param.channels, axis=2)
    p, offset = param.invert(arr)
    return Start(tf.constant(p[None]), None if offset is None else tf.constant(offset), tf.constant(arr[None]))


def start_params(param: params.Parameterization, images: np.ndarray) -> np.ndarray:
    """Parameters [N, *shape] that start each picture from one of `images` [N, h, w, C] (unit space, 0..1),
    resized to the canvas. Exact for `pixel` and `fourier`; `maco` keeps each image's phase (its magnitude is
    the fixed spectrum, so the start is the image's structure in the photos' contrast)."""
    x = np.asarray(images, np.float32)
    if x.shape[1:3] != (param.size, param.size):
        x = tf.image.resize(x, (param.size, param.size)).numpy()
    return np.stack([param.invert(one)[0] for one in x]).astype(np.float32)


def random_crops(images: tf.Tensor, n: int, size: int, seed: tf.Tensor) -> tf.Tensor:
    """n random square crops of every image [N, S, S, C], each 1/2 to all of the side at a random place, resized
    to `size`: [n * N, size, size, C], crop by crop (crop j of image i at j * N + i, so the groups of consecutive
    images that `diversity` compares stay together). One draw per crop serves the whole batch."""
    count = tf.shape(images)[0]
    u = tf.random.stateless_uniform([n, 3], tf.stack([seed[0], seed[1] * 7919 + 11]))
    side = 0.5 + 0.5 * u[:, 0]
    y0, x0 = u[:, 1] * (1.0 - side), u[:, 2] * (1.0 - side)
    boxes = tf.stack([y0, x0, y0 + side, x0 + side], axis=1)  # [n, 4], normalized
    boxes = tf.repeat(boxes, count, axis=0)
    index = tf.tile(tf.range(count), [n])
    return tf.image.crop_and_resize(images, boxes, index, [size, size], method="bilinear")


def centre(images: tf.Tensor, size: int) -> tf.Tensor:
    """The centre size x size of images [N, S, S, ...] (the picture of a larger canvas)."""
    m = (int(images.shape[1]) - size) // 2
    return images[:, m : m + size, m : m + size] if m else images


def fade(display: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 pictures [N, H, W, C] blended towards white where their transparency map `alpha` [N, H, W] (0..1)
    is low: how `show_alpha` shows MaCo's pictures, the parts that mattered to the filter standing out."""
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    return np.round(display.astype(np.float32) * a + 255.0 * (1.0 - a)).astype(np.uint8)
