"""Writing results: the only module that writes files.

Every file is written atomically (a temp file in the same folder, then an atomic rename), so a process
killed at any moment leaves either the old file, the new file, or nothing; never half a file.
"""

from __future__ import annotations

import dataclasses
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
    "atomic_write",
    "write_png",
    "write_npz",
    "write_json",
    "safe_name",
    "ensure_dir",
    "versions",
    "save_layer",
    "layer_dir",
    "save_figure",
]


def safe_name(name: str) -> str:
    """A file-name-safe version of a layer name or job id: no '/', no '..', nothing outside [A-Za-z0-9._-]."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "_"
    return clean.replace("..", "_")


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and parents) and check it is writable, with a clear error if not."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=p, prefix=".probe-", delete=True)
        probe.close()
    except OSError as e:
        raise UserError(f"output dir '{p}' is not writable: {e.strerror or e}") from None
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


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write(path, (json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n").encode())


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


def layer_dir(root: str | os.PathLike, model: str, layer: str) -> Path:
    """outputs/<model>/<layer>/ with both names made safe."""
    return Path(root) / safe_name(model) / safe_name(layer)


def save_layer(result, out_dir: str | os.PathLike) -> list[Path]:
    """Write grid.png, images.npz and metrics.json for a LayerResult; metrics.json last, as the 'done' mark."""
    out = ensure_dir(out_dir)
    written = [
        write_png(out / "grid.png", result.grid),
        write_npz(
            out / "images.npz",
            images=result.images.astype(np.float32),
            display=result.display,
            filters=result.filters,
            activations=result.activations.astype(np.float32),
            trace=result.trace.astype(np.float32),
        ),
    ]
    meta = {
        "model": result.model,
        "layer": result.layer,
        "seed": result.settings.seed,
        "settings": dataclasses.asdict(result.settings),
        "input_range": list(result.input_range),
        "seconds": round(result.seconds, 3),
        "versions": versions(),
        "summary": {
            "filters": len(result.filters),
            "dead": int(sum(r["dead"] for r in result.metrics)),
            "nonfinite": int(sum(r["nonfinite"] for r in result.metrics)),
            "median_activation": float(np.median(result.activations)),
            "median_specificity_rank": float(np.median([r["specificity_rank"] for r in result.metrics])),
            "median_robustness": float(np.median([r["robustness"] for r in result.metrics])),
            "median_hf_share": float(np.median([r["hf_share"] for r in result.metrics])),
        },
        "filters": result.metrics,
    }
    written.append(write_json(out / "metrics.json", meta))
    return written


def save_figure(fig, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a matplotlib Figure atomically; the format comes from the file suffix (png, pdf, svg...)."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=(path.suffix.lstrip(".") or "png").lower(), dpi=dpi, bbox_inches="tight")
    return atomic_write(path, buf.getvalue())
