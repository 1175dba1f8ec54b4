"""Proofs that a unit of the network is dead: interval bounds on what a layer can output over every input in the
network's valid input box.

A filter that no picture fires may be the optimizer's failure or the network's own dead unit. Interval arithmetic
tells them apart where it can: starting from the box (every input value in [lo, hi]), each layer maps the lower
and upper bound of every value of its input to bounds of its output. An affine layer (a conv, a Dense, a
BatchNorm) does it in centre-radius form: the centre goes through the layer, the radius through the absolute
values of its weights (bias + positive weights x upper bound + negative weights x lower bound, at every output
position, zero padding included exactly); a monotone layer (pooling, padding, reshaping) maps the lower bound to
the lower bound and the upper to the upper; an activation that is monotone on either side of 0 (ReLU, PReLU or
LeakyReLU of any slope, ELU, sigmoid...) takes its extremes at the interval's ends or at 0. The bounds are sound
(no input in the box gets out of them) but loose: each position is bounded as if the inputs it shares with its
neighbours could differ. So `upper <= 0` PROVES a unit never fires (the unit is dead in the network, whatever a
visualization does), while `upper > 0` proves nothing.
"""

from __future__ import annotations

from .quiet import keras
import numpy as np
from .quiet import tf

__all__ = ["output_bounds", "provably_dead"]

# layers that keep the order of their inputs value by value: bounds map to bounds
_MONOTONE = (
    keras.layers.MaxPooling2D, keras.layers.AveragePooling2D, keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalAveragePooling2D, keras.layers.ZeroPadding2D, keras.layers.Cropping2D, keras.layers.Flatten,
    keras.layers.Reshape, keras.layers.Dropout, keras.layers.SpatialDropout2D, keras.layers.Identity,
    keras.layers.UpSampling2D,
)
# activations monotone on either side of 0, so that an interval's extremes are at its ends or at 0
_ACTIVATIONS = ("linear", "relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid", "tanh",
                "softplus", "softsign")
_ACTIVATION_LAYERS = (keras.layers.ReLU, keras.layers.PReLU, keras.layers.LeakyReLU, keras.layers.ELU)


def output_bounds(
    model: keras.Model, box: tuple[float, float], size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """[C] lower and upper bounds of every output channel of `model` (a chain of layers, each taking the one
    before's output) over every input whose values all lie in `box` (lo, hi); `size` where the model's input size
    is not fixed. ValueError for a model that is not such a chain or a layer it cannot bound."""
    lo_box, hi_box = float(box[0]), float(box[1])
    if not lo_box <= hi_box:
        raise ValueError(f"output_bounds: box {box!r} needs lo <= hi")
    shape = [size if d is None else int(d) for d in model.inputs[0].shape[1:]]
    if None in shape:
        raise ValueError(f"output_bounds: model '{model.name}' takes any size: give `size`")
    lo = tf.fill([1, *shape], lo_box)
    hi = tf.fill([1, *shape], hi_box)
    current = model.inputs[0]
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer.input is not current:
            raise ValueError(f"output_bounds: model '{model.name}' is not a chain of layers (at '{layer.name}')")
        lo, hi = _layer_bounds(layer, lo, hi)
        current = layer.output
    axes = list(range(len(lo.shape) - 1))  # every axis but the channels
    return tf.reduce_min(lo, axis=axes).numpy(), tf.reduce_max(hi, axis=axes).numpy()


def provably_dead(model: keras.Model, box: tuple[float, float], size: int | None = None) -> np.ndarray:
    """[C] bool: the output channels of `model` that no input in `box` makes positive (upper bound <= 0)."""
    return output_bounds(model, box, size)[1] <= 0.0


def _layer_bounds(layer: keras.layers.Layer, lo: tf.Tensor, hi: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Bounds of `layer`'s output from bounds of its input."""
    if isinstance(layer, _MONOTONE):
        return layer(lo, training=False), layer(hi, training=False)
    if isinstance(layer, _ACTIVATION_LAYERS):
        return _through(layer, lo, hi)
    if isinstance(layer, keras.layers.Activation):
        return _activation(layer.activation, layer.name, lo, hi)
    if isinstance(layer, (keras.layers.BatchNormalization, keras.layers.Rescaling)):
        centre, radius = (hi + lo) / 2.0, (hi - lo) / 2.0
        mid = layer(centre, training=False)
        spread = tf.abs(layer(centre + radius, training=False) - mid)  # elementwise affine: |scale| x radius
        return mid - spread, mid + spread
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D,
                          keras.layers.Dense)):
        lo, hi = _affine(layer, lo, hi)
        return _activation(layer.activation, layer.name, lo, hi)
    raise ValueError(f"output_bounds: layer '{layer.name}' ({type(layer).__name__}) cannot be bounded; bounded: "
                     "Conv2D, DepthwiseConv2D, SeparableConv2D, Dense, BatchNormalization, Rescaling, activations, "
                     "pooling, padding, reshaping, dropout")


