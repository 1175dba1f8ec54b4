"""Receptive fields: which input pixels a unit of a layer can see, from the layer geometry alone.

Walking the graph from the input to the layer, every tensor carries, per spatial axis, a set of affine
intervals `(jump, lo, hi)`: unit `i` of that tensor depends on input pixels `i*jump + lo .. i*jump + hi`
(inclusive, before clipping to the image). A convolution or pooling with kernel `k`, stride `s`, dilation `d`
and `p` pixels of padding before the first input pixel maps an interval to
`(jump*s, lo - p*jump, hi + (k_eff - 1 - p)*jump)` with `k_eff = (k-1)*d + 1`. TensorFlow's 'same' padding puts
`floor(pad/2)` before, where `pad = max((ceil(n/s)-1)*s + k_eff - n, 0)` depends on the input size `n` at that
layer, so the geometry is computed for one image size. Where paths join (Add, Concatenate...) the intervals of
equal jump merge into their hull (the union/max over paths). Element-wise layers and Keras ops that keep the
spatial size pass intervals through. A tensor that saw global pooling (e.g. a squeeze-excite gate) depends on
the whole image, and so does anything it is broadcast into.

Boxes are `(top, left, bottom, right)` with bottom/right exclusive (Python slices), clipped to the image.
Layers that resample (UpSampling2D, Conv2DTranspose, Resizing) or unknown layer types raise a UserError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .quiet import keras
import numpy as np

from .errors import UserError, suggest
from .graphs import call_output, is_graph_model, tensor_call

__all__ = ["ReceptiveField", "receptive_field"]

_WINDOWED = ("Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D")
_POINTWISE = {
    "InputLayer", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "BatchNormalization",
    "LayerNormalization", "GroupNormalization", "UnitNormalization", "Dropout", "SpatialDropout2D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Rescaling", "Normalization",
    "Dense", "EinsumDense", "Identity", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
    "Concatenate", "Permute",
}
_RESAMPLING = {"UpSampling2D", "Conv2DTranspose", "Resizing", "CenterCrop", "RandomCrop", "RandomZoom"}

@dataclass(frozen=True)
class _Geo:
    size: tuple[int, int] | None  # the tensor's spatial size; None for a tensor without spatial axes
    rows: frozenset | None  # (jump, lo, hi) intervals; None where the unit sees the whole image
    cols: frozenset | None

    @property
    def whole(self) -> bool:
        return self.rows is None


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of every unit of `layer` for an input image of `image_size` (height, width).

    `rows`/`cols` hold the (jump, lo, hi) intervals of each axis (empty where `whole`: every unit sees the
    whole image). `map_size` is the layer's feature-map size for that input.
    """

    layer: str
    image_size: tuple[int, int]
    map_size: tuple[int, int]
    rows: tuple[tuple[int, int, int], ...]
    cols: tuple[tuple[int, int, int], ...]

    @property
    def whole(self) -> bool:
        return not self.rows

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of an interior unit's field before clipping (the whole image where `whole`)."""
        if self.whole:
            return self.image_size
        return tuple(max(i[2] for i in ax) - min(i[1] for i in ax) + 1 for ax in (self.rows, self.cols))

    def span(self, positions: np.ndarray) -> np.ndarray:
        """Unclipped boxes [N,4] (top, left, bottom, right; bottom/right exclusive) of units at [N,2] (i, j)."""
        pos = np.asarray(positions, dtype=np.int64).reshape(-1, 2)
        if self.whole:
            h, w = self.image_size
            return np.tile(np.asarray([[0, 0, h, w]], np.int64), (len(pos), 1))

        def axis(ax, p):
            lo = np.min([p * j + a for j, a, _ in ax], axis=0)
            hi = np.max([p * j + b for j, _, b in ax], axis=0)
            return lo, hi + 1

        top, bottom = axis(self.rows, pos[:, 0])
        left, right = axis(self.cols, pos[:, 1])
        return np.stack([top, left, bottom, right], axis=1)

    def boxes(self, positions: np.ndarray) -> np.ndarray:
        """Boxes [N,4] (top, left, bottom, right; bottom/right exclusive) clipped to the image."""
        box = self.span(positions)
        h, w = self.image_size
        return np.clip(box, 0, np.asarray([h, w, h, w]))

    def box(self, i: int, j: int) -> tuple[int, int, int, int]:
        """The clipped box of the unit at feature-map position (i, j)."""
        return tuple(int(v) for v in self.boxes(np.asarray([[i, j]]))[0])


