"""Load a model and build feature extractors to its layers.

Every built-in model takes plain RGB in 0-255 and does its own preprocessing inside the graph, so the
rest of filterviz never needs to know how a network was trained. A user's model loaded with a stated input range
or a named preprocess (`filterviz.inputs`) is put behind a `front` that does the same, so it takes 0-255 pixels
too. The user's model is never mutated: extractors share its layers read-only and copy only the layers whose
activation they strip. Layers are named by address (`conv1`, `backbone/block_3_expand`); which tensor a render
of a layer uses is decided in `filterviz.units`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .quiet import keras
import numpy as np

from .builtin import application, application_names, hed_vgg16, model_names
from .heads import ChannelHead, channel_head
from .errors import UserError, suggest
from .inputs import PIXELS, check_preprocess, parse_input_range
from .graphs import is_graph_model
from .settings import DEFAULT_MODEL
from .units import address_model, find, unit, walk

__all__ = [
    "DEFAULT_MODEL",
    "LoadedModel",
    "LayerInfo",
    "Extractor",
    "ChannelHead",
    "load_model",
    "warn_pending",
    "compose_front",
    "callable_model",
    "model_names",
    "visual_layers",
    "feature_extractor",
    "default_layer",
]

_CHANNELS = (1, 3, 4)  # what the pictures can show: grey, RGB, RGB plus one more channel
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # keras.applications' caffe preprocess_input
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_log = logging.getLogger("filterviz")
_ASSUMED_RANGE = ("filterviz: model file '{}' is assumed to take pixels in 0-255; if it was trained on another "
                  "range, say so with --input-range 0:1 (or -1:1) or --preprocess torch|tf|caffe")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for filterviz: `model` takes pixels in `input_range`.

    Loaded with a stated input range or a preprocess, `network` is the user's model (its layers are the ones
    addressed; never changed) and `front` the layers that turn 0-255 pixels into what it takes, so that
    `model` (front, then the network) takes 0-255 like every built-in model. `network_range` is the range the
    network itself takes, where it was stated.
    """

    name: str
    model: keras.Model
    input_range: tuple[float, float] = PIXELS
    preprocess: str = "none"
    network: keras.Model | None = None
    front: keras.Model | None = None
    network_range: tuple[float, float] | None = None
    pending_warning: str = field(default="", compare=False)  # load_model(warn=False): see warn_pending

    @property
    def net(self) -> keras.Model:
        """The model whose layers are addressed: the user's network."""
        return self.network if self.network is not None else self.model

    @property
    def channels(self) -> int:
        return int(self.model.inputs[0].shape[-1])

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(height, width) where the model only accepts one input size, else None."""
        h, w = self.model.inputs[0].shape[1:3]
        return (int(h), int(w)) if h is not None and w is not None else None

    def describe_input(self) -> str:
        """The input in words, e.g. 'RGB 0-255, preprocess tf' or 'grey 0-1'."""
        kind = {1: "grey", 3: "RGB", 4: "4-channel"}.get(self.channels, f"{self.channels}-channel")
        lo, hi = self.network_range or self.input_range
        text = f"{kind} {lo:g}-{hi:g}"
        if self.preprocess != "none":
            text = f"{kind} 0-255, preprocess {self.preprocess}"
        return text + (" (the pictures are 0-255, rescaled in front)" if self.network_range else "")


@dataclass(frozen=True)
class LayerInfo:
    """A layer with filters: its address, type, output shape, filter count and the unit a render uses."""

    name: str
    kind: str
    output_shape: tuple
    filters: int
    unit: str = "output"


@dataclass(frozen=True)
class Extractor:
    """A model from the input to one layer. `copies` pairs (source, copy) layers whose weights it copied.

    `head`, where the layer allows one, computes just one filter per image (see ChannelHead); the engine
    uses it when its objective needs only each image's own filter.
    """

    model: keras.Model
    layer: str
    filters: int
    pre_activation: bool
    copies: tuple = field(default=())
    head: ChannelHead | None = None

    def sync(self) -> None:
        """Copy the current weights of the source layers into the copies (e.g. after a training epoch)."""
        for src, dst in self.copies:
            for a, b in zip(src.weights, dst.weights):
                b.assign(a)


def load_model(
    spec: str | os.PathLike | keras.Model | LoadedModel | Callable = DEFAULT_MODEL,
    *,
    include_top: bool = False,
    unsafe: bool = False,
    input_range: str | tuple[float, float] | None = None,
    preprocess: str | None = None,
    warn: bool = True,
) -> LoadedModel:
    """Load a model by name (`vgg16-hed`, a keras.applications name), from a .keras/.h5 file, or take a Keras
    model or a callable (see callable_model).

    Built-in models take RGB 0-255. A file's or an object's model takes what `input_range` ('0:1', (-1, 1)...)
    or `preprocess` (filterviz.inputs.PREPROCESSES) says, and is then put behind a front so that it takes 0-255
    pixels; a file with neither is assumed to take 0-255 (one warning line on the 'filterviz' logger; with
    `warn=False` it waits in `pending_warning` for warn_pending, e.g. until prepare_render's checks passed, so
    that a mistake the user made gives one error line only). Files load with Keras safe_mode; `unsafe=True`
    allows models that run arbitrary code.
    """
    stated, name = parse_input_range(input_range), check_preprocess(preprocess)
    if stated is not None and name != "none" and stated != PIXELS:
        raise UserError(f"bad input range '{stated[0]:g}:{stated[1]:g}' with preprocess '{name}': a preprocess "
                        "takes 0-255 pixels and fixes the range; give one of --input-range and --preprocess")
    if isinstance(spec, LoadedModel):
        return spec if stated is None and name == "none" else _with_input(spec.name, spec.net, stated, name)
    if isinstance(spec, keras.Model) and is_graph_model(spec):
        return _with_input(spec.name, spec, stated, name)
    if callable(spec) and not isinstance(spec, (str, os.PathLike)):
        return callable_model(spec, input_range=stated or PIXELS)
    text = os.fspath(spec)
    key = text.lower()
    if key == DEFAULT_MODEL or key in application_names():
        if stated not in (None, PIXELS) or name != "none":
            raise UserError(f"model '{key}' takes RGB 0-255 and preprocesses it itself; leave out --input-range "
                            "and --preprocess")
        net = hed_vgg16() if key == DEFAULT_MODEL else application(key, include_top)
        return LoadedModel(key, net, PIXELS)
    path = Path(text)
    if path.suffix.lower() in (".keras", ".h5", ".hdf5") or path.exists():
        lm = _with_input(path.stem, _load_file(path, unsafe), stated, name)
        if stated is None and name == "none":
            lm = warn_pending(dataclasses.replace(lm, pending_warning=_ASSUMED_RANGE.format(path)), warn)
        return lm
    close = suggest(key, model_names())
    raise UserError(
        f"unknown model '{text}'{': ' + close if close.startswith('did') else ''}; valid: '{DEFAULT_MODEL}' (embedded),"
        " a keras.applications name such as 'vgg16' or 'resnet50v2', or a path to a .keras/.h5 file"
    )


def warn_pending(lm: LoadedModel, warn: bool = True) -> LoadedModel:
    """Log `lm`'s pending warning (a model file assumed to take 0-255) on the 'filterviz' logger and return the
    model without it; with `warn` False, `lm` as it is."""
    if not warn or not lm.pending_warning:
        return lm
    _log.warning(lm.pending_warning)
    return dataclasses.replace(lm, pending_warning="")


def _check_channels(name: str, net: keras.Model) -> int:
    if len(net.inputs) != 1 or len(net.inputs[0].shape) != 4:
        raise UserError(f"model '{name}' does not take one batch of images [N,H,W,C] (inputs: "
                        f"{[tuple(t.shape) for t in net.inputs]}); filterviz renders image models")
    c = net.inputs[0].shape[-1]
    if c not in _CHANNELS:
        raise UserError(f"model '{name}' takes {c}-channel images; filterviz renders models that take "
                        "1 (grey), 3 (RGB) or 4 channels, channels last")
    return int(c)


def _front_layers(x, lo_hi: tuple[float, float] | None, preprocess: str, channels: int):
    """0-255 pixels -> the network's input: a rescale to `lo_hi`, or the named preprocess (frozen layers)."""
    if preprocess in ("caffe", "torch") and channels != 3:
        raise UserError(f"preprocess '{preprocess}' needs an RGB (3-channel) model, this one takes {channels} "
                        "channels; use --input-range (or --preprocess tf or none)")
    if preprocess == "caffe":  # RGB -> BGR minus the means, as one frozen 1x1 linear map
        pre = keras.layers.Dense(3, name="caffe_preprocess", trainable=False)
        x = pre(x)
        pre.set_weights([np.eye(3, dtype="float32")[::-1].copy(), -np.asarray(_CAFFE_MEAN_BGR, dtype="float32")])
        return x
    if preprocess == "torch":
        scale = [1.0 / (255.0 * s) for s in _IMAGENET_STD]
        offset = [-m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD)]
        return keras.layers.Rescaling(scale, offset, name="torch_preprocess")(x)
    lo, hi = (-1.0, 1.0) if preprocess == "tf" else lo_hi
    return keras.layers.Rescaling((hi - lo) / 255.0, lo, name=f"{preprocess}_preprocess" if preprocess != "none"
                                  else "rescale")(x)


