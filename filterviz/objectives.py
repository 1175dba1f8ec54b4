"""What to maximize. Objectives are small composable values: `channel() - 0.05 * total_variation()`.

An objective maps a `Context` (the batch of images, their feature maps and each image's target filter) to
one score per image, shape [N]. The engine maximizes every image's own score; scores never mix across
images, so one batch renders many filters independently. Regularizers are objectives too: they return a
penalty (a positive number) that you subtract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import tensorflow as tf

__all__ = ["Context", "Objective", "channel", "channel_top", "others", "total_variation", "l2", "blur", "colourfulness",
           "colourfulness_of"]


@dataclass(frozen=True)
class Context:
    """What an objective sees: `images` in unit space [N,H,W,C] (0..1 is the valid range), the layer's
    `features` [N,h,w,F], each image's target `filters` [N] (int32), and `maps` [N,h,w], each image's own
    filter map.

    When every part of an objective is `own_filter_only`, the engine computes just `maps` (one filter per
    image, see models.ChannelHead) and `features` is None.
    """

    images: tf.Tensor
    features: tf.Tensor | None
    filters: tf.Tensor
    maps: tf.Tensor | None = None

    def own_maps(self) -> tf.Tensor:
        """[N,h,w]: each image's own filter map."""
        if self.maps is not None:
            return self.maps
        return tf.gather(self.features, self.filters, axis=3, batch_dims=1)


@dataclass(frozen=True)
class Objective:
    """A per-image score to maximize. Supports +, -, unary -, and * or / by a number."""

    fn: Callable[[Context], tf.Tensor]
    name: str
    own_filter_only: bool = False  # True: reads only images and Context.own_maps(), never other filters

    def __call__(self, ctx: Context) -> tf.Tensor:
        return self.fn(ctx)

    def __add__(self, other: Objective | float) -> Objective:
        if isinstance(other, (int, float)):
            return Objective(lambda c: self(c) + other, f"{self.name} + {other}", self.own_filter_only)
        return Objective(lambda c: self(c) + other(c), f"{self.name} + {other.name}",
                         self.own_filter_only and other.own_filter_only)

    __radd__ = __add__

    def __neg__(self) -> Objective:
        return Objective(lambda c: -self(c), f"-{self.name}", self.own_filter_only)

    def __sub__(self, other: Objective | float) -> Objective:
        return self + (-other)

    def __rsub__(self, other: float) -> Objective:
        return (-self) + other

    def __mul__(self, k: float) -> Objective:
        if not isinstance(k, (int, float)):
            return NotImplemented
        return Objective(lambda c: k * self(c), f"{k} * {self.name}", self.own_filter_only)

    __rmul__ = __mul__

    def __truediv__(self, k: float) -> Objective:
        return self * (1.0 / k)


def channel(border: int = 0) -> Objective:
    """The mean of each image's own filter map, leaving `border` feature-map pixels out on every side."""

    def fn(c: Context) -> tf.Tensor:
        maps = c.own_maps()  # [N, h, w]
        if border > 0:
            maps = maps[:, border:-border, border:-border]
        return tf.reduce_mean(tf.cast(maps, tf.float32), axis=[1, 2])

    return Objective(fn, f"channel(border={border})" if border else "channel", True)


def channel_top(share: float = 0.05) -> Objective:
    """The mean of the highest `share` of each image's own filter map: a filter that is negative everywhere
    gets a gradient towards making some places positive, where the mean over the whole map may never get there."""
    if not 0 < share <= 1:
        raise ValueError(f"channel_top share {share!r}: a number above 0, at most 1")

    def fn(c: Context) -> tf.Tensor:
        maps = tf.cast(c.own_maps(), tf.float32)
        flat = tf.reshape(maps, [tf.shape(maps)[0], -1])
        k = max(1, int(round(share * int(maps.shape[1]) * int(maps.shape[2]))))
        return tf.reduce_mean(tf.math.top_k(flat, k=k).values, axis=1)

    return Objective(fn, f"channel_top({share:g})", True)


def others(natural: Sequence[float]) -> Objective:
    """How much the image excites the layer's other filters, each relative to its usual level: the mean over
    all filters c of mean(relu(map_c)) / natural[c], times natural[own] so it is in the units of the own filter's
    activation. `natural[c]` is filter c's mean response to natural photos. A penalty (subtract it): with it the
    picture shows what is special to its filter rather than what excites the whole layer."""
    scale = tf.constant(list(natural), tf.float32)

    def fn(c: Context) -> tf.Tensor:
        means = tf.reduce_mean(tf.nn.relu(tf.cast(c.features, tf.float32)), axis=[1, 2])  # [N, F]
        return tf.reduce_mean(means / scale, axis=1) * tf.gather(scale, c.filters)

    return Objective(fn, "others")


def total_variation() -> Objective:
    """Mean absolute difference between neighbouring pixels: a penalty on noise (subtract it)."""

    def fn(c: Context) -> tf.Tensor:
        x = c.images
        dy = tf.abs(x[:, 1:, :, :] - x[:, :-1, :, :])
        dx = tf.abs(x[:, :, 1:, :] - x[:, :, :-1, :])
        return tf.reduce_mean(dy, axis=[1, 2, 3]) + tf.reduce_mean(dx, axis=[1, 2, 3])

    return Objective(fn, "tv", True)


def l2(center: float = 0.5) -> Objective:
    """Mean squared distance of the pixels from mid-grey: a decay penalty (subtract it)."""
    return Objective(lambda c: tf.reduce_mean(tf.square(c.images - center), axis=[1, 2, 3]), "l2", True)


def blur() -> Objective:
    """Mean squared difference between the image and its 3x3 box blur: a high-frequency penalty (subtract it)."""

    def fn(c: Context) -> tf.Tensor:
        blurred = tf.nn.avg_pool2d(c.images, 3, 1, "SAME")
        return tf.reduce_mean(tf.square(c.images - blurred), axis=[1, 2, 3])

    return Objective(fn, "blur", True)


def colourfulness_of(images: tf.Tensor) -> tf.Tensor:
    """Hasler and Suesstrunk's (2003) colourfulness of images in unit space [N,H,W,C] (0..1), on their 0-255
    scale: [N]; 0 for grey (single-channel) images. The one definition, shared by the penalty below and by
    `filterviz.metrics`."""
    if images.shape[-1] != 3:  # grey pictures have no colour
        return tf.zeros(tf.shape(images)[:1])
    x = 255.0 * tf.cast(images, tf.float32)
    rg = x[..., 0] - x[..., 1]
    yb = 0.5 * (x[..., 0] + x[..., 1]) - x[..., 2]
    mean_rg, var_rg = tf.nn.moments(rg, axes=[1, 2])
    mean_yb, var_yb = tf.nn.moments(yb, axes=[1, 2])

    def sqrt(v: tf.Tensor) -> tf.Tensor:  # exactly 0 at 0, with a finite gradient there (a grey or flat picture)
        positive = v > 0
        return tf.where(positive, tf.sqrt(tf.where(positive, v, 1.0)), 0.0)

    return sqrt(var_rg + var_yb) + 0.3 * sqrt(mean_rg**2 + mean_yb**2)


def colourfulness(limit: float = 60.0) -> Objective:
    """How far the picture's colourfulness (`colourfulness_of`, as in filterviz.metrics) exceeds `limit`, and 0
    below it: a penalty (subtract it) that keeps colours within the range of photographs (about 35-90) instead
    of saturated rainbows, and leaves greyer pictures alone."""
    return Objective(lambda c: tf.nn.relu(colourfulness_of(c.images) - limit), f"colourfulness({limit:g})", True)
