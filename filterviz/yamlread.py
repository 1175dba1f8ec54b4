"""Reading YAML for validation: every value with the line it came from and, for plain scalars, its text.

`compose` loads text with PyYAML's safe loader and keeps each key's 1-based line (from `yaml.compose`) and
the text of each plain scalar as written (to undo YAML 1.1 surprises: an unquoted 1e-3 is a string, an
unquoted 8:16 a base-60 integer). `Reader` has the typed readers that raise one-line
`FILE:LINE: key 'KEY': what is wrong` errors; `filterviz.config` builds the config schema on it.
"""

from __future__ import annotations

import math
import re

import yaml

from .errors import UserError
from .settings import FilterRange, parse_filters

__all__ = ["FLOAT_TEXT", "compose", "Reader", "show"]

FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def compose(text: str, path: str) -> tuple[object, dict[str, int], dict[str, str]]:
    """(data, dotted key -> line, dotted key -> plain scalar text) of YAML `text`; data is {} for an empty
    file. A syntax error raises UserError 'PATH:LINE: bad YAML: problem'."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{where}: bad YAML: {problem}") from None
    if data is None:
        return {}, {}, {}
    return data, _line_map(node), _raw_node_text(node)


def _line_map(node, prefix: str = "", out: dict | None = None) -> dict[str, int]:
    """Dotted key -> 1-based line, for the top-level mapping and its nested mappings."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}" if isinstance(k, yaml.ScalarNode) else f"{prefix}?"
            out.setdefault(key, k.start_mark.line + 1)
            if isinstance(v, yaml.MappingNode):
                _line_map(v, key + ".", out)
            elif isinstance(v, yaml.SequenceNode):
                for i, item in enumerate(v.value):
                    out.setdefault(f"{key}[{i}]", item.start_mark.line + 1)
    return out


def _raw_node_text(node, prefix: str = "", out: dict | None = None) -> dict[str, str]:
    """Dotted key (sequence items as key[i]) -> scalar text as written, with plain style only."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = f"{prefix}{k.value}" if isinstance(k, yaml.ScalarNode) else f"{prefix}?"
            if isinstance(v, yaml.ScalarNode) and v.style is None:
                out[key] = v.value
            elif isinstance(v, yaml.SequenceNode):
                for i, item in enumerate(v.value):
                    if isinstance(item, yaml.ScalarNode) and item.style is None:
                        out[f"{key}[{i}]"] = item.value
            elif isinstance(v, yaml.MappingNode):
                _raw_node_text(v, key + ".", out)
    return out


class Reader:
    """Typed readers of YAML values that raise one-line FILE:LINE errors naming the key."""

    def __init__(self, path: str, lines: dict[str, int], raw: dict[str, str]) -> None:
        self.path, self.lines, self.raw = path, lines, raw

    def fail(self, key: str, msg: str):
        line = self.lines.get(key) or self.lines.get(re.sub(r"\[\d+\]$", "", key)) or self.lines.get(key.split(".")[0])
        where = f"{self.path}:{line}" if line else self.path
        shown = re.sub(r"\[\d+\]$", "", key)
        raise UserError(f"{where}: key '{shown}': {msg}")

    def string(self, key: str, value, *, allow_none: bool = False) -> str | None:
        if value is None and allow_none:
            return None
        blank = isinstance(value, str) and not value.strip()
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or blank:
            self.fail(key, f"expected a non-empty string, got {show(value)}")
        return str(value)

    def boolean(self, key: str, value) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"expected true or false, got {show(value)}")
        return value

    def integer(self, key: str, value, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, f"expected an integer from {lo} to {hi}, got {show(value)}")
        if not lo <= value <= hi:
            self.fail(key, f"{value} is out of range: an integer from {lo} to {hi}")
        return value

    def number(self, key: str, value) -> float:
        value = self.coerce_float(key, value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, f"expected a number, got {show(value)}")
        return float(value)

    def coerce_float(self, key: str, value):
        """YAML 1.1 reads an unquoted 1e-3 as a string; take it as the number the user meant."""
        if isinstance(value, str) and key in self.raw and FLOAT_TEXT.match(value.strip()):
            return float(value)
        return value

    def names(self, key: str, value) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            self.fail(key, "expected a name or a non-empty list of names, got an empty list")
        return tuple(self.string(f"{key}[{i}]" if isinstance(value, list) else key, v) for i, v in enumerate(items))

    def filter_spec(self, key: str, value) -> str | FilterRange | tuple[int, ...]:
        """A filter selection read by `settings.parse_filters`: 'all', a FilterRange or a tuple of indices."""
        if isinstance(value, int) and not isinstance(value, bool) and ":" in self.raw.get(key, ""):
            value = self.raw[key]  # 8:16 unquoted is a YAML 1.1 base-60 integer (496); the user meant a range
        if isinstance(value, bool) or not isinstance(value, (int, str, list)):
            self.fail(key, f"expected all, a range like 0:64, or a list of filter indices, got {show(value)}")
        if value == []:
            self.fail(key, "an empty list selects no filters; use all, a range like 0:64, or indices")
        for i, v in enumerate(value if isinstance(value, list) else []):
            self.parsed(f"{key}[{i}]", [v])  # the line of the bad item
        spec = self.parsed(key, value)
        if spec == ():
            self.fail(key, f"no filters selected by {value!r}; use all, a range like 0:64, or indices")
        return spec

    def parsed(self, key: str, value):
        try:
            return parse_filters(value)
        except UserError as e:
            self.fail(key, str(e))

    def filters(self, key: str, value) -> str | tuple[int, ...]:
        """'all', 'a:b' (as text, either end may be open) or a tuple of filter indices."""
        spec = self.filter_spec(key, value)
        return str(spec) if isinstance(spec, FilterRange) else spec


def show(value) -> str:
    """A value and its YAML type, for 'got ...' messages."""
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping",
            type(None): "nothing"}.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text[:40] + '...' if len(text) > 40 else text}"