def _hull(intervals) -> frozenset:
    """Intervals of equal jump merged into their hull: the union over paths, kept small."""
    merged: dict[int, tuple[int, int]] = {}
    for jump, lo, hi in intervals:
        a, b = merged.get(jump, (lo, hi))
        merged[jump] = (min(a, lo), max(b, hi))
    return frozenset((j, a, b) for j, (a, b) in merged.items())


def _pair(value, n: int = 2) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),) * n


def _window(layer) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], str]:
    """(kernel, strides, dilation, padding) of a convolution or pooling layer, per axis (rows, cols)."""
    cfg = layer.get_config()
    if "pool_size" in cfg:
        kernel = _pair(cfg["pool_size"])
        strides = _pair(cfg.get("strides") or cfg["pool_size"])
        dilation = (1, 1)
    else:
        kernel, strides, dilation = (_pair(cfg[k]) for k in ("kernel_size", "strides", "dilation_rate"))
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise UserError(f"layer '{layer.name}' is channels_first; receptive fields need channels_last")
    return kernel, strides, dilation, str(cfg.get("padding", "valid")).lower()


def _through_window(geo: _Geo, layer) -> _Geo:
    kernel, strides, dilation, padding = _window(layer)
    if padding not in ("same", "valid"):
        raise UserError(f"layer '{layer.name}' has padding '{padding}'; receptive fields know 'same' and 'valid'")
    size, axes = [], []
    for n, k, s, d, ax in zip(geo.size, kernel, strides, dilation, (geo.rows, geo.cols)):
        k_eff = (k - 1) * d + 1
        if padding == "same":
            out = math.ceil(n / s)
            before = max((out - 1) * s + k_eff - n, 0) // 2
        else:
            out, before = (n - k_eff) // s + 1, 0
        size.append(out)
        if ax is not None:
            ax = frozenset((j * s, lo - before * j, hi + (k_eff - 1 - before) * j) for j, lo, hi in ax)
        axes.append(ax)
    return _Geo(tuple(size), *axes)


def _through_pad_or_crop(geo: _Geo, layer) -> _Geo:
    cfg = layer.get_config()
    key = "padding" if "padding" in cfg else "cropping"
    (t, b), (l, r) = (_pair(v) for v in cfg[key])
    sign = -1 if key == "padding" else 1  # padded index i is input index i - t; cropped, i + t
    size = (geo.size[0] - sign * (t + b), geo.size[1] - sign * (l + r))
    axes = [None if ax is None else frozenset((j, lo + sign * off * j, hi + sign * off * j) for j, lo, hi in ax)
            for ax, off in ((geo.rows, t), (geo.cols, l))]
    return _Geo(size, *axes)


def _merge(geos: list[_Geo], out_shape, name: str) -> _Geo:
    """Element-wise and joining ops: the union over inputs; global inputs make the output global."""
    spatial = [g for g in geos if g.size is not None]
    if len(out_shape) != 4 or not spatial:
        return _Geo(None, None, None)
    if any(g.whole for g in geos):
        return _Geo(spatial[0].size, None, None)
    sizes = {g.size for g in spatial}
    if len(sizes) != 1:
        raise UserError(f"layer '{name}' joins feature maps of different sizes {sorted(sizes)}")
    return _Geo(spatial[0].size, _hull(i for g in spatial for i in g.rows), _hull(i for g in spatial for i in g.cols))