def _affine(layer: keras.layers.Layer, lo: tf.Tensor, hi: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Bounds of a conv's or Dense layer's output before its activation, in centre-radius form."""
    centre, radius = (hi + lo) / 2.0, (hi - lo) / 2.0
    for linear in _linear_parts(layer):
        centre, radius = linear(centre, False), linear(radius, True)
    if layer.use_bias:
        centre = centre + tf.convert_to_tensor(layer.bias)
    return centre - radius, centre + radius


def _linear_parts(layer: keras.layers.Layer) -> list:
    """The layer's linear maps in order, each `(x, absolute) -> x` with the weights or their absolute values."""
    def weights(w, absolute: bool) -> tf.Tensor:
        w = tf.convert_to_tensor(w)
        return tf.abs(w) if absolute else w

    if isinstance(layer, keras.layers.Dense):
        return [lambda x, a: tf.tensordot(x, weights(layer.kernel, a), axes=[[len(x.shape) - 1], [0]])]
    if getattr(layer, "data_format", "channels_last") != "channels_last" or getattr(layer, "groups", 1) != 1:
        raise ValueError(f"output_bounds: layer '{layer.name}': only channels_last convolutions without groups")
    strides, padding, dilation = list(layer.strides), layer.padding.upper(), list(layer.dilation_rate)

    def depthwise(kernel):
        return lambda x, a: tf.nn.depthwise_conv2d(x, weights(kernel, a), [1, *strides, 1], padding,
                                                   dilations=dilation)

    if isinstance(layer, keras.layers.SeparableConv2D):
        return [depthwise(layer.depthwise_kernel),
                lambda x, a: tf.nn.conv2d(x, weights(layer.pointwise_kernel, a), 1, "VALID")]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [depthwise(layer.kernel)]
    return [lambda x, a: tf.nn.convolution(x, weights(layer.kernel, a), strides, padding, dilations=dilation)]


def _activation(fn, name: str, lo: tf.Tensor, hi: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Bounds through an activation function named in _ACTIVATIONS."""
    known = keras.activations.serialize(fn)
    known = known if isinstance(known, str) else known.get("config", {}).get("name", known.get("class_name"))
    if known not in _ACTIVATIONS:
        raise ValueError(f"output_bounds: layer '{name}': activation {known!r} cannot be bounded; bounded: "
                         + ", ".join(_ACTIVATIONS))
    return _through(fn, lo, hi)


def _through(fn, lo: tf.Tensor, hi: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Bounds through an elementwise `fn` monotone on either side of 0: its extremes over [lo, hi] are at lo, at
    hi, or at 0 where the interval holds 0."""
    a, b = fn(lo), fn(hi)
    zero = fn(tf.zeros_like(lo))
    spans = tf.logical_and(lo < 0.0, hi > 0.0)
    low = tf.minimum(a, b)
    high = tf.maximum(a, b)
    return tf.where(spans, tf.minimum(low, zero), low), tf.where(spans, tf.maximum(high, zero), high)
