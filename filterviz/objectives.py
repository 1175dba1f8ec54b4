"""What to maximize. Objectives are small composable values: `channel() - 0.05 * total_variation()`.

An objective maps a `Context` (the batch of images, their feature maps and each image's target filter) to
one score per image, shape [N]. The engine maximizes every image's own score; scores never mix across
images, so one batch renders many filters independently. Regularizers are objectives too: they return a
penalty (a positive number) that you subtract.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .quiet import tf

from .settings import RenderSettings

__all__ = ["Context", "Objective", "channel", "channel_top", "channel_fired", "neuron", "diversity", "others",
           "total_variation", "l2", "blur", "colourfulness", "colourfulness_of", "build_objective"]


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


def channel_fired(border: int = 0, share: float = 0.05, top: float = 0.1) -> Objective:
    """The mean of each image's own filter map after a ReLU (what the filter passes on where it fires), plus
    `top` x the mean of the map's highest `share` (channel_top, before the ReLU): a filter negative everywhere
    has no ReLU gradient, and the top term lifts its strongest places above zero first. `border` feature-map
    pixels are left out on every side. Maximizing the plain mean can raise a map everywhere and leave it below
    zero, so the filter never fires on its picture."""
    if not 0 < share <= 1:
        raise ValueError(f"channel_fired share {share!r}: a number above 0, at most 1")

    def fn(c: Context) -> tf.Tensor:
        maps = tf.cast(c.own_maps(), tf.float32)
        if border > 0:
            maps = maps[:, border:-border, border:-border]
        fired = tf.reduce_mean(tf.nn.relu(maps), axis=[1, 2])
        flat = tf.reshape(maps, [tf.shape(maps)[0], -1])
        k = max(1, int(round(share * int(maps.shape[1]) * int(maps.shape[2]))))
        return fired + top * tf.reduce_mean(tf.math.top_k(flat, k=k).values, axis=1)

    return Objective(fn, f"channel_fired(border={border}, share={share:g}, top={top:g})", True)


def neuron() -> Objective:
    """The centre unit (h//2, w//2) of each image's own filter map: what one unit, whose receptive field is the
    middle of the picture, responds to most (Lucid's `neuron`), rather than the filter anywhere."""

    def fn(c: Context) -> tf.Tensor:
        maps = c.own_maps()
        return tf.cast(maps[:, int(maps.shape[1]) // 2, int(maps.shape[2]) // 2], tf.float32)

    return Objective(fn, "neuron", True)


def diversity(group: int, gram: bool = True, relative_to: Objective | None = None) -> Objective:
    """How alike the images of each group of `group` consecutive images are (the batch holds `group` pictures
    per filter, one after another): each image's mean cosine similarity to the others of its group, of the
    layer's gram matrices (what features occur together, not where; `gram=False`: the flattened activations).
    A penalty (subtract it): Lucid's `diversity` objective, which makes the pictures of one filter differ.
    0 for groups of one. With `relative_to`, the similarity is scaled by that objective's mean size over the
    group (held constant), so one weight suits layers whose activations differ by orders of magnitude."""
    if group < 1:
        raise ValueError(f"diversity group {group!r}: a positive integer")

    def fn(c: Context) -> tf.Tensor:
        x = tf.cast(c.features, tf.float32)  # [N, h, w, F]
        n = tf.shape(x)[0]
        if gram:
            flat = tf.reshape(x, [n, -1, int(x.shape[3])])
            x = tf.matmul(flat, flat, transpose_a=True)  # [N, F, F]
        v = tf.math.l2_normalize(tf.reshape(x, [n // group, group, -1]), axis=2)
        sims = tf.matmul(v, v, transpose_b=True)  # [G, group, group]
        others = (tf.reduce_sum(sims, axis=2) - tf.linalg.diag_part(sims)) / max(1, group - 1)
        if relative_to is not None:
            size = tf.reduce_mean(tf.abs(tf.reshape(relative_to(c), [n // group, group])), axis=1, keepdims=True)
            others = others * tf.stop_gradient(size + 1e-6)
        return tf.reshape(others, [n])

    return Objective(fn, f"diversity({group})")


def build_objective(settings: RenderSettings, natural: Sequence[float] | None = None) -> Objective:
    """The settings' objective: the filter's mean activation minus the weighted regularizers and, with
    `specificity`, minus that weight times the other filters' activations relative to `natural` (each filter's
    mean response to natural photos, see metrics.natural_means). `negative`: minus the map's mean instead (what the
    filter is most against); `diversity` K > 1: minus the weighted similarity of each filter's K pictures."""
    if settings.negative:
        obj = -channel(settings.border)
    elif settings.objective == "fired":
        obj = channel_fired(settings.border)
    elif settings.objective == "top":
        obj = channel_top(0.05)
    elif settings.objective == "neuron":
        obj = neuron()
    else:
        obj = channel(settings.border)
    if settings.diversity > 1 and settings.diversity_weight:
        obj = obj - settings.diversity_weight * diversity(settings.diversity, relative_to=obj)
    for weight, reg in ((settings.tv, total_variation), (settings.l2, l2),
                        (settings.blur, blur)):
        if weight:
            obj = obj - weight * reg()
    if settings.colour:
        obj = obj - settings.colour * colourfulness(settings.colour_limit)
    if settings.specificity:
        if natural is None:
            raise ValueError("build_objective: specificity needs the filters' natural means")
        obj = obj - settings.specificity * others(natural)
    return obj
