"""Image parameterizations: what the optimizer updates, and how an image in unit space (0..1) is derived.

`pixel` optimizes pixels directly (the Keras example). `fourier` optimizes a spectrum scaled by
1/frequency with decorrelated colours and a sigmoid to the valid range (Olah et al. 2017), which gives
far less high-frequency noise for the same number of steps. `maco` optimizes only the phase of the spectrum
and keeps its magnitude fixed to that of natural photos, per decorrelated colour channel (Fel et al. 2023,
"MAgnitude Constrained Optimization"): the picture keeps a photograph's spectrum and colour balance, and the
optimizer chooses only where its structures lie. All start from a random draw seeded by
(seed, filter index), so a filter's picture does not depend on which batch it was rendered in. `fourier` starts grey
unless `start_colour` gives each filter a random mean colour of its own (seeded the same way), so that filters
indifferent to colour do not all drift to the one palette the network pulls a grey start towards.
`guard` > 0 pulls logits more than `guard` from their picture's mean back towards it (see `guarded_sigmoid`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from .quiet import tf

__all__ = ["Parameterization", "pixel", "fourier", "maco", "natural_magnitude", "guarded_sigmoid",
           "COLOR_CORRELATION_SVD_SQRT"]

# The square root of ImageNet's colour covariance (from Lucid), normalized to unit max column norm.
COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype="float32"
)
_COLOR = COLOR_CORRELATION_SVD_SQRT / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))


def guarded_sigmoid(limit: float) -> Callable[[tf.Tensor], tf.Tensor]:
    """The sigmoid, whose gradient also pulls each logit that lies more than `limit` from its picture's mean logit
    (per channel) back towards it, by the excess, times the RMS of the picture's own logit gradient (so the pull
    is in the objective's units at any layer; pictures are independent). That is the gradient of a penalty
    (RMS/2) x excess^2, added past the sigmoid. Without it a region the first steps drive to black or white has no
    gradient left (the sigmoid's vanishes there, and a filter that does not fire there passes none back) and
    stays a blob; with it the region comes back to where the objective can act on it. Measured from the mean, not
    from 0, so that a picture that is all one saturated colour (a unit that wants pure white, or pure green) can
    reach it: only regions far from the rest of their picture are pulled. The picture itself (the forward pass) is
    the plain sigmoid.

    Its own small tf.function: traced inside a caller's graph, tf.custom_gradient registers a gradient function in
    TensorFlow's global registry that holds that graph's tensors for good, so every traced ascent loop (a whole
    network's graph) stayed in memory, about 24 MB per layer in a sweep (tests/test_memory.py); traced in its own
    graph it keeps only that graph, a few operations."""

    @tf.function(autograph=False)
    @tf.custom_gradient
    def fn(z: tf.Tensor) -> tuple[tf.Tensor, Callable]:
        y = tf.sigmoid(z)

        def grad(dy: tf.Tensor) -> tf.Tensor:
            gz = dy * y * (1.0 - y)
            axes = list(range(1, len(z.shape)))
            rms = tf.sqrt(tf.reduce_mean(tf.square(gz), axis=axes, keepdims=True))
            d = z - tf.reduce_mean(z, axis=axes[:-1], keepdims=True)  # from the mean of each picture's channel
            excess = tf.nn.relu(tf.abs(d) - limit) * tf.sign(d)
            excess -= tf.reduce_mean(excess, axis=axes[:-1], keepdims=True)  # the mean moves with every logit
            return gz - rms * excess

        return y, grad

    return fn


def _seeded_normal(shape: list[int], filters: tf.Tensor, seed: int, scale: float) -> tf.Tensor:
    """One stateless normal draw per filter index: [N] + shape."""

    def one(f: tf.Tensor) -> tf.Tensor:
        return tf.random.stateless_normal(shape, tf.stack([tf.constant(seed, tf.int32), f]), stddev=scale)

    return tf.map_fn(one, filters, fn_output_signature=tf.TensorSpec(shape, tf.float32))


@dataclass(frozen=True)
class Parameterization:
    """How images are parameterized. `shape` is the per-image parameter shape."""

    kind: str
    size: int
    channels: int
    decorrelate: bool = True
    decay: float = 1.0
    magnitude: np.ndarray | None = field(default=None, compare=False, repr=False)  # maco: [C, size, size//2+1]
    contrast: float = 2.0  # maco: the standard deviation of the picture before the sigmoid
    start_colour: float = 0.0  # fourier: the std of each RGB channel's mean logit at the start (0: a grey start)
    guard: float = 0.0  # fourier and maco: logits beyond mean +-guard are pulled back (guarded_sigmoid; 0: off)

    def __post_init__(self) -> None:
        if self.kind == "maco":
            want = (self.channels, self.size, self.size // 2 + 1)
            if self.magnitude is None or tuple(self.magnitude.shape) != want:
                raise ValueError(f"maco needs a magnitude spectrum of shape {want} (see natural_magnitude)")

    @property
    def shape(self) -> list[int]:
        if self.kind == "pixel":
            return [self.size, self.size, self.channels]
        if self.kind == "maco":  # the phase only
            return [self.channels, self.size, self.size // 2 + 1]
        return [2, self.channels, self.size, self.size // 2 + 1]

    def init(self, filters: tf.Tensor, seed: int) -> tf.Tensor:
        """Initial parameters for a batch of filters (int32 [N])."""
        if self.kind == "pixel":
            return 0.5 + _seeded_normal(self.shape, filters, seed, 0.05)
        if self.kind == "maco":
            return _seeded_normal(self.shape, filters, seed, 1.0)
        p = _seeded_normal(self.shape, filters, seed, 0.01)
        return p if self.start_colour == 0 else p + self._start_colour(filters, seed)

    def _start_colour(self, filters: tf.Tensor, seed: int) -> tf.Tensor:
        """[N, *shape]: a `mean_logits` offset that gives filter f's picture a mean logit per RGB channel drawn
        from N(0, start_colour^2) (seeded by (seed, f) apart from the rest of the draw), so that each filter
        starts from a colour of its own instead of grey, the same in any batch."""

        def one(f: tf.Tensor) -> tf.Tensor:  # filter by filter, so a batch gives each filter's draw bit for bit
            key = tf.random.experimental.stateless_fold_in(tf.stack([tf.constant(seed, tf.int32), f]), 1)
            return tf.random.stateless_normal([self.channels], key, stddev=self.start_colour)

        return self.mean_logits(tf.map_fn(one, filters, fn_output_signature=tf.TensorSpec([self.channels], tf.float32)))

    def mean_logits(self, logits: tf.Tensor) -> tf.Tensor:
        """Fourier parameters [N, *shape] that are zero but for the real DC term of each colour channel: added to
        a picture's parameters, they add `logits` [N, C] to its logit in every pixel (its mean colour before the
        sigmoid)."""
        mix = np.linalg.inv(_COLOR) if self.decorrelate and self.channels == 3 else np.eye(self.channels)
        mix = mix / (self._scale()[0, 0] / (4.0 * self.size * self.size))  # irfft2d's DC: value / (H*W), then / 4
        dc = tf.linalg.matvec(tf.constant(mix, tf.float32), tf.cast(logits, tf.float32))  # logits = _COLOR @ dec
        spot = np.zeros(self.shape, np.float32)
        spot[0, :, 0, 0] = 1.0
        return dc[:, None, :, None, None] * tf.constant(spot)

    def to_image(self, p: tf.Tensor, offset: tf.Tensor | None = None) -> tf.Tensor:
        """Parameters [N, ...] -> images in unit space [N, H, W, C]. `offset` (from `invert`, [1 or N, H, W, C])
        is added before the sigmoid (to the pixels for `pixel`): what the parameters cannot represent of a
        start image."""
        if self.kind == "pixel":
            return p if offset is None else p + offset
        logits = self._logits(p)
        squash = guarded_sigmoid(self.guard) if self.guard > 0 else tf.sigmoid
        return squash(logits if offset is None else logits + offset)

    def _logits(self, p: tf.Tensor) -> tf.Tensor:
        """The image before the sigmoid (fourier and maco): [N, H, W, C]."""
        if self.kind == "maco":
            mag = tf.constant(self.magnitude, tf.float32)
            spectrum = tf.complex(mag * tf.cos(p), mag * tf.sin(p))
            img = tf.signal.irfft2d(spectrum, fft_length=[self.size, self.size])  # [N, C, H, W]
            mean, var = tf.nn.moments(img, axes=[1, 2, 3], keepdims=True)
            img = tf.transpose((img - mean) * (self.contrast / tf.sqrt(var + 1e-8)), [0, 2, 3, 1])  # standardized
        else:
            spectrum = tf.complex(p[:, 0], p[:, 1]) * tf.cast(self._scale(), tf.complex64)
            img = tf.signal.irfft2d(spectrum, fft_length=[self.size, self.size])  # [N, C, H, W]
            img = tf.transpose(img, [0, 2, 3, 1]) / 4.0
        if self.decorrelate and self.channels == 3:
            img = tf.einsum("nhwc,dc->nhwd", img, tf.constant(_COLOR))
        return img

    def invert(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The parameters [*shape] whose picture is `image` (unit space [H, W, C], 0..1), and the offset
        [1, H, W, C] for `to_image` that makes up what they cannot represent (None where nothing is left):
        `pixel` and `fourier` invert exactly (up to clipping the image to 1/512..511/512 for the sigmoid);
        `maco`'s magnitude is fixed, so it takes the image's phase and the rest goes into the offset."""
        x = np.asarray(image, np.float64)
        if self.kind == "pixel":
            return x.astype(np.float32), None
        x = np.clip(x, 1 / 512, 511 / 512)
        logits = np.log(x / (1 - x))
        dec = logits @ np.linalg.inv(_COLOR).T if self.decorrelate and self.channels == 3 else logits
        spectrum = np.fft.rfft2(np.moveaxis(dec, 2, 0), axes=(1, 2))  # [C, H, W//2+1]
        if self.kind == "fourier":
            spectrum = spectrum * 4.0 / self._scale()
            return np.stack([spectrum.real, spectrum.imag]).astype(np.float32), None
        phase = np.angle(spectrum).astype(np.float32)
        rest = logits[None] - self._logits(tf.constant(phase[None])).numpy()
        return phase, rest.astype(np.float32)

    def _scale(self) -> np.ndarray:
        fy = np.fft.fftfreq(self.size)[:, None]
        fx = np.fft.rfftfreq(self.size)[None, :]
        freqs = np.sqrt(fx * fx + fy * fy)
        scale = 1.0 / np.maximum(freqs, 1.0 / self.size) ** self.decay
        return (scale * self.size).astype("float32")  # sqrt(h*w) for a square image


def natural_magnitude(photos: np.ndarray, decorrelate: bool = True) -> np.ndarray:
    """The mean magnitude spectrum [C, H, W//2+1] of photos [N, H, W, C] (0-255), in the decorrelated colour
    basis that `to_image` maps back from (for 3 channels), for the `maco` parameterization."""
    x = photos.astype(np.float64) / 255.0
    x = x - x.mean(axis=(1, 2, 3), keepdims=True)
    if decorrelate and x.shape[-1] == 3:
        x = x @ np.linalg.inv(_COLOR).T  # rgb = C @ d  ->  d = C^-1 @ rgb
    spectrum = np.fft.rfft2(np.moveaxis(x, 3, 1), axes=(2, 3))  # [N, C, H, W//2+1]
    return np.abs(spectrum).mean(axis=0).astype(np.float32)


def maco(size: int, magnitude: np.ndarray, channels: int = 3, contrast: float = 2.0) -> Parameterization:
    return Parameterization("maco", size, channels, magnitude=magnitude, contrast=contrast)


def pixel(size: int, channels: int = 3) -> Parameterization:
    return Parameterization("pixel", size, channels)


def fourier(size: int, channels: int = 3, decorrelate: bool = True, decay: float = 1.0,
            start_colour: float = 0.0, guard: float = 0.0) -> Parameterization:
    return Parameterization("fourier", size, channels, decorrelate, decay, start_colour=start_colour, guard=guard)
