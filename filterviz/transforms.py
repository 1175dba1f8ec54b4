"""Random, differentiable image transforms for transformation robustness (Olah et al. 2017).

Pure TensorFlow and traceable: each transform is drawn afresh at every step inside the compiled loop from
a stateless seed [2] (int32), so a run is deterministic. One draw serves the whole batch, which keeps a
batched run identical to rendering its filters one at a time. pad grows the image and jitter crops it; roll, scale
and rotate keep its size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .quiet import tf

__all__ = ["Transform", "pad", "jitter", "roll", "random_scale", "zoomed", "zoom_index",
           "random_rotate", "compose", "standard", "wide", "texture", "lucid", "named"]


@dataclass(frozen=True)
class Transform:
    """images [N,H,W,C], seed int32[2] -> images [N,H,W,C]."""

    fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
    name: str

    def __call__(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return self.fn(images, seed)


def _sub(seed: tf.Tensor, k: int) -> tf.Tensor:
    """A distinct seed for the k-th random draw of a step."""
    return tf.stack([seed[0], seed[1] * 7919 + k])


def pad(n: int, value: float = 0.5, mode: str = "constant") -> Transform:
    """Grow the image by n pixels on every side: of `value` (mode 'constant', so its edges are not special), or
    mirrored from the image (mode 'reflect', so that pad then jitter(2n) is a shift that keeps the size)."""
    if mode not in ("constant", "reflect"):
        raise ValueError(f"pad mode {mode!r}: valid: constant, reflect")

    def fn(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if n <= 0:
            return x
        paddings = [[0, 0], [n, n], [n, n], [0, 0]]
        if mode == "reflect":
            return tf.pad(x, paddings, mode="REFLECT")
        return tf.pad(x, paddings, constant_values=value)

    return Transform(fn, f"pad({n})" if mode == "constant" else f"pad({n}, reflect)")


def jitter(d: int) -> Transform:
    """Crop d pixels less in each dimension, at a random offset: a shift of up to d pixels."""

    def fn(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if d <= 0:
            return x
        off = tf.random.stateless_uniform([2], _sub(seed, 1), 0, d + 1, dtype=tf.int32)
        h, w = x.shape[1], x.shape[2]
        size = tf.stack([h - d, w - d]) if h is not None and w is not None else tf.shape(x)[1:3] - d
        return tf.slice(x, tf.stack([0, off[0], off[1], 0]), tf.stack([-1, size[0], size[1], -1]))

    return Transform(fn, f"jitter({d})")


def roll(d: int) -> Transform:
    """A circular shift of up to d pixels each way: the picture on a torus (as a Fourier picture is). Nothing is
    resampled, mirrored or lost, and with d = size/2 any pixel can come to the middle or to the edge."""

    def fn(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if d <= 0:
            return x
        off = tf.random.stateless_uniform([2], _sub(seed, 4), -d, d + 1, dtype=tf.int32)
        return tf.roll(x, shift=off, axis=[1, 2])

    return Transform(fn, f"roll({d})")


def _affine(x: tf.Tensor, scale: tf.Tensor, angle: tf.Tensor) -> tf.Tensor:
    """Scale and rotate about the centre, bilinear, reflecting at the edges; differentiable in x."""
    h = tf.cast(tf.shape(x)[1], tf.float32)
    w = tf.cast(tf.shape(x)[2], tf.float32)
    cy, cx = (h - 1.0) / 2.0, (w - 1.0) / 2.0
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # Output pixel (x', y') samples input at A @ (x'-c) + c, with A the inverse of scale*rotation.
    a0, a1, b0, b1 = cos, sin, -sin, cos
    a2 = cx - a0 * cx - a1 * cy
    b2 = cy - b0 * cx - b1 * cy
    t = tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0])
    t = tf.tile(t[None], [tf.shape(x)[0], 1])
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=t, output_shape=tf.shape(x)[1:3], interpolation="BILINEAR",
        fill_mode="REFLECT", fill_value=0.0,
    )


def zoom_index(n: int, seed: tf.Tensor) -> tf.Tensor:
    """Which of n zoom factors this step uses (one draw for the batch)."""
    return tf.random.stateless_uniform([], _sub(seed, 2), 0, n, dtype=tf.int32)


def random_scale(scales: Sequence[float]) -> Transform:
    """Zoom by a factor drawn uniformly from `scales`."""
    table = tf.constant(list(scales), tf.float32)

    def fn(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return _affine(x, table[zoom_index(len(scales), seed)], tf.constant(0.0))

    return Transform(fn, f"scale({list(scales)})")


def zoomed(x: tf.Tensor, scale: float) -> tf.Tensor:
    """Zoom about the centre by resizing the whole picture with a Lanczos-3 kernel, then cropping its middle
    (zoom in) or mirroring its edge out (zoom out) back to the size. Needs a static height and width.

    Band-limited: a 5% zoom moves a grating's frequency by 5% and keeps its contrast, where `random_scale`'s
    bilinear sampling at fractional offsets is also a blur (a grating of period 4 loses about a fifth of its
    contrast). For measuring how a picture survives a zoom (metrics.quality_metrics), where that blur would be
    counted as the picture's fault; not for the loop (no rotation, and the loop's transforms need no static
    size)."""
    h, w = x.shape[1], x.shape[2]
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) == (h, w):
        return x
    y = tf.image.resize(x, [nh, nw], method="lanczos3", antialias=scale < 1.0)
    if nh >= h and nw >= w:
        top, left = (nh - h) // 2, (nw - w) // 2
        return y[:, top : top + h, left : left + w]
    ph, pw = h - nh, w - nw
    return tf.pad(y, [[0, 0], [ph // 2, ph - ph // 2], [pw // 2, pw - pw // 2], [0, 0]], mode="REFLECT")


def random_rotate(degrees: float) -> Transform:
    """Rotate by an angle drawn uniformly from [-degrees, degrees]."""

    def fn(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        angle = tf.random.stateless_uniform([], _sub(seed, 3), -degrees, degrees) * (math.pi / 180.0)
        return _affine(x, tf.constant(1.0), angle)

    return Transform(fn, f"rotate({degrees})")


def compose(*transforms: Transform) -> Transform:
    """Apply the transforms in order."""

    def fn(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        for t in transforms:
            x = t(x, seed)
        return x

    return Transform(fn, " > ".join(t.name for t in transforms) or "identity")


_ZOOM = (0.8, 1.2)  # the default zoom range of `standard` and `wide`


def standard(size: int, shift: float = 1 / 16, zoom: tuple[float, float] = _ZOOM) -> Transform:
    """filterviz's recipe, scaled to the image size: a shift of up to shift x size pixels (default size/16) with
    the edge mirrored in, a zoom in steps of 0.05 over `zoom` (default 0.8-1.2) and a rotation of up to 10
    degrees; the size is kept. Unlike Lucid's recipe (`lucid`) it never shows the network a grey border, which
    made the pictures markedly more robust to shifts and zooms, also to ones it was not trained on (README,
    "Presets")."""
    k = max(1, round(size * shift))
    lo, hi = zoom
    return compose(
        pad(k, mode="reflect"),
        jitter(2 * k),
        random_scale([round(lo + 0.05 * i, 4) for i in range(round((hi - lo) / 0.05) + 1)]),
        random_rotate(10.0),
    )


def wide(size: int, zoom: tuple[float, float] = _ZOOM) -> Transform:
    """`standard` with twice its shift, up to size/8 pixels, the width of the ring metrics.edge_score compares with
    the middle: the picture's outer ring spends more steps away from the network's border, so fewer pictures get
    a frame or vignette tuned to it (benchmarks/quality.py: edge 0.39 -> 0.13 at block3_conv3)."""
    return standard(size, shift=1 / 8, zoom=zoom)


def texture(size: int) -> Transform:
    """A circular shift anywhere (`roll(size/2)`), then `wide` with zooms of 0.6-1.5: no place of the picture is
    privileged, so every pixel spends as many steps at the network's border as in its middle and none is tuned to
    it (no frame, no vignette); the picture becomes a seamless texture. For units that see a small part of the
    picture, whose pictures are textures anyway (benchmarks/quality.py at block1_conv2: edge 0.37 -> 0.16); a unit
    that sees most of the picture needs a middle to build its one object in, and gets `wide`
    (canvas.transforms_for). The wider zoom makes the pattern work at more scales than one: block2_conv2's
    pictures kept 0.906 of their activation under the metrics' zooms with 0.8-1.2, 0.956 with 0.6-1.5."""
    return compose(roll(size // 2), wide(size, zoom=(0.6, 1.5)))


def lucid(size: int) -> Transform:
    """Lucid's recipe (Olah et al. 2017) scaled to the image size: pad with grey, jitter, scale 0.9-1.1, rotate
    up to 10 degrees, jitter. The image grows by about size/8 pixels."""
    k = max(1, round(size / 128 * 8))
    return compose(
        pad(k * 2),
        jitter(k),
        random_scale([1 + (i - 5) / 50.0 for i in range(11)]),
        random_rotate(10.0),
        jitter(max(1, k // 2)),
    )


_NAMED = {"standard": standard, "wide": wide, "texture": texture, "lucid": lucid}


def named(name: str, size: int) -> Transform:
    """The transforms a RenderSettings.transforms name stands for, at `size` ('none': the identity). 'auto' is
    resolved by the engine first (texture or wide, from the unit's receptive field)."""
    if name == "none":
        return compose()
    if name not in _NAMED:
        raise ValueError(f"transforms {name!r}: valid: none, {', '.join(_NAMED)}")
    return _NAMED[name](size)
