"""What a model's input pixels are: their value range and a named preprocessing, checked without TensorFlow.

These describe the MODEL, not a render: `models.load_model(..., input_range=, preprocess=)` takes them, every
command that loads a model offers `--input-range LO:HI` and `--preprocess NAME`, and a sweep config the keys
`input_range` and `preprocess`. This leaf module holds the names and the one parser of each, so the CLI and the
YAML reader check them before anything loads.

Preprocessings (each takes RGB pixels in 0-255, what every picture filterviz makes is, and gives what the
network was trained on; the model is wrapped, never changed):

- `none`: the network takes the pixels as they are, in its `input_range` (0-255 unless stated).
- `caffe`: RGB -> BGR minus the ImageNet channel means (Keras's VGG16/ResNet50 `preprocess_input`).
- `torch`: to [0, 1], then minus the ImageNet mean and over its standard deviation, per RGB channel.
- `tf`: to [-1, 1] (Keras's MobileNet/Inception `preprocess_input`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from .errors import UserError

__all__ = ["PIXELS", "PREPROCESSES", "PREPROCESS_HELP", "parse_input_range", "check_preprocess"]

PIXELS = (0.0, 255.0)  # the value range of the pictures filterviz makes and of every built-in model's input
PREPROCESSES = ("none", "caffe", "torch", "tf")
PREPROCESS_HELP = ("none (default), caffe (BGR minus ImageNet means), torch (ImageNet mean/std on [0,1]) or "
                   "tf (to [-1,1]); the model then takes RGB 0-255")
_RANGE_SYNTAX = "LO:HI with LO < HI, e.g. 0:1, -1:1 or 0:255"
_NUMBER = r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*"


def parse_input_range(value: str | Sequence[float] | None) -> tuple[float, float] | None:
    """'LO:HI' (or a pair of numbers) -> (lo, hi) floats; None -> None. Raises UserError naming the value unless
    both are finite numbers with LO < HI."""
    if value is None:
        return None
    if isinstance(value, str):
        m = re.fullmatch(_NUMBER + ":" + _NUMBER, value)
        if not m:
            raise UserError(f"bad input range {value!r}: {_RANGE_SYNTAX}")
        lo, hi = float(m.group(1)), float(m.group(2))
    else:
        try:
            lo, hi = (float(v) for v in value)
            if any(isinstance(v, bool) for v in value):
                raise TypeError
        except (TypeError, ValueError):
            raise UserError(f"bad input range {value!r}: {_RANGE_SYNTAX}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        shown = value if isinstance(value, str) else f"{lo:g}:{hi:g}"
        raise UserError(f"bad input range {shown!r}: {_RANGE_SYNTAX}")
    return lo, hi


def check_preprocess(name: str | None) -> str:
    """The preprocessing's name ('none' for None); UserError naming the valid ones for anything else."""
    if name is None:
        return "none"
    if not isinstance(name, str) or name.lower() not in PREPROCESSES:
        raise UserError(f"unknown preprocess {name!r}: valid: {', '.join(PREPROCESSES)}")
    return name.lower()
