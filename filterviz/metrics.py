"""Per-filter quality metrics, computed on the displayed picture (what the user actually sees).

- `activation`: mean post-activation of the filter's map; `dead` when the map is positive nowhere (its
  positive part's mean is 0: the filter never fires). For a ReLU the two say the same; after a PReLU or
  LeakyReLU the mean can be negative while the filter fires strongly in places, which is not dead.
- `specificity_rank`: 1 = best. Every channel's activation on the picture is divided by that channel's mean
  activation on natural photos (crops of matplotlib's sample photo `grace_hopper.jpg`); the rank is the
  target filter's place among all channels of the layer. A picture that excites its own filter far more than
  natural images do, and far more than it excites other filters, ranks 1.
- `robustness`: the share of the activation kept under a small random shift (up to size/32 px each way, the
  edge mirrored in, no resampling) and zoom (0.9-1.1, band-limited: `transforms.zoomed`, so that the
  resampler's blur is not counted against fine gratings), averaged over `draws` transforms, each zoom read on
  the picture's own content (`_zoom_kept`) with BORDER feature-map pixels along the edge left out: a zoom-out
  where the shrunk picture lies, not on the mirrored edge the zoom fills in (an oriented texture's mirror image
  is the other orientation: the fill cost block 2's textures about 13% at 0.9); a zoom-in against the same
  middle of the picture before it, not the whole (a crop to the middle rewarded pictures whose middle fires
  more: vignettes and islands). 1.0 means the feature survives small shifts and zooms. Undefined (NaN; null in
  metrics.json) where the picture's own response is not above 0: a dead picture (for a ReLU unit those, which
  the dead count reports), a flat one that fires a unit only at the network's padded edge, or a unit that can
  go negative and stays below 0 on average; such pictures are left out of medians (`median_defined`). For
  scale: each filter's best crop of the offline photos keeps 0.93-1.01 of its activation (medians of
  vgg16-hed's blocks 1-5 at 128 px, benchmarks/quality.py).
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

from .quiet import keras
import numpy as np
from .quiet import tf

from . import objectives, params, transforms
from .models import Extractor

__all__ = ["sample_photo_path", "natural_crops", "natural_means", "NaturalPhotos", "hf_share", "colourfulness",
           "quality_metrics", "median_defined", "PHOTOS", "photo_paths", "photo_crops", "inner_means",
           "best_photo_activation", "photo_ratio", "edge_score", "palette_distance", "palette_spread"]


def sample_photo_path() -> str:
    """Path of matplotlib's bundled sample photo, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    root = spec.submodule_search_locations[0]
    return os.path.join(root, "mpl-data", "sample_data", "grace_hopper.jpg")


