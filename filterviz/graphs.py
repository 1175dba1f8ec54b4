"""Reading a Keras model's graph, and TensorFlow ops without a Python wrapper: the one module that touches
private TensorFlow/Keras APIs. `rewrites` (the graph rewrites of cloned models), `units`, `heads`,
`receptive`, `models` and `attribution` read graphs through it.

Every private API sits in one small function below, with a probe and a public fallback; the fallbacks give the
same answers (tests/test_models.py forces each one with `private=False`):

- `layer._inbound_nodes` (nodes' `input_tensors`/`output_tensors`), in `links`: how often each layer is called
  and which layers consume its output. Probe: every layer has `_inbound_nodes`. Fallback: the model's public
  `get_config()` (each layer's `inbound_nodes` name their inputs by keras_history [layer, node, tensor]) with
  the public `layer.output`/`model.outputs`; a Sequential is a chain; any other model has no links (nothing is
  rewritten). The private nodes count calls made outside the model too, the config only the model's own.
- `tensor._keras_history.operation`, in `producer`: the layer that makes a tensor. Probe: the tensor has
  `_keras_history`. Fallback: the layer of `model.layers` whose public `output` is that tensor.
- `keras.src.models.functional.Functional`, in `is_graph_model`: a Functional or Sequential model (not a
  subclassed one). Probe: the module imports. Fallback: a keras.Sequential, or a keras.Model with public
  `outputs` (a subclassed model has none).
- `Graph._create_op_internal`, in `_create_op`: oneDNN's max-pool ops, which have no Python wrapper. Probe: the
  graph has it. Fallback: the public (deprecated) `tf.Graph.create_op`, which calls it. Where neither makes
  ops with the right values and gradient, `onednn_max_pool_available()` is False and Keras's MaxPooling2D runs.
- `tensorflow.python.framework.op_def_registry.get`, in `op_registered`: whether TensorFlow has an op. Probe:
  the module imports. Fallback: create the op in a throwaway graph with `tf.Graph.create_op`; TensorFlow says
  "not registered" where it has none.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from .quiet import keras
import numpy as np

__all__ = [
    "Links",
    "links",
    "layer_calls",
    "producer",
    "tensor_call",
    "call_inputs",
    "call_output",
    "is_graph_model",
    "op_registered",
    "onednn_max_pool",
    "onednn_max_pool_available",
]

_ONEDNN_OPS = ("_MklNativeMaxPool", "_MklNativeMaxPoolGrad")


# -- private APIs, each behind a probe with a public fallback ---------------------------------------------------
@dataclass(frozen=True)
class Links:
    """The call graph of a model by layer name: `calls` (call sites of each layer), `users` (the layers consuming
    the output of each layer called once with one output tensor, once per use) and `outputs` (such layers whose
    output is a model output)."""

    calls: dict
    users: dict
    outputs: frozenset


def _use_private(private: bool | None, probe: Callable[[], bool]) -> bool:
    """`private` where given (True forces the private API, False the public fallback), else the probe's answer."""
    return probe() if private is None else private


def links(model: keras.Model, *, private: bool | None = None) -> Links:
    """The call graph of `model` (see Links): from layers' private `_inbound_nodes` where every layer has them,
    else from the public config."""
    if _use_private(private, lambda: all(hasattr(layer, "_inbound_nodes") for layer in model.layers)):
        return _links_from_nodes(model)
    return _links_from_config(model)


def _links_from_nodes(model: keras.Model) -> Links:
    consumers: dict[int, list] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for t in node.input_tensors:
                consumers.setdefault(id(t), []).append(layer.name)
    model_outputs = {id(t) for t in model.outputs}
    calls = {layer.name: len(layer._inbound_nodes) for layer in model.layers}
    users, outputs = {}, set()
    for layer in model.layers:
        out = layer._inbound_nodes[0].output_tensors if calls[layer.name] == 1 else ()
        if len(out) == 1:
            users[layer.name] = consumers.get(id(out[0]), [])
            if id(out[0]) in model_outputs:
                outputs.add(layer.name)
    return Links(calls, users, frozenset(outputs))


