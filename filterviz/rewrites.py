"""Graph rewrites of a cloned model. The user's model is never changed.

The ascent loop runs a clone of the extractor (`loop_model`): computing in bfloat16/float16, ReLUs moved after
the max-pool they feed, max-pools running oneDNN's own ops; attribution runs a clone whose ReLUs follow a
backward rule. Both clone with `clone_with`. What these rewrites read of a model's graph, and the oneDNN ops,
come from `filterviz.graphs`, the one module that touches private TensorFlow/Keras APIs.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

from .quiet import keras

from .errors import UserError
from .graphs import links, onednn_max_pool, onednn_max_pool_available

__all__ = [
    "clone_with",
    "copy_weights",
    "graph_cost",
    "relu_pool_pairs",
    "loop_model",
]


# -- cloning -----------------------------------------------------------------------------------------------------
def clone_with(model: keras.Model, replace: Callable, *, recursive: bool = False, strategy=None) -> keras.Model:
    """A clone of `model` holding a copy of its weights, where `replace(layer)` gives each layer's new layer, or
    None for a plain copy from its config. Made in `strategy`'s scope where given; nested models are cloned
    layer by layer with `recursive`. Errors of cloning (e.g. a Lambda layer) propagate."""

    def clone_layer(layer):
        new = replace(layer)
        return new if new is not None else type(layer).from_config(layer.get_config())

    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        clone = keras.models.clone_model(model, clone_function=clone_layer, recursive=recursive)
    copy_weights(model, clone)
    return clone


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Assign the source's weights to a clone of it (same layers, same order)."""
    src, dst = source.weights, target.weights
    if len(src) != len(dst) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(src, dst)):
        raise ValueError("copy_weights: the models do not have the same weights")
    for a, b in zip(src, dst):
        b.assign(a)


def _inference(model: keras.Model, x):
    return model(x, training=False)


def graph_cost(model: keras.Model, size: int, channels: int = 3) -> tuple[float, int]:
    """(forward FLOPs, forward activation bytes) of one image of `size` x `size`, read off the traced graph.

    FLOPs count the multiply-adds of Conv2D, depthwise conv and MatMul ops (2 per multiply-add);
    activation bytes add up every float tensor the forward pass produces.
    """
    import tensorflow as tf

    # a partial, not a lambda: TensorFlow counts traces per code object, and every call here traces once
    fn = tf.function(functools.partial(_inference, model))
    graph = fn.get_concrete_function(tf.TensorSpec([1, size, size, channels], tf.float32)).graph
    flops, nbytes = 0.0, 0
    for op in graph.get_operations():
        for out in op.outputs:
            shape = out.shape
            if out.dtype.is_floating and shape.rank is not None and shape.is_fully_defined():
                nbytes += shape.num_elements() * out.dtype.size
        if op.type in ("Conv2D", "DepthwiseConv2dNative"):
            k = op.inputs[1].shape
            out = op.outputs[0].shape
            if k.is_fully_defined() and out.is_fully_defined():
                per_out = k[0] * k[1] * (k[2] if op.type == "Conv2D" else 1)
                flops += 2.0 * out.num_elements() * per_out
        elif op.type in ("MatMul", "BatchMatMulV2"):
            a, out = op.inputs[0].shape, op.outputs[0].shape
            if a.is_fully_defined() and out.is_fully_defined():
                flops += 2.0 * out.num_elements() * a[-1]
    return flops, nbytes


class _LoopMaxPool(keras.layers.MaxPooling2D):
    """MaxPooling2D for the ascent loop's clone: optionally run with oneDNN's own ops (_onednn_max_pool), and
    optionally followed by the ReLU that fed it (relu_after_pool): max commutes with a non-decreasing function,
    so the values and gradients are those of pooling the ReLU's output, with the ReLU on a quarter of the values."""

    def __init__(self, *, relu: bool = False, onednn: bool = False, **config):
        super().__init__(**config)
        self.relu, self.onednn = relu, onednn

    def call(self, inputs):
        import tensorflow as tf

        if self.onednn and self.data_format == "channels_last" and not tf.executing_eagerly():  # graph ops only
            y = onednn_max_pool(inputs, self.pool_size, self.strides, self.padding)
        else:
            y = super().call(inputs)
        return keras.ops.relu(y) if self.relu else y


