"""Writing files: atomic writes, the PNG/npz/JSON/figure savers, safe names and library versions.

Every file is written atomically (a temp file in the same folder, then an atomic rename), so a process
killed at any moment leaves either the old file, the new file, or nothing; never half a file.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import tempfile
from pathlib import Path

import numpy as np

from .errors import UserError

__all__ = [
    "safe_name",
    "ensure_dir",
    "atomic_write",
    "write_png",
    "write_npz",
    "write_json",
    "jsonable",
    "plain",
    "read_json",
    "clean_temps",
    "versions",
    "save_figure",
]

def safe_name(name: str) -> str:
    """A file-name-safe version of a layer name or job id: no '/', no '..', nothing outside [A-Za-z0-9._-]."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "_"
    return clean.replace("..", "_")


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and parents) and check it is writable, with a clear error if not."""
    p = Path(path)
    probe = None
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".probe-", suffix=".tmp")  # .tmp: cleaned up if killed here
        os.close(fd)
    except OSError as e:
        raise UserError(f"output dir '{p}' is not writable: {e.strerror or e}") from None
    finally:  # also on Ctrl-C between making and removing it
        if probe is not None:
            Path(probe).unlink(missing_ok=True)
    return p


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write bytes to `path` through a temp file and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a uint8 [H,W] or [H,W,C] picture as PNG."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if not np.issubdtype(image.dtype, np.uint8):
        raise ValueError(f"write_png needs uint8, got {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False)
    return atomic_write(path, buf.getvalue())


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write(path, buf.getvalue())


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write(path, (json.dumps(jsonable(obj), indent=2, sort_keys=False) + "\n").encode())


def versions() -> dict[str, str]:
    """The library versions that decide the numbers, recorded beside every result."""
    import keras
    import tensorflow as tf

    from . import __version__

    return {
        "filterviz": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


_FIXED_METADATA = {"pdf": {"CreationDate": None}, "svg": {"Date": None}}


def save_figure(fig, path: str | os.PathLike, dpi: int = 100, *, tight: bool = True) -> Path:
    """Save a matplotlib Figure atomically; the format comes from the file suffix (png, pdf, svg...).

    Byte-for-byte reproducible: no creation dates, a fixed SVG id salt, TrueType (not Type 3) fonts in PDF.
    `tight=False` keeps the figure's own size (e.g. exactly 7.16 in wide for a paper's double column).
    """
    import matplotlib

    path = Path(path)
    fmt = (path.suffix.lstrip(".") or "png").lower()
    buf = io.BytesIO()
    rc = {"svg.hashsalt": "filterviz", "pdf.fonttype": 42, "ps.fonttype": 42}
    with matplotlib.rc_context(rc):  # scoped to this save, not a global change
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight" if tight else None,
                    metadata=_FIXED_METADATA.get(fmt))
    return atomic_write(path, buf.getvalue())


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def clean_temps(folder: Path, prefix: str = ".") -> None:
    """Remove temp files a killed process left behind (only ones matching `prefix`, e.g. one manifest's)."""
    if folder.is_dir():
        for p in folder.glob(f"{prefix}*.tmp"):
            p.unlink(missing_ok=True)


def plain(obj):
    """`obj` as it reads back from JSON, for comparing with what a metrics.json holds."""
    return json.loads(json.dumps(jsonable(obj)))
