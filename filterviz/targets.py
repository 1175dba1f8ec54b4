"""What to attribute and how: targets (`class:N`, `layer:NAME[:FILTER[@Y,X]]`) and method names.

No TensorFlow: the CLI checks a target or a method list before it loads anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import UserError, suggest
from .settings import ATTRIBUTION_METHODS

__all__ = ["Target", "class_target", "layer_target", "parse_target", "parse_methods"]


@dataclass(frozen=True)
class Target:
    """What to explain: kind 'class' (output unit `index`) or 'layer' (`layer`, filter `index` or all,
    `position` (y, x) in the feature map or the mean over it)."""

    kind: str
    index: int | None = None
    layer: str | None = None
    position: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("class", "layer"):
            raise UserError(f"unknown target kind {self.kind!r}: valid: class, layer")
        if self.kind == "class" and (self.index is None or int(self.index) < 0):
            raise UserError(f"bad class index {self.index!r}: a class index is an integer >= 0")
        if self.kind == "layer" and not self.layer:
            raise UserError("a layer target needs a layer name")
        if self.index is not None and int(self.index) < 0:
            raise UserError(f"bad filter index {self.index!r}: an integer >= 0")
        if self.position is not None and (len(self.position) != 2 or min(self.position) < 0):
            raise UserError(f"bad position {self.position!r}: (y, x) with both >= 0")
        if self.position is not None and self.index is None:
            raise UserError("a position needs a filter index too (layer:NAME:FILTER@Y,X)")

    @property
    def variant(self) -> str:
        """The compiled shape of the target: class, layer (all filters), filter (one map's mean) or unit."""
        if self.kind == "class":
            return "class"
        if self.index is None:
            return "layer"
        return "unit" if self.position is not None else "filter"

    def describe(self) -> str:
        if self.kind == "class":
            return f"class {self.index}"
        text = f"layer {self.layer}" + ("" if self.index is None else f" filter {self.index}")
        return text + ("" if self.position is None else f" at y={self.position[0]}, x={self.position[1]}")

    def slug(self) -> str:
        """A short file-name part: class3, block5_conv3, block5_conv3-f12, block5_conv3-f12-y3x4."""
        if self.kind == "class":
            return f"class{self.index}"
        text = str(self.layer) + ("" if self.index is None else f"-f{self.index}")
        return text + ("" if self.position is None else f"-y{self.position[0]}x{self.position[1]}")


def class_target(index: int) -> Target:
    """Output unit `index` of a classifier (the logit: a final softmax is made linear)."""
    return Target("class", int(index))


def layer_target(layer: str, filter: int | None = None, position: tuple[int, int] | None = None) -> Target:
    """The mean of `layer`'s output (filter None), of one filter's map, or one unit at `position` (y, x)."""
    return Target("layer", None if filter is None else int(filter), layer,
                  None if position is None else (int(position[0]), int(position[1])))


def parse_target(text: str) -> Target:
    """'class:N', 'layer:NAME', 'layer:NAME:FILTER' or 'layer:NAME:FILTER@Y,X' -> Target."""
    usage = "use class:N, layer:NAME, layer:NAME:FILTER or layer:NAME:FILTER@Y,X"
    kind, _, rest = str(text).partition(":")
    try:
        if kind == "class" and rest:
            return class_target(int(rest))
        if kind == "layer" and rest:
            head, _, pos = rest.partition("@")
            name, _, filt = head.partition(":")
            position = None
            if pos:
                y, x = pos.split(",")
                position = (int(y), int(x))
            return layer_target(name, int(filt) if filt else None, position)
    except ValueError:
        pass
    raise UserError(f"bad target '{text}': {usage}")


def parse_methods(spec: str | Sequence[str]) -> list[str]:
    """'saliency,guided' or a list -> validated method names (duplicates dropped, order kept)."""
    names = [m.strip() for m in spec.split(",")] if isinstance(spec, str) else [str(m) for m in spec]
    out = []
    for m in names:
        if m not in ATTRIBUTION_METHODS:
            raise UserError(f"unknown method '{m}': {suggest(m, ATTRIBUTION_METHODS)}")
        if m not in out:
            out.append(m)
    if not out:
        raise UserError(f"no method given: valid: {', '.join(ATTRIBUTION_METHODS)}")
    return out