class _Walker:
    """Geometry of every tensor of a functional graph, computed on demand from the inputs up (memoized)."""

    def __init__(self, model: keras.Model, seeds: dict[int, _Geo]):
        self.model = model
        self.known = dict(seeds)

    def geo(self, tensor) -> _Geo:
        key = id(tensor)
        if key not in self.known:
            op, ins, outs = tensor_call(self.model, tensor)
            outputs = self.apply(op, [self.geo(t) for t in ins], outs)
            for t, g in zip(outs, outputs):
                self.known[id(t)] = g
        return self.known[key]

    def apply(self, op, inputs: list[_Geo], outs: list) -> list[_Geo]:
        kind = type(op).__name__
        if isinstance(op, keras.Model) and is_graph_model(op) and getattr(op, "inputs", None):
            inner = _Walker(op, {id(t): g for t, g in zip(op.inputs, inputs)})
            return [inner.geo(t) for t in op.outputs]
        if kind in _WINDOWED and len(inputs) == 1 and inputs[0].size is not None:
            if kind == "Conv1D":
                raise UserError(f"layer '{op.name}' is a Conv1D; receptive fields are computed for 2-D maps")
            return [_through_window(inputs[0], op)]
        if kind in ("ZeroPadding2D", "Cropping2D"):
            return [_through_pad_or_crop(inputs[0], op)]
        if kind.startswith("Global") or kind in ("Flatten", "Reshape"):  # the output sees the whole input
            if kind in ("Flatten", "Reshape") and any(len(t.shape) == 4 for t in outs) and \
                    any(g.size is not None and not g.whole for g in inputs):
                raise UserError(f"layer '{op.name}' ({kind}) reshapes a feature map; no receptive field through it")
            return [_Geo((1, 1) if len(t.shape) == 4 else None, None, None) for t in outs]
        if kind in _RESAMPLING:
            raise UserError(f"layer '{op.name}' ({kind}) resamples the feature map; receptive fields through "
                            "it are not supported")
        if isinstance(op, keras.layers.Layer) and kind not in _POINTWISE:
            raise UserError(f"layer '{op.name}' is a {kind}, whose geometry filterviz does not know; known: "
                            f"{', '.join(sorted(_POINTWISE | set(_WINDOWED)))}")
        return [_merge(inputs, tuple(t.shape), op.name) for t in outs]  # element-wise layers and keras ops


def receptive_field(model, layer: str, image_size: tuple[int, int] | int) -> ReceptiveField:
    """The receptive field of `layer`'s units in `model` (a keras.Model or LoadedModel) for images of
    `image_size` (an int for square images), from the layer geometry along every path from the input."""
    net = getattr(model, "net", model)  # a LoadedModel's network, without the front that rescales pixels
    names = [x.name for x in net.layers]
    if layer not in names:
        raise UserError(f"unknown layer '{layer}' in model '{net.name}': {suggest(layer, names)}")
    h, w = _pair(image_size)
    if len(net.inputs) != 1:
        raise UserError(f"model '{net.name}' has {len(net.inputs)} inputs; receptive fields need one image input")
    start = _Geo((h, w), frozenset({(1, 0, 0)}), frozenset({(1, 0, 0)}))
    walker = _Walker(net, {id(net.inputs[0]): start})
    geo = walker.geo(call_output(net, net.get_layer(layer)))
    if geo.size is None:
        raise UserError(f"layer '{layer}' has no feature map (no spatial axes); pick a convolution or pooling layer")
    if min(geo.size) < 1:
        raise UserError(f"images of {h}x{w} are too small for layer '{layer}' (its map would be {geo.size})")
    rows = () if geo.whole else tuple(sorted(geo.rows))
    cols = () if geo.whole else tuple(sorted(geo.cols))
    return ReceptiveField(layer, (h, w), geo.size, rows, cols)
