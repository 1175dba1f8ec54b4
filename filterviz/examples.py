"""Dataset examples: the image patches of a folder of photos that excite each filter of a layer most.

A folder of images (JPEG/PNG, any sizes, searched recursively, in sorted order) streams through a `tf.data`
pipeline (decode, centre square crop, resize to `size` x `size`, batch, prefetch) into a feature extractor. Per
batch only each filter's maximum over the map positions and where it is leave the graph ([B,F] numbers), and
they merge with the running top-k per filter, so memory holds k examples per filter, never all activations.
Each image contributes at most one example per filter (its strongest position). Ties go to the earlier file.

A kept example has its activation, its file, its feature-map position, the unit's receptive-field box in the
resized image (see `filterviz.receptive`) and a patch: the pixels of that field (centred on it, at most the
image size, pixels outside the image mid-grey). Output folder: `examples.npz` (patches [F,k,h,w,C] uint8,
activations [F,k] with NaN for empty slots, positions [F,k,2], boxes [F,k,4], file_index [F,k]), `examples.png`
(one row per filter) and `examples.json` (written last: files, per-filter rows, `complete`, `processed`).

Ctrl-C saves what is done as a partial result; running the same request again resumes: files already processed
are skipped and the result is the same as an uninterrupted run's (with the same batch size the batches stay
aligned, so even the float rounding is the same). New files added to
the folder are processed on a later run in the same way. Unreadable files are skipped and counted.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import Interrupted, UserError
from .files import clean_temps, ensure_dir, jsonable, plain, read_json, versions, write_json, write_npz, write_png
from .grid import tile
from .models import LoadedModel, feature_extractor, load_model, warn_pending
from .receptive import ReceptiveField, receptive_field

__all__ = ["IMAGE_SUFFIXES", "EXAMPLE_FILES", "TopK", "list_images", "image_dataset", "find_examples",
           "examples_grid"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
EXAMPLE_FILES = ("examples.npz", "examples.png", "examples.json")
_GREY = 128
_SHOWN_UNREADABLE = 5


def list_images(folder: str | os.PathLike) -> list[str]:
    """The image files under `folder` (recursively, hidden folders skipped) as sorted relative POSIX paths."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"image folder '{root}' does not exist" if not root.exists() else
                        f"'{root}' is not a folder; give a folder of JPEG/PNG images")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                found.append((Path(dirpath) / name).relative_to(root).as_posix())
    if not found:
        raise UserError(f"no images in '{root}': it holds no {'/'.join(IMAGE_SUFFIXES)} files (searched recursively)")
    return sorted(found)


def image_dataset(root: str | os.PathLike, files: list[str], size: int, channels: int, batch: int,
                  first_index: int = 0):
    """A tf.data.Dataset of (uint8 images [B,size,size,channels], int32 file indices [B]) for `files` under
    `root`: decoded, centre-cropped to a square, resized (bilinear, antialiased), batched and prefetched.
    Files that fail to decode are dropped (their indices are missing from the batches)."""
    import tensorflow as tf

    def load(path, index):
        image = tf.io.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
        shape = tf.shape(image)
        side = tf.minimum(shape[0], shape[1])
        image = tf.image.crop_to_bounding_box(image, (shape[0] - side) // 2, (shape[1] - side) // 2, side, side)
        image = tf.image.resize(image, [size, size], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), index

    paths = [os.fspath(Path(root) / f) for f in files]
    indices = np.arange(first_index, first_index + len(files), dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), indices))  # typed: may be empty
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors()
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class TopK:
    """The running top-k per filter. Replaced, never changed, so Ctrl-C always finds a consistent one.

    `patches` is a tuple of one [k,h,w,C] array per filter, so a merge copies only the filters that changed.
    """

    values: np.ndarray  # [F,k] float32, -inf where empty
    file_index: np.ndarray  # [F,k] int32, -1 where empty
    positions: np.ndarray  # [F,k,2] int32 (i, j) in the feature map
    patches: tuple
    processed: int  # files of the run's file list handled (decoded or found unreadable)
    unreadable: tuple = ()

    @classmethod
    def empty(cls, filters: int, k: int, patch: tuple[int, int], channels: int) -> "TopK":
        blank = np.full((k, *patch, channels), _GREY, np.uint8)
        return cls(np.full((filters, k), -np.inf, np.float32), np.full((filters, k), -1, np.int32),
                   np.full((filters, k, 2), -1, np.int32), (blank,) * filters, 0)

    def merge(self, values: np.ndarray, index: np.ndarray, positions: np.ndarray, crop: Callable) -> "TopK":
        """Merge one batch: `values` [B,F] each image's max per filter, `index` [B] file indices, `positions`
        [B,F,2]; `crop(b, f, position)` cuts the patch of a new winner. Sorted by value, then file index."""
        k = self.values.shape[1]
        vals = np.concatenate([self.values, np.nan_to_num(values.T, nan=-np.inf)], axis=1)  # [F,k+B]
        files = np.concatenate([self.file_index, np.broadcast_to(index, (len(vals), len(index)))], axis=1)
        order = np.lexsort((files, -vals), axis=-1)[:, :k]  # [F,k] sources: < k old slot, else batch row + k
        pos = np.concatenate([self.positions, positions.transpose(1, 0, 2)], axis=1)
        patches = list(self.patches)
        for f in np.nonzero((order >= k).any(axis=1))[0]:
            patches[f] = np.stack([self.patches[f][s] if s < k else crop(s - k, f, pos[f, s]) for s in order[f]])
        take = np.take_along_axis
        return replace(self, values=take(vals, order, 1), file_index=take(files, order, 1),
                       positions=take(pos, order[..., None], 1), patches=tuple(patches))