def _with_input(name: str, net: keras.Model, stated: tuple[float, float] | None, preprocess: str) -> LoadedModel:
    """The user's network as it is (it takes 0-255), or behind a front taking 0-255 pixels. The network is not
    called again: a new model over its own tensors is (so its layers keep one call each)."""
    channels = _check_channels(name, net)
    if preprocess == "none" and stated in (None, PIXELS):
        return LoadedModel(name, net, PIXELS)
    pixels = keras.Input(net.inputs[0].shape[1:], name="pixels")
    x = _front_layers(pixels, stated, preprocess, channels)
    body = keras.Model(net.inputs[0], net.outputs[0] if len(net.outputs) == 1 else net.outputs, name=net.name)
    model = keras.Model(pixels, body(x), name=net.name)
    return LoadedModel(name, model, PIXELS, preprocess, net, keras.Model(pixels, x, name="front"),
                       stated if preprocess == "none" else ((-1.0, 1.0) if preprocess == "tf" else None))


class _Callable(keras.layers.Layer):
    """A layer that calls a Python function (or a subclassed model) mapping images to a feature map."""

    def __init__(self, fn: Callable, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, inputs):
        return self.fn(inputs)


def callable_model(
    fn: Callable, *, channels: int = 3, input_range: str | tuple[float, float] = PIXELS, name: str | None = None,
    size: int | None = None,
) -> LoadedModel:
    """A model with no layer graph (a subclassed Keras model, a function of TensorFlow ops) mapping images
    [N,H,W,channels] in `input_range` to a feature map [N,h,w,C]: rendered with layer None (its output), e.g.
    `prepare_render(callable_model(fn), None)`. `size` fixes the input size where `fn` needs one."""
    if channels not in _CHANNELS:
        raise UserError(f"bad channels {channels!r}: 1 (grey), 3 (RGB) or 4")
    label = name or getattr(fn, "name", None) or getattr(fn, "__name__", "callable")
    pixels = keras.Input((size, size, channels), name="pixels")
    out = _Callable(fn, name="output")(pixels)
    if len(out.shape) not in (2, 4):
        raise UserError(f"callable '{label}' gives shape {tuple(out.shape)}; it must give a feature map "
                        "[N,h,w,C] (or [N,C])")
    lo_hi = parse_input_range(input_range)
    return _with_input(str(label), keras.Model(pixels, out, name=str(label)), lo_hi, "none")


