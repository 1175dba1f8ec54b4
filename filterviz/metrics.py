"""Per-filter quality metrics, computed on the displayed picture (what the user actually sees).

- `activation`: mean post-activation of the filter's map; `dead` when it is <= 0.
- `specificity_rank`: 1 = best. Every channel's activation on the picture is divided by that channel's mean
  activation on natural photos (crops of matplotlib's sample photo `grace_hopper.jpg`); the rank is the
  target filter's place among all channels of the layer. A picture that excites its own filter far more than
  natural images do, and far more than it excites other filters, ranks 1.
- `robustness`: the share of the activation kept under a small random shift (up to size/32 px each way, the
  edge mirrored in, no resampling) and zoom (0.9-1.1, bilinear), averaged over `draws` transforms. 1.0 means
  the feature survives small shifts and zooms. For scale: crops of the sample photo keep about 0.96 of each
  filter's activation in vgg16-hed block3_conv1 (zooming in by 1.1 blurs, and costs natural photos too).
- `hf_share`: the share of the picture's spectral energy (mean removed, summed over channels) above half the
  Nyquist frequency (radial frequency > 0.25 cycles/pixel). High values mean checkerboard-like noise.
- `colourfulness`: Hasler and Suesstrunk's (2003) colourfulness of the displayed RGB picture (0 for grey; they
  rate about 15 "slightly", 33 "moderately", 45 "averagely", 59 "quite", 82 "highly" colourful). The crops of
  the sample photo (a navy uniform before a flag) score 36-90, median about 75 at 128 px; saturated
  magenta-and-green pictures score well over 100.
"""

from __future__ import annotations

import importlib.util
import os

import keras
import numpy as np
import tensorflow as tf

from . import objectives, transforms
from .models import Extractor

__all__ = ["sample_photo_path", "natural_crops", "natural_means", "hf_share", "colourfulness", "quality_metrics"]


def sample_photo_path() -> str:
    """Path of matplotlib's bundled sample photo, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    root = spec.submodule_search_locations[0]
    return os.path.join(root, "mpl-data", "sample_data", "grace_hopper.jpg")


def natural_crops(size: int, channels: int = 3, n_side: int = 3) -> np.ndarray:
    """n_side x n_side crops of the sample photo (each half its shorter side), resized to `size`, 0-255: RGB for 3
    channels, grey for 1, and grey repeated in every channel for other counts (so any model can take them)."""
    from PIL import Image

    with Image.open(sample_photo_path()) as im:
        photo = im.convert("RGB" if channels == 3 else "L")
    w, h = photo.size
    side = min(w, h) // 2
    crops = []
    for i in range(n_side):
        for j in range(n_side):
            x = round(j * (w - side) / max(1, n_side - 1))
            y = round(i * (h - side) / max(1, n_side - 1))
            crop = photo.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR)
            arr = np.asarray(crop, dtype=np.float32)
            crops.append(arr if arr.ndim == 3 else np.repeat(arr[..., None], channels, axis=2))
    return np.stack(crops)


def hf_share(display: np.ndarray, cutoff: float = 0.25) -> np.ndarray:
    """Share of spectral energy above `cutoff` cycles/pixel, per uint8 image [N,H,W,C]."""
    x = display.astype(np.float64) / 255.0
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(x, axes=(1, 2))) ** 2
    fy = np.fft.fftfreq(x.shape[1])[:, None]
    fx = np.fft.fftfreq(x.shape[2])[None, :]
    high = (np.sqrt(fx * fx + fy * fy) > cutoff)[None, :, :, None]
    total = power.sum(axis=(1, 2, 3))
    return np.where(total > 0, (power * high).sum(axis=(1, 2, 3)) / np.maximum(total, 1e-12), 0.0)


def colourfulness(display: np.ndarray) -> np.ndarray:
    """Hasler-Suesstrunk colourfulness per uint8 image [N,H,W,C] (0-255 scale); 0 for single-channel images.
    The same formula as the penalty objective (objectives.colourfulness_of)."""
    return objectives.colourfulness_of(tf.constant(display.astype(np.float32) / 255.0)).numpy().astype(np.float64)


def _channel_means(model: keras.Model, images: np.ndarray, batch: int, relu: bool = False) -> np.ndarray:
    """Mean activation of every channel (of its positive part with `relu`), per image: [N, C]."""
    out = []
    for s in range(0, len(images), batch):
        y = tf.cast(model(tf.constant(images[s : s + batch]), training=False), tf.float32)
        out.append(tf.reduce_mean(tf.nn.relu(y) if relu else y, axis=[1, 2]).numpy())
    return np.concatenate(out)


def natural_means(
    model: keras.Model, size: int, channels: int = 3, *, batch: int = 16, relu: bool = False, floor: float = 1e-3
) -> np.ndarray:
    """Every channel's mean response to the sample photo's crops at `size` [C] (of its positive part with
    `relu`, for a pre-activation extractor), floored at `floor` x the largest so that channels silent on photos
    do not divide by zero."""
    means = _channel_means(model, natural_crops(size, channels), batch, relu).mean(axis=0)
    return np.maximum(means, floor * max(float(means.max()), 1e-6))


def quality_metrics(
    post: Extractor,
    shown: np.ndarray,
    display: np.ndarray,
    filters: np.ndarray,
    *,
    batch: int = 16,
    draws: int = 4,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """activation, dead, specificity_rank, robustness, hf_share and colourfulness for each picture (see module docstring).

    `post` extracts the layer's post-activation output; `shown` are the displayed pictures in model-input space.
    """
    size, channels = shown.shape[1], shown.shape[3]
    acts = _channel_means(post.model, shown, batch)  # [N, C]
    own = acts[np.arange(len(filters)), filters]
    scale = natural_means(post.model, size, channels, batch=batch)
    rel = acts / scale[None, :]
    rank = 1 + (rel > rel[np.arange(len(filters)), filters][:, None]).sum(axis=1)

    d = max(1, size // 32)
    # a shift of up to d pixels each way (mirrored in at the edge, no resampling), then a zoom; the size is kept
    t = transforms.compose(
        transforms.pad(d, mode="reflect"), transforms.jitter(2 * d),
        transforms.random_scale([0.9, 0.95, 1.0, 1.05, 1.1]),
    )
    kept = np.zeros(len(filters))
    for k in range(draws):
        moved = np.concatenate([
            t(tf.constant(shown[s : s + batch]), tf.constant([seed, 1000 + k])).numpy()
            for s in range(0, len(shown), batch)
        ])
        after = _channel_means(post.model, moved, batch)[np.arange(len(filters)), filters]
        kept += after
    robust = np.where(own > 0, (kept / draws) / np.where(own > 0, own, 1.0), 0.0)
    return {
        "activation": own,
        "dead": own <= 0.0,
        "specificity_rank": rank,
        "robustness": robust,
        "hf_share": hf_share(display),
        "colourfulness": colourfulness(display),
    }