# -- the ascent loop's model ---------------------------------------------------------------------------------------
def _is_relu(layer) -> bool:
    """A layer whose output is relu(its linear part): a Conv2D/Dense with activation 'relu', or a plain ReLU."""
    if type(layer) is keras.layers.ReLU:
        cfg = layer.get_config()
        return not cfg.get("max_value") and not cfg.get("negative_slope") and not cfg.get("threshold")
    if type(layer) is keras.layers.Activation or isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
        return getattr(layer.activation, "__name__", "") == "relu"
    return False


def relu_pool_pairs(model: keras.Model, *, private: bool | None = None) -> dict[str, str]:
    """{relu layer: max-pool layer} of `model` where the pool is the only consumer of the ReLU's output, so the
    ReLU can run after the pool instead (see loop_model's `relu_after_pool`). Each layer is called once."""
    graph = links(model, private=private)
    by_name = {layer.name: layer for layer in model.layers}
    pairs = {}
    for layer in model.layers:
        if not _is_relu(layer) or graph.calls.get(layer.name) != 1 or layer.name in graph.outputs:
            continue
        users = graph.users.get(layer.name, [])
        if len(users) == 1 and type(by_name[users[0]]) is keras.layers.MaxPooling2D and graph.calls[users[0]] == 1:
            pairs[layer.name] = users[0]
    return pairs


def loop_model(
    model: keras.Model,
    precision: str = "float32",
    strategy=None,
    *,
    relu_after_pool: bool = False,
    onednn_pool: bool = False,
) -> keras.Model:
    """The model the ascent loop runs: `model` itself where nothing below applies, else a clone (the user's model
    is never changed) holding a copy of the weights; refresh them with `copy_weights(model, clone)` after the
    source changes.

    Under mixed precision the clone's layers compute in `precision` (a Keras dtype policy such as
    'mixed_bfloat16'), with float32 variables and a float32 input.

    With a tf.distribute `strategy` it is always a clone, made in the strategy's scope (mirrored weights).
    With `relu_after_pool`, a ReLU followed only by a max-pool runs after it (relu_pool_pairs): the same values
    and gradients, with the ReLU and its gradient on a quarter of the values. With `onednn_pool`, max-pools run
    oneDNN's forward and gradient ops, paired explicitly, where onednn_max_pool_available() for the compute dtype.
    """
    pairs = relu_pool_pairs(model) if relu_after_pool else {}
    pools = set(pairs.values())
    onednn_pool = onednn_pool and onednn_max_pool_available(keras.DTypePolicy(precision).compute_dtype)
    onednn_pools = {layer.name for layer in model.layers if type(layer) is keras.layers.MaxPooling2D
                    and layer.data_format == "channels_last"} if onednn_pool else set()
    if precision == "float32" and strategy is None and not pairs and not onednn_pools:
        return model

    def replace(layer):
        config = dict(layer.get_config(), dtype=precision) if precision != "float32" else layer.get_config()
        if layer.name in pairs:
            if type(layer) is keras.layers.ReLU or type(layer) is keras.layers.Activation:
                return keras.layers.Identity(name=layer.name, dtype=config.get("dtype"))
            return type(layer).from_config(dict(config, activation="linear"))
        if layer.name in pools or layer.name in onednn_pools:
            return _LoopMaxPool(relu=layer.name in pools, onednn=layer.name in onednn_pools, **config)
        return type(layer).from_config(config)

    try:
        return clone_with(model, replace, strategy=strategy)
    except Exception as e:  # e.g. a Lambda layer, whose code safe mode will not rebuild
        reason = " ".join(str(e).split()).split(". ")[0][:160]
        raise UserError(
            f"the model cannot be copied to compute in {precision}"
            f"{' on several devices' if strategy is not None else ''} ({reason}); use precision float32"
        ) from None
