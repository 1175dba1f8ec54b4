"""Reading images from disk (PNG, JPEG and whatever else Pillow reads), bounded and with clear errors.

An image is decoded only after its header says it is small enough (`max_pixels`, default 64 megapixels), so a
huge or malicious file (e.g. a 50000x50000 PNG) is refused with a UserError instead of filling memory. Pillow's
own decompression-bomb check is turned into the same error. Images are converted to RGB or grayscale,
EXIF-rotated, and resized (squashed, not cropped) to the requested size.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .errors import UserError

__all__ = ["MAX_PIXELS", "read_image", "read_images"]

MAX_PIXELS = 64_000_000


def read_image(
    path: str | os.PathLike,
    size: tuple[int, int] | None = None,
    channels: int = 3,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """The image at `path` as uint8 [H,W,channels] (channels 3: RGB, 1: grayscale), resized to `size` (h, w)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if channels not in (1, 3):
        raise UserError(f"images can be read with 1 or 3 channels, not {channels}")
    p = Path(path)
    if not p.is_file():
        raise UserError(f"image '{p}' does not exist" if not p.exists() else f"image '{p}' is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise UserError(
                        f"image '{p}' is too large ({w}x{h} = {w * h / 1e6:.0f} megapixels; "
                        f"the limit is {max_pixels / 1e6:.0f})"
                    )
                im.load()
                im = ImageOps.exif_transpose(im)
                im = im.convert("RGB" if channels == 3 else "L")
                if size is not None and (im.size[1], im.size[0]) != tuple(size):
                    im = im.resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UserError(f"image '{p}' is too large to decode safely ({e})".splitlines()[0]) from None
    except UnidentifiedImageError:
        raise UserError(f"image '{p}' could not be decoded: not a PNG, JPEG or other image Pillow reads") from None
    except (OSError, ValueError, SyntaxError, MemoryError) as e:
        msg = " ".join(str(e).split())[:160] or type(e).__name__
        raise UserError(f"image '{p}' could not be decoded: {msg}") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr


def read_images(
    paths: list[str | os.PathLike],
    size: tuple[int, int],
    channels: int = 3,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Several images, all resized to `size` (h, w), as one uint8 batch [N,H,W,channels]."""
    if not paths:
        raise UserError("no image given")
    return np.stack([read_image(p, size, channels, max_pixels) for p in paths])