def _histories(value):
    """The [layer, node, tensor] keras_history of every tensor in a serialized call (args and kwargs)."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            yield tuple(value["config"]["keras_history"])
            return
        for v in value.values():
            yield from _histories(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _histories(v)


def _single_output(layer) -> bool:
    try:
        return len(keras.tree.flatten(layer.output)) == 1
    except (AttributeError, ValueError):
        return False


def _links_from_config(model: keras.Model) -> Links:
    layers = list(model.layers)
    if isinstance(model, keras.Sequential):  # a chain: each layer feeds the next
        calls = {layer.name: 1 for layer in layers}
        users = {a.name: [b.name] for a, b in itertools.pairwise(layers)}
        users.update({last.name: [] for last in layers[-1:]})
        return Links(calls, users, frozenset(last.name for last in layers[-1:]))
    try:
        config = model.get_config()
        nodes = {c["name"]: c["inbound_nodes"] for c in config["layers"]}
    except Exception:  # a subclassed model: no graph to read, so nothing is rewritten
        return Links({}, {}, frozenset())
    consumers: dict[tuple, list] = {}
    for name, inbound in nodes.items():
        for node in inbound:
            for history in _histories(node):
                consumers.setdefault(history, []).append(name)
    by_name = {layer.name: layer for layer in layers}
    # an InputLayer is made by its own (argument-less) node, which the config leaves out
    calls = {n: len(v) or int(isinstance(by_name.get(n), keras.layers.InputLayer)) for n, v in nodes.items()}
    users = {n: consumers.get((n, 0, 0), []) for n in nodes if calls[n] == 1 and _single_output(by_name[n])}
    outputs = {n for n in users if any(t is by_name[n].output for t in model.outputs)}
    return Links(calls, users, frozenset(outputs))


def layer_calls(model: keras.Model, name: str, *, private: bool | None = None) -> int:
    """How many times layer `name` of `model` is called (0 where it cannot be told)."""
    if _use_private(private, lambda: hasattr(model.get_layer(name), "_inbound_nodes")):
        return len(model.get_layer(name)._inbound_nodes)
    return links(model, private=False).calls.get(name, 0)


def producer(model: keras.Model, tensor, *, private: bool | None = None):
    """The layer (or nested model) of `model` that makes `tensor`, one of its symbolic tensors."""
    if _use_private(private, lambda: hasattr(tensor, "_keras_history")):
        return tensor._keras_history.operation
    for layer in reversed(model.layers):
        try:
            if any(t is tensor for t in keras.tree.flatten(layer.output)):
                return layer
        except (AttributeError, ValueError):
            continue
    raise ValueError(f"no layer of model '{model.name}' makes tensor {tensor}")


def call_inputs(model: keras.Model, layer, *, private: bool | None = None):
    """The symbolic tensor(s) of `model`'s graph that `layer` (one of its layers, called once) was called on:
    from the layer's private `_inbound_nodes` where it has them, else from the public config (a Sequential is a
    chain: the previous layer's output, or the model's input)."""
    if _use_private(private, lambda: hasattr(layer, "_inbound_nodes") and len(layer._inbound_nodes) == 1):
        tensors = list(layer._inbound_nodes[0].input_tensors)
        return tensors[0] if len(tensors) == 1 else tensors
    layers = list(model.layers)
    if isinstance(model, keras.Sequential):
        k = layers.index(layer)
        return layers[k - 1].output if k else model.inputs[0]
    config = {c["name"]: c["inbound_nodes"] for c in model.get_config()["layers"]}
    tensors = []
    for name, node, index in _histories(config[layer.name][0]):
        out = keras.tree.flatten(model.get_layer(name).output)
        tensors.append(out[index])
    return tensors[0] if len(tensors) == 1 else tensors


def call_output(model: keras.Model, layer, *, private: bool | None = None):
    """The symbolic output of `layer` (one of `model`'s layers, called once) in `model`'s graph. For a nested model
    `layer.output` is the output of its own inner graph, which `model`'s inputs do not reach: its call in
    `model` is found from its private `_inbound_nodes` where it has them, else (public) from `model.outputs` when
    it is the last layer."""
    if _use_private(private, lambda: len(getattr(layer, "_inbound_nodes", ())) == 1):
        return layer._inbound_nodes[0].output_tensors[0]
    if layer is model.layers[-1] and len(model.outputs) == 1:
        return model.outputs[0]
    out = layer.output
    return out[0] if isinstance(out, (list, tuple)) else out


def tensor_call(model: keras.Model, tensor, *, private: bool | None = None) -> tuple:
    """(layer, its input tensors, its output tensors) of the call of a layer of `model` that made `tensor`: from
    the tensor's private `_keras_history` where it has one, else from `producer` and `call_inputs` (a layer called
    once)."""
    if _use_private(private, lambda: hasattr(tensor, "_keras_history")):
        op, node_index, _ = tensor._keras_history
        node = op._inbound_nodes[node_index]
        return op, list(node.input_tensors), list(node.output_tensors)
    op = producer(model, tensor, private=False)
    return op, keras.tree.flatten(call_inputs(model, op, private=False)), keras.tree.flatten(op.output)


def _functional_class():
    try:
        from keras.src.models.functional import Functional
    except ImportError:
        return None
    return Functional


def is_graph_model(model, *, private: bool | None = None) -> bool:
    """Whether `model` is a Functional or Sequential Keras model (its graph can be read and cloned)."""
    functional = _functional_class() if private is not False else None
    if functional is not None:
        return isinstance(model, (keras.Sequential, functional))
    return isinstance(model, keras.Sequential) or (isinstance(model, keras.Model) and hasattr(model, "outputs"))


def _create_op(graph, op_type: str, inputs: list, dtypes: list, name: str, attrs: dict, *, private: bool | None = None):
    """An op of `op_type` in `graph` (a graph being traced), for ops without a Python wrapper."""
    if _use_private(private, lambda: hasattr(graph, "_create_op_internal")):
        return graph._create_op_internal(op_type, inputs, dtypes, name=name, attrs=attrs)
    return graph.create_op(op_type, inputs, dtypes, name=name, attrs=attrs)


def op_registered(op_type: str, *, private: bool | None = None) -> bool:
    """Whether this TensorFlow has an op named `op_type` (internal ops included)."""
    import tensorflow as tf

    try:
        from tensorflow.python.framework import op_def_registry
    except ImportError:
        op_def_registry = None
    if private is not False and op_def_registry is not None:
        return op_def_registry.get(op_type) is not None
    try:
        tf.Graph().create_op(op_type, [], [], name="probe")
    except Exception as e:
        return "not registered" not in str(e)
    return True


# -- oneDNN's max-pool -------------------------------------------------------------------------------------------
def _onednn_attrs(dtype, pool_size, strides, padding: str) -> dict:
    import tensorflow as tf

    A = tf.compat.v1.AttrValue
    return {
        "T": A(type=dtype.as_datatype_enum),
        "ksize": A(list=A.ListValue(i=[1, *pool_size, 1])),
        "strides": A(list=A.ListValue(i=[1, *strides, 1])),
        "padding": A(s=padding.upper().encode()),
        "data_format": A(s=b"NHWC"),
        "explicit_paddings": A(list=A.ListValue(i=[])),
        "workspace_enabled": A(b=True),
        "_kernel": A(s=b"MklNameChangeOp"),
    }


def onednn_max_pool(x, pool_size, strides, padding: str, *, private: bool | None = None):
    """NHWC max-pooling with TensorFlow's oneDNN forward and gradient ops, paired explicitly (the forward's
    workspace feeds the gradient). TensorFlow's own graph rewrite pairs them only in some processes and otherwise
    leaves the gradient to its Eigen kernel, 2-4x slower, which made whole runs 10-50% slower at random."""
    import tensorflow as tf

    @tf.custom_gradient
    def pool(x):
        graph = tf.compat.v1.get_default_graph()
        attrs = _onednn_attrs(x.dtype, pool_size, strides, padding)
        y, workspace = _create_op(
            graph, _ONEDNN_OPS[0], [x], [x.dtype, tf.uint8], "onednn_max_pool", attrs, private=private
        ).outputs

        def grad(dy):
            return _create_op(
                graph, _ONEDNN_OPS[1], [x, y, dy, workspace], [x.dtype], "onednn_max_pool_grad", attrs, private=private
            ).outputs[0]

        return y, grad

    return pool(x)


@functools.cache
def onednn_max_pool_available(dtype: str = "float32") -> bool:
    """Whether oneDNN's max-pool ops can be called directly here for `dtype` (float32, bfloat16, float16): a
    TensorFlow with oneDNN on, and no GPU (they are CPU ops). Checked once per process and dtype on a 4x4 image,
    values and gradient."""
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return False
    try:
        with tf.device("/CPU:0"):
            x = tf.cast(tf.reshape(tf.range(32.0), [2, 4, 4, 1]), dtype)

            @tf.function
            def probe(x):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    y = onednn_max_pool(x, (2, 2), (2, 2), "valid")
                    loss = tf.reduce_sum(y * y)
                return tf.cast(y, tf.float32), tf.cast(tape.gradient(loss, x), tf.float32)

            y, g = (t.numpy() for t in probe(x))
        want = np.asarray([5, 7, 13, 15, 21, 23, 29, 31], np.float32)
        return bool(np.array_equal(y.ravel(), want) and np.array_equal(g.ravel()[g.ravel() != 0], 2 * want))
    except Exception:  # a build without oneDNN, a dtype it lacks, or ops renamed in a later TensorFlow
        return False