def natural_crops(size: int, channels: int = 3, n_side: int = 3) -> np.ndarray:
    """n_side x n_side crops of the sample photo (each half its shorter side), resized to `size`, 0-255: RGB for 3
    channels, grey for 1, and grey repeated in every channel for other counts (so any model can take them)."""
    photo = _open_photo(sample_photo_path(), channels)
    return np.stack(_square_crops(photo, min(photo.size) // 2, n_side, size, channels))


def _square_crops(photo, side: int, n: int, size: int, channels: int) -> list[np.ndarray]:
    """n x n evenly placed squares of `side` pixels of a PIL `photo`, each resized to `size` (float32, 0-255,
    grey repeated in every channel where the model takes other than 3)."""
    from PIL import Image

    w, h = photo.size
    crops = []
    for i in range(n):
        for j in range(n):
            x = round(j * (w - side) / max(1, n - 1))
            y = round(i * (h - side) / max(1, n - 1))
            arr = np.asarray(photo.crop((x, y, x + side, y + side)).resize((size, size), Image.BILINEAR), np.float32)
            crops.append(arr if arr.ndim == 3 else np.repeat(arr[..., None], channels, axis=2))
    return crops


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


def _outputs(model: keras.Model, images: np.ndarray, batch: int):
    """The layer's output, float32, batch by batch: (start index, [n, h, w, C])."""
    for s in range(0, len(images), batch):
        yield s, tf.cast(model(tf.constant(images[s : s + batch]), training=False), tf.float32)


def _own(y: tf.Tensor, filters: np.ndarray) -> np.ndarray:
    """Each image's own filter's map [n, h, w] of a layer output [n, h, w, C]."""
    return tf.gather(tf.transpose(y, [0, 3, 1, 2]), filters, axis=1, batch_dims=1).numpy()


def _channel_stats(
    model: keras.Model, images: np.ndarray, batch: int, filters: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Every channel's mean activation and the mean of its positive part, per image ([N, C] each), and with
    `filters` each image's own filter's map ([N, h, w]; else None), from one forward pass."""
    means, fires, maps = [], [], []
    for s, y in _outputs(model, images, batch):
        means.append(tf.reduce_mean(y, axis=[1, 2]).numpy())
        fires.append(tf.reduce_mean(tf.nn.relu(y), axis=[1, 2]).numpy())
        if filters is not None:
            maps.append(_own(y, filters[s : s + batch]))
    return np.concatenate(means), np.concatenate(fires), np.concatenate(maps) if maps else None


def natural_means(
    model: keras.Model, size: int, channels: int = 3, *, batch: int = 16, relu: bool = False, floor: float = 1e-3
) -> np.ndarray:
    """Every channel's mean response to the sample photo's crops at `size` [C] (of its positive part with
    `relu`, for a pre-activation extractor), floored at `floor` x the largest so that channels silent on photos
    do not divide by zero."""
    return _floored_means(model, natural_crops(size, channels), batch, relu, floor)


def _floored_means(model: keras.Model, crops: np.ndarray, batch: int, relu: bool, floor: float = 1e-3) -> np.ndarray:
    means = _channel_stats(model, crops, batch)[1 if relu else 0].mean(axis=0)  # of the positive part with relu
    return np.maximum(means, floor * max(float(means.max()), 1e-6))


class NaturalPhotos:
    """Crops of the sample photo at one size and channel count, and what filterviz takes from them, each
    computed once: a render prepares one per (layer, size) and shares it between the loop's objective
    (specificity), MaCo's spectrum and the metrics."""

    def __init__(self, size: int, channels: int = 3) -> None:
        self.size, self.channels = size, channels
        self._crops: np.ndarray | None = None
        self._magnitude: np.ndarray | None = None
        self._photos: np.ndarray | None = None
        self._means: dict[tuple, tuple[keras.Model, object]] = {}

    @property
    def crops(self) -> np.ndarray:
        """[9, size, size, channels] float32 crops, 0-255 (see natural_crops)."""
        if self._crops is None:
            self._crops = natural_crops(self.size, self.channels)
        return self._crops

    @property
    def magnitude(self) -> np.ndarray:
        """The crops' mean Fourier magnitude (MaCo's fixed spectrum, see params.natural_magnitude)."""
        if self._magnitude is None:
            self._magnitude = params.natural_magnitude(self.crops)
        return self._magnitude

    @property
    def photos(self) -> np.ndarray:
        """photo_crops at this size, their mirror images included (each crop followed by its mirror image): what
        `best` and `best_crops` score against, the same crops as benchmarks/quality.py's, so that a picture the
        benchmark counts as beaten (a mirror image can beat its original) is flagged and rescued by the render."""
        if self._photos is None:
            self._photos = photo_crops(self.size, self.channels)
        return self._photos

    def best(self, model: keras.Model, *, batch: int = 16) -> np.ndarray:
        """[C]: best_photo_activation of `model` over `photos`, computed once per (model, batch)."""
        return self._responses(model, batch).max(axis=0)

    def best_crops(self, model: keras.Model, filters: np.ndarray, *, batch: int = 16) -> np.ndarray:
        """[len(filters), size, size, channels] float32, 0-255: the crop of `photos` that excites each filter most."""
        return self.photos[self._responses(model, batch).argmax(axis=0)[np.asarray(filters, int)]]

    def favourite_colours(self, model: keras.Model, filters: np.ndarray, k: int = 5, *, batch: int = 16) -> np.ndarray:
        """[len(filters), channels] float32, 0-255: the mean colour of the k crops of `photos` (mirror images left
        out) that excite each filter most (where in colour space the photos that a filter likes lie)."""
        acts = self._responses(model, batch)[::2, np.asarray(filters, int)]  # a mirror image has the same colour
        top = np.argsort(-acts, axis=0, kind="stable")[:k]  # [k, F]
        return self.photos[::2].mean(axis=(1, 2))[top].mean(axis=0).astype(np.float32)

    def _responses(self, model: keras.Model, batch: int) -> np.ndarray:
        """inner_means of `model` over `photos` [N, C], computed once per (model, batch)."""
        key = ("photos", id(model), batch)
        if key not in self._means:
            self._means[key] = (model, inner_means(model, self.photos, batch=batch))
        return self._means[key][1]

    def means(self, model: keras.Model, *, batch: int = 16, relu: bool = False) -> np.ndarray:
        """natural_means of `model` on these crops, computed once per (model, batch, relu)."""
        key = (id(model), batch, relu)
        if key not in self._means:  # the model is kept with its entry, so its id cannot be reused meanwhile
            self._means[key] = (model, _floored_means(model, self.crops, batch, relu))
        return self._means[key][1]


def quality_metrics(
    post: Extractor,
    shown: np.ndarray,
    display: np.ndarray,
    filters: np.ndarray,
    *,
    batch: int = 16,
    draws: int = 4,
    seed: int = 0,
    natural: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """activation, dead, specificity_rank, robustness, hf_share and colourfulness for each picture (see the module
    docstring).

    `post` extracts the layer's post-activation output; `shown` are the displayed pictures in model-input space;
    `natural` is `post`'s natural_means at this size where the caller has it already.
    """
    size, channels = shown.shape[1], shown.shape[3]
    acts, positive, maps = _channel_stats(post.model, shown, batch, filters)  # one forward pass
    own = acts[np.arange(len(filters)), filters]
    fires = positive[np.arange(len(filters)), filters]
    scale = natural_means(post.model, size, channels, batch=batch) if natural is None else natural
    rel = acts / scale[None, :]
    rank = 1 + (rel > rel[np.arange(len(filters)), filters][:, None]).sum(axis=1)

    robust = _shift_zoom_kept(post.model, shown, filters, maps, batch=batch, draws=draws, seed=seed)
    return {
        "activation": own,
        "dead": fires <= 0.0,
        "specificity_rank": rank,
        "robustness": robust,
        "hf_share": hf_share(display),
        "colourfulness": colourfulness(display),
    }


ZOOMS = (0.9, 0.95, 1.0, 1.05, 1.1)  # the small zooms a picture should survive
BORDER = 2  # feature-map pixels left out on every side where a picture's own response is read


def _middle(maps: np.ndarray, share: float) -> np.ndarray:
    """The mean of each map's central square whose side is `share` of the map's: [N]."""
    h, w = maps.shape[1:]
    kh, kw = max(1, round(h * share)), max(1, round(w * share))
    top, left = (h - kh) // 2, (w - kw) // 2
    return maps[:, top : top + kh, left : left + kw].mean(axis=(1, 2))


def _zoom_kept(before: np.ndarray, after: np.ndarray, zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """(kept, defined): the share of its activation a picture keeps under a zoom, read on the same content and
    with BORDER map pixels left out (what the image's edge does is not the picture's): a zoom-out's map where
    the shrunk picture lies, not the edge the zoom mirrored in; a zoom-in's map against the same middle of the
    map before it."""
    h = before.shape[1]
    inner = 1.0 - 2 * BORDER / h if h > 2 * BORDER else 1.0
    was = _middle(before, inner * min(1.0, 1.0 / zoom))
    return _middle(after, inner * min(1.0, zoom)) / np.where(was > 0, was, 1.0), was > 0


def _shift_zoom_kept(model: keras.Model, shown: np.ndarray, filters: np.ndarray, before: np.ndarray, *, batch: int,
                     draws: int, seed: int) -> np.ndarray:
    """The mean over `draws` of the share of its activation each picture keeps under a shift of up to size/32
    pixels each way (mirrored in at the edge, no resampling), then one of the small zooms (band-limited); the
    size is kept. `before`: each picture's own map untransformed ([N, h, w], from quality_metrics' forward
    pass). [N]; NaN where the picture's own activation is not above 0 (nothing to keep)."""
    d = max(1, shown.shape[1] // 32)
    shift = transforms.compose(transforms.pad(d, mode="reflect"), transforms.jitter(2 * d))
    kept, defined = np.zeros(len(filters)), np.ones(len(filters), bool)
    for k in range(draws):
        key = tf.constant([seed, 1000 + k])
        zoom = ZOOMS[int(transforms.zoom_index(len(ZOOMS), key))]
        moved = np.concatenate([
            transforms.zoomed(shift(tf.constant(shown[s : s + batch]), key), zoom).numpy()
            for s in range(0, len(shown), batch)
        ])
        after = np.concatenate([_own(y, filters[s : s + batch]) for s, y in _outputs(model, moved, batch)])
        share, ok = _zoom_kept(before, after, zoom)
        kept, defined = kept + share, defined & ok
    return np.where(defined, kept / draws, np.nan)


# -- pictures against several photos, frames and palettes -----------------------------------------------------
# The offline photos (package, path inside it): matplotlib's sample photos (a portrait, a clip-art present on
# white) and scikit-learn's sample images (a temple, a flower), where installed.
PHOTOS = (
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("matplotlib", "mpl-data/sample_data/Minduka_Present_Blue_Pack.png"),
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
)
CROP_GRID = ((0.9, 2), (0.6, 3), (0.35, 4))  # (square side / the photo's shorter side, positions along each axis)


def median_defined(values) -> float:
    """The median of the finite values (NaN where there are none): robustness is undefined for a picture with
    nothing to keep (a dead one); counting it as 0 would hide a layer's live pictures behind its dead units."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else float("nan")


def photo_paths() -> list[str]:
    """The files of PHOTOS that are installed, found without importing their packages."""
    paths = []
    for package, rel in PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = os.path.join(spec.submodule_search_locations[0], *rel.split("/"))
        if os.path.isfile(path):
            paths.append(path)
    return paths


def _open_photo(path: str, channels: int):
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if "A" in im.getbands() or im.mode == "P":  # transparent clip art: put it on white
            rgba = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return im.convert("RGB" if channels == 3 else "L")


def photo_crops(
    size: int, channels: int = 3, grid: tuple[tuple[float, int], ...] = CROP_GRID, flips: bool = True
) -> np.ndarray:
    """Crops of every photo of photo_paths(): for each (scale, n) of `grid`, n x n positions of a square whose
    side is `scale` x the photo's shorter side, resized to `size`, and with `flips` their mirror images too:
    float32 [N, size, size, channels], 0-255 (RGB, grey, or grey in every channel as natural_crops). Many
    crops of several photos at a few scales, so that "better than a photo" means better than the best of them
    (232 crops with everything installed)."""
    crops = []
    for path in photo_paths():
        photo = _open_photo(path, channels)
        for scale, n in grid:
            for arr in _square_crops(photo, max(1, round(scale * min(photo.size))), n, size, channels):
                crops += [arr, arr[:, ::-1]] if flips else [arr]
    return np.stack(crops)


def inner_means(
    model: keras.Model, images: np.ndarray, *, batch: int = 16, border: int = BORDER
) -> np.ndarray | list[np.ndarray]:
    """Every channel's mean positive response per image [N, C], leaving `border` feature-map pixels out on every
    side (what the image's edge does is not the picture's). A model with several outputs gives one per output."""
    outs: list[list[np.ndarray]] = []
    for s in range(0, len(images), batch):
        ys = model(tf.constant(images[s : s + batch]), training=False)
        ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
        for k, y in enumerate(ys):
            y = tf.nn.relu(tf.cast(y, tf.float32))
            if border and y.shape[1] > 2 * border and y.shape[2] > 2 * border:
                y = y[:, border:-border, border:-border]
            if k == len(outs):
                outs.append([])
            outs[k].append(tf.reduce_mean(y, axis=[1, 2]).numpy())
    means = [np.concatenate(o) for o in outs]
    return means if len(means) > 1 else means[0]


def best_photo_activation(
    model: keras.Model, crops: np.ndarray, *, batch: int = 16, border: int = BORDER
) -> np.ndarray:
    """[C]: every channel's highest inner_means over the photo crops: what the best natural picture achieves."""
    return inner_means(model, crops, batch=batch, border=border).max(axis=0)


def photo_ratio(
    model: keras.Model, shown: np.ndarray, filters: np.ndarray, best: np.ndarray, *, batch: int = 16,
    border: int = BORDER,
) -> np.ndarray:
    """[N]: each picture's activation of its own filter (inner_means of `model`, the layer's post-activation
    output) over the best photo crop's (`best`, from best_photo_activation with the same border). Below 1 the
    picture failed: a photo excites its filter more. A filter that no crop excites gets 1 where its picture does
    not fire it either (no photo does better), else its activation over 1e-6 x the layer's highest best."""
    acts = inner_means(model, shown, batch=batch, border=border)[np.arange(len(filters)), filters]
    tiny = 1e-6 * max(float(best.max()), 1e-6)
    own = best[filters]
    return np.where(own > tiny, acts / np.maximum(own, tiny), np.where(acts > tiny, acts / tiny, 1.0))


def edge_score(display: np.ndarray, width: int | None = None) -> np.ndarray:
    """[N]: |mean brightness of the outer ring (`width` pixels, default size/8) - mean brightness inside| / (std of
    the inside + 1), brightness being the mean over channels on the 0-255 scale of uint8 pictures [N,H,W,C].
    Frames and vignettes score high (a dark frame round a textured middle: several), photo crops about 0.2."""
    x = display.astype(np.float64).mean(axis=3)
    h, w = x.shape[1:3]
    r = width or max(1, min(h, w) // 8)
    ring = np.ones((h, w), bool)
    ring[r : h - r, r : w - r] = False
    inside, outer = x[:, ~ring], x[:, ring]
    return np.abs(outer.mean(axis=1) - inside.mean(axis=1)) / (inside.std(axis=1) + 1.0)


def palette_distance(display: np.ndarray) -> np.ndarray:
    """[N]: how far each picture's mean colour (0-255 per channel) lies from the mean colour of all of them."""
    means = display.astype(np.float64).mean(axis=(1, 2))
    return np.linalg.norm(means - means.mean(axis=0), axis=1)


def palette_spread(display: np.ndarray) -> float:
    """The median palette_distance of a layer's pictures: 0 when every filter gets the same palette; crops of
    photos spread about 67."""
    return float(np.median(palette_distance(display)))