def _load_file(path: Path, unsafe: bool) -> keras.Model:
    if not path.is_file():
        raise UserError(f"model file '{path}' does not exist")
    if path.suffix.lower() not in (".keras", ".h5", ".hdf5"):
        raise UserError(f"model file '{path}' is not a .keras or .h5 file")
    try:
        net = keras.models.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as e:
        msg = " ".join(str(e).split())
        if "safe_mode" in msg or "unsafe" in msg.lower() or "Lambda" in msg:
            raise UserError(
                f"model file '{path}' contains code (e.g. a Lambda layer) that runs when loaded; "
                "pass --unsafe (unsafe=True) only if you trust the file"
            ) from None
        raise UserError(f"model file '{path}' could not be read as a Keras model: {msg[:200]}") from None
    if not isinstance(net, keras.Model):
        raise UserError(f"model file '{path}' holds a {type(net).__name__}, not a Keras model")
    if not is_graph_model(net):
        raise UserError(f"model file '{path}' holds a subclassed Keras model ({type(net).__name__}): it has no "
                        "layer graph to address; render it from Python with "
                        "filterviz.prepare_render(filterviz.callable_model(model), None)")
    return net


def _shape(layer) -> tuple | None:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(out, (list, tuple)):
        return None
    return tuple(out.shape)