def _patch_size(rf: ReceptiveField) -> tuple[int, int]:
    return tuple(min(a, b) for a, b in zip(rf.size, rf.image_size))


def _crop(image: np.ndarray, span: np.ndarray, patch: tuple[int, int]) -> np.ndarray:
    """The `patch`-sized window centred on the unclipped box `span`, grey outside the image."""
    h, w = image.shape[:2]
    top = (span[0] + span[2]) // 2 - patch[0] // 2
    left = (span[1] + span[3]) // 2 - patch[1] // 2
    out = np.full((*patch, image.shape[2]), _GREY, np.uint8)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + patch[0], h), min(left + patch[1], w)
    if y1 > y0 and x1 > x0:
        out[y0 - top: y1 - top, x0 - left: x1 - left] = image[y0:y1, x0:x1]
    return out


def examples_grid(patches: np.ndarray, tile_px: int = 48) -> np.ndarray:
    """One uint8 picture, one row per filter of its k patches, each scaled to about `tile_px` pixels."""
    from PIL import Image

    f, k, h, w, c = patches.shape
    flat = patches.reshape(f * k, h, w, c)
    if max(h, w) < tile_px:
        scale = max(1, tile_px // max(h, w))
        flat = flat.repeat(scale, axis=1).repeat(scale, axis=2)
    elif max(h, w) > 2 * tile_px:
        size = (max(1, w * tile_px // max(h, w)), max(1, h * tile_px // max(h, w)))
        flat = np.stack([np.asarray(Image.fromarray(p.squeeze(-1) if c == 1 else p).resize(size, Image.BILINEAR))
                         .reshape(size[1], size[0], c) for p in flat])
    return tile(flat, cols=k, margin=2, background=255)


def _features(extractor, input_range: tuple[float, float]):
    """A tf.function: uint8 images [B,S,S,C] -> (max per filter [B,F], flat argmax position [B,F])."""
    import tensorflow as tf

    lo, hi = input_range
    model = extractor.model

    @tf.function(reduce_retracing=True)
    def run(images):
        x = lo + tf.cast(images, tf.float32) * ((hi - lo) / 255.0)
        maps = tf.cast(model(x, training=False), tf.float32)
        flat = tf.reshape(maps, [tf.shape(maps)[0], -1, maps.shape[-1]])
        return tf.reduce_max(flat, axis=1), tf.argmax(flat, axis=1, output_type=tf.int32)

    return run


def _save(out: Path, state: TopK, meta: dict, rf: ReceptiveField, files: list[str], complete: bool) -> None:
    """examples.npz, examples.png, then examples.json (the mark that the other two are whole)."""
    filled = state.file_index >= 0
    boxes = rf.boxes(state.positions.reshape(-1, 2)).reshape(*state.positions.shape[:2], 4)
    boxes = np.where(filled[..., None], boxes, -1).astype(np.int32)
    patches = np.stack(state.patches)
    activations = np.where(filled, state.values, np.nan).astype(np.float32)
    write_npz(out / "examples.npz", patches=patches, activations=activations, positions=state.positions,
              boxes=boxes, file_index=state.file_index, filters=np.arange(len(patches), dtype=np.int32))
    write_png(out / "examples.png", examples_grid(patches))
    rows = [{"filter": f, "examples": [
        {"activation": float(state.values[f, s]), "file": files[state.file_index[f, s]],
         "position": state.positions[f, s].tolist(), "box": boxes[f, s].tolist()}
        for s in range(state.values.shape[1]) if filled[f, s]]} for f in range(len(patches))]
    write_json(out / "examples.json", dict(meta, complete=complete, processed=state.processed,
                                           unreadable=list(state.unreadable), files=files, filters=rows))


def _resume(out: Path, meta: dict, listing: list[str], fresh: TopK) -> tuple[TopK, list[str]]:
    """The state and file order to continue from: an earlier run's for the same request, else a fresh one."""
    old = read_json(out / "examples.json")
    if not isinstance(old, dict) or old.get("request") != plain(meta["request"]):
        return fresh, listing
    try:
        done = list(old["files"][: int(old["processed"])])
        with np.load(out / "examples.npz") as z:
            values = np.nan_to_num(z["activations"].astype(np.float32), nan=-np.inf)
            state = TopK(values, z["file_index"].astype(np.int32), z["positions"].astype(np.int32),
                         tuple(z["patches"]), len(done), tuple(old.get("unreadable", ())))
    except (OSError, ValueError, KeyError, TypeError):
        return fresh, listing
    if state.values.shape != fresh.values.shape or state.patches[0].shape != fresh.patches[0].shape:
        return fresh, listing
    seen = set(done)
    return state, done + [f for f in listing if f not in seen]


def _stream(state: TopK, batches, run, rf: ReceptiveField, files: list[str], on_batch) -> TopK:
    """Merge every batch into `state`; `state` is handed to `on_batch` after each (its processed count grows)."""
    patch = _patch_size(rf)
    width = rf.map_size[1]
    for images, index in batches:
        values, arg = (t.numpy() for t in run(images))
        images, index = images.numpy(), index.numpy()
        positions = np.stack([arg // width, arg % width], axis=-1).astype(np.int32)
        last = int(index[-1]) + 1
        missing = sorted(set(range(state.processed, last)) - set(index.tolist()))

        def crop(b, f, position):
            return _crop(images[b], rf.span(position[None])[0], patch)

        merged = state.merge(values, index, positions, crop)
        state = replace(merged, processed=last, unreadable=state.unreadable + tuple(files[i] for i in missing))
        on_batch(state)
    tail = tuple(files[i] for i in range(state.processed, len(files)))
    return replace(state, processed=len(files), unreadable=state.unreadable + tail)


def find_examples(
    model: str | LoadedModel,
    layer: str,
    images: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    k: int = 9,
    batch: int = 32,
    size: int | None = None,
    request: dict | None = None,
    quiet: bool = True,
    on_batch: Callable[[TopK], None] | None = None,
) -> dict:
    """Find the top-`k` dataset examples of every filter of `layer` in the folder `images`; save them in
    `out_dir` (see the module docstring) and return what examples.json holds. Resumes an earlier partial or
    complete run of the same request there. On Ctrl-C saves a partial result and raises `Interrupted`."""
    lm = load_model(model)
    size = _check(lm, k, batch, size)
    listing = list_images(images)
    extractor = feature_extractor(lm, layer, pre_activation=False)
    rf = receptive_field(lm, layer, size)
    lm = warn_pending(lm)  # the checks passed: a model file's assumed input range is worth a line now
    out = ensure_dir(out_dir)
    for name in EXAMPLE_FILES:
        clean_temps(out, f".{name}.")
    ask = dict(request or {"model": lm.name}, layer=layer, size=size, k=k)
    meta = {"model": lm.name, "layer": layer, "images": os.fspath(Path(images).resolve()), "size": size, "k": k,
            "request": jsonable(ask), "receptive_field": {"size": list(rf.size), "map_size": list(rf.map_size)},
            "patch_size": list(_patch_size(rf)), "versions": versions()}
    fresh = TopK.empty(extractor.filters, k, _patch_size(rf), lm.channels)
    state, files = _resume(out, meta, listing, fresh)
    todo = files[state.processed:]
    holder = [state]
    bar = _bar(len(files), state.processed, layer, quiet)

    def step(s: TopK) -> None:
        bar.update(s.processed - holder[0].processed)
        holder[0] = s
        if on_batch is not None:
            on_batch(s)

    try:
        batches = image_dataset(images, todo, size, lm.channels, batch, first_index=state.processed)
        state = _stream(state, batches, _features(extractor, lm.input_range), rf, files, step)
    except KeyboardInterrupt:
        bar.close()
        if holder[0] is not state:  # something new to keep
            _save(out, holder[0], meta, rf, files, complete=False)
        where = f"saved in {out}/ (partial)" if holder[0].processed else "nothing written"
        raise Interrupted(f"{holder[0].processed} of {len(files)} images of '{images}' processed, {where}; "
                          "run the same command again to resume") from None
    bar.close()
    _save(out, state, meta, rf, files, complete=True)
    return read_json(out / "examples.json")


def _bar(total: int, initial: int, layer: str, quiet: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=layer, unit="img", leave=False, disable=quiet, smoothing=0.1)


def _check(lm: LoadedModel, k: int, batch: int, size: int | None) -> int:
    """Validate the numbers; the image size: `size`, else the model's fixed size, else 224."""
    def is_int(v) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not (is_int(k) and 1 <= k <= 1000):
        raise UserError(f"bad k {k!r}: an integer from 1 to 1000 (examples kept per filter)")
    if not (is_int(batch) and 1 <= batch <= 4096):
        raise UserError(f"bad batch {batch!r}: an integer from 1 to 4096 (images per batch)")
    fixed = lm.fixed_size
    if size is None:
        return fixed[0] if fixed and fixed[0] == fixed[1] else 224
    if not (is_int(size) and 8 <= size <= 4096):
        raise UserError(f"bad size {size!r}: an integer from 8 to 4096 (pixels)")
    if fixed is not None and fixed != (size, size):
        raise UserError(f"model '{lm.name}' only takes {fixed[0]}x{fixed[1]} images; use size {fixed[0]}")
    return int(size)