def _visual(layer, shape) -> bool:
    """A layer with filters: a map [N,H,W,C] (channels last) that is not per-pixel preprocessing (a Dense on 4-D
    input), or a Dense layer's units [N,C]."""
    if isinstance(layer, keras.layers.InputLayer) or shape is None or shape[-1] is None:
        return False
    if isinstance(layer, keras.layers.Dense):
        return len(shape) == 2
    return len(shape) == 4


def visual_layers(model: keras.Model | LoadedModel) -> list[LayerInfo]:
    """The layers with filters, by address (models nested in the model included): maps of filters (convolutions,
    activations, pools...) and Dense units; `unit` says which tensor a render uses (filterviz.units)."""
    net = model.net if isinstance(model, LoadedModel) else model
    _require_graph(net)
    infos = []
    for address, graph, layer in walk(net):
        shape = _shape(layer)
        if _visual(layer, shape):
            infos.append(LayerInfo(address, type(layer).__name__, shape, int(shape[-1]), unit(graph, layer).note))
    return infos


def _require_graph(net) -> None:
    if not is_graph_model(net):
        raise UserError(f"model '{getattr(net, 'name', net)}' is a subclassed Keras model with no layer graph; "
                        "render it with filterviz.callable_model(model) and layer None")


def compose_front(front: keras.Model | None, model: keras.Model) -> keras.Model:
    """`model` (which takes what the user's network takes) behind `front` (0-255 pixels in), or `model` itself
    where there is no front (LoadedModel.front)."""
    return model if front is None else keras.Model(front.inputs[0], model(front.outputs[0]))


def default_layer(model: keras.Model | LoadedModel) -> str:
    """The layer a render uses when none is named: the model's last layer with filters (its output)."""
    infos = visual_layers(model)
    if not infos:
        raise UserError(f"model '{getattr(model, 'name', '')}' has no layer with filters")
    return infos[-1].name


def feature_extractor(
    model: keras.Model | LoadedModel, layer: str | None, *, pre_activation: bool = True
) -> Extractor:
    """A model from the input pixels to the unit of `layer` (an address; None: the model's output) that a render
    maximizes (`pre_activation`, the default) or measures; see filterviz.units for which tensor that is.

    Only copies (of layers whose activation is stripped) are new; the user's model and its layers are left
    exactly as they were.
    """
    lm = model if isinstance(model, LoadedModel) else LoadedModel(model.name, model)
    net = lm.net
    layer = default_layer(lm) if layer is None else layer
    infos = {i.name: i for i in visual_layers(net)}
    graph, target = find(net, layer, list(infos))
    if layer not in infos:
        raise UserError(f"layer '{layer}' has no filters (output shape {_shape(target)}); layers with filters: "
                        f"{suggest(layer, list(infos))}")
    inner, copies = address_model(net, layer, pre_activation)
    head = None
    kind = unit(graph, target).kind
    if "/" not in layer and (kind in ("copy", "output") or kind == "activated" and pre_activation):
        head = channel_head(net, layer, pre_activation)
        if head is not None and lm.front is not None:
            head = ChannelHead(compose_front(lm.front, head.trunk), head.layer, head.pre_activation)
    return Extractor(compose_front(lm.front, inner), layer, int(inner.outputs[0].shape[-1]), pre_activation, copies,
                     head=head)
