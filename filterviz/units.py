"""Which tensor a render of a layer maximizes and measures: the unit as the network uses it.

A layer is named by its address in the model: `conv1`, or `backbone/block_3_expand` for a layer of a model
nested in the model (any depth). Rules, applied in the (sub)model that holds the layer:

- A Conv2D, SeparableConv2D or DepthwiseConv2D with no activation whose only consumer is a BatchNormalization
  is maximized through that BN (the network never uses the raw convolution, and a negative BN scale flips it);
  it is measured after the activation that follows the BN where there is one. One whose only consumer is an
  activation layer (a ReLU, a PReLU...) is maximized on its output and measured after that activation, as a
  convolution with a built-in activation is.
- An activation layer (Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax) is maximized on its input, measured
  on its output; with `pre_activation=False` both are its output.
- A Dense layer is a classifier's units: maximized and measured on its logits (a softmax is skipped, a rank-2
  output is seen as a 1x1 map); another activation is handled as a convolution's.
- Any other layer with a built-in activation is maximized on a copy with a linear activation (so a ReLU cannot
  zero the gradient of a filter that starts inactive) and measured on its output.

Only the copies are new: the user's model and its layers are never changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .quiet import keras

from .errors import UserError, suggest
from .graphs import call_inputs, is_graph_model, layer_calls, links

__all__ = ["Unit", "ACTIVATION_LAYERS", "walk", "find", "unit", "address_model"]

ACTIVATION_LAYERS = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU,
                     keras.layers.ELU, keras.layers.Softmax)
_CONVS = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)


@dataclass(frozen=True)
class Unit:
    """How a render uses one layer: `kind` ('bn', 'activated', 'activation', 'logits', 'copy' or 'output'), `via`
    (the BN or activation layer involved, else ''), `post_via` (the layer measured after, else '') and `note`
    (in words, for `filterviz layers`)."""

    kind: str
    via: str = ""
    post_via: str = ""
    note: str = "output"


def _activation_name(layer) -> str:
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", "linear") if act is not None else "linear"


def walk(net: keras.Model, prefix: str = "") -> Iterator[tuple[str, keras.Model, object]]:
    """(address, the (sub)model holding it, layer) of every layer of `net` and of the models nested in it, in
    order; a nested graph model is not itself yielded, its layers are."""
    for layer in net.layers:
        if isinstance(layer, keras.Model) and is_graph_model(layer):
            yield from walk(layer, f"{prefix}{layer.name}/")
        else:
            yield f"{prefix}{layer.name}", net, layer


def find(net: keras.Model, address: str, valid: list[str] | None = None) -> tuple[keras.Model, object]:
    """(the (sub)model holding the layer at `address`, the layer); UserError naming close addresses if none."""
    graph, parts = net, address.split("/")
    for k, part in enumerate(parts):
        names = [layer.name for layer in graph.layers]
        if part not in names:
            known = valid if valid is not None else [a for a, _, _ in walk(net)]
            raise UserError(f"unknown layer '{address}' in model '{net.name}': {suggest(address, known)}")
        layer = graph.get_layer(part)
        if k < len(parts) - 1:
            if not (isinstance(layer, keras.Model) and is_graph_model(layer)):
                raise UserError(f"layer '{'/'.join(parts[:k + 1])}' of model '{net.name}' is not a nested model; "
                                f"address a layer of it as '{part}'")
            graph = layer
    return graph, layer


def _only_user(graph: keras.Model, name: str, graph_links) -> object | None:
    """The one layer that consumes `name`'s output in `graph`, where there is exactly one (each called once)."""
    users = graph_links.users.get(name, [])
    if len(users) != 1 or name in graph_links.outputs or graph_links.calls.get(users[0]) != 1:
        return None
    return graph.get_layer(users[0])


def unit(graph: keras.Model, layer) -> Unit:
    """The rule (see the module docstring) that applies to `layer` of `graph`."""
    act = _activation_name(layer)
    if isinstance(layer, _CONVS) and act == "linear" and layer_calls(graph, layer.name) == 1:
        g = links(graph)
        bn = _only_user(graph, layer.name, g)
        if isinstance(bn, keras.layers.BatchNormalization):
            after = _only_user(graph, bn.name, g)
            after = after if isinstance(after, ACTIVATION_LAYERS) else None
            note = f"through {bn.name}" + (f", measured after {after.name}" if after is not None else "")
            return Unit("bn", bn.name, after.name if after is not None else "", note)
        if isinstance(bn, ACTIVATION_LAYERS):
            return Unit("activated", "", bn.name, f"measured after {bn.name}")
    if isinstance(layer, ACTIVATION_LAYERS):
        return Unit("activation", layer.name, "", "its input (--post-activation: its output)")
    if isinstance(layer, keras.layers.Dense) and act in ("softmax", "linear"):
        return Unit("logits", note="logits (softmax skipped)" if act == "softmax" else "logits")
    if act != "linear":
        return Unit("copy", note=f"before its {act} (--post-activation: after)")
    return Unit("output")


def _linear_copy(layer, tensor):
    """A copy of `layer` with a linear activation, called on `tensor`: (its output, (layer, copy))."""
    config = dict(layer.get_config(), activation="linear", name=f"{layer.name}_preact")
    copy = type(layer).from_config(config)
    out = copy(tensor)
    copy.set_weights(layer.get_weights())
    return out, (layer, copy)


def unit_tensor(graph: keras.Model, layer, pre_activation: bool) -> tuple[object, tuple]:
    """The tensor of `graph` a render of `layer` uses (maximized with `pre_activation`, else measured) and the
    (source, copy) layer pairs made for it."""
    u = unit(graph, layer)
    if u.kind == "bn":
        name = u.via if pre_activation or not u.post_via else u.post_via
        return graph.get_layer(name).output, ()
    if u.kind == "activation":
        return (layer.input if pre_activation else layer.output), ()
    if u.kind == "activated" and not pre_activation:
        return graph.get_layer(u.post_via).output, ()
    if u.kind == "logits" and _activation_name(layer) == "softmax" or u.kind == "copy" and pre_activation:
        out, pair = _linear_copy(layer, layer.input)
        return out, (pair,)
    return layer.output, ()


def address_model(net: keras.Model, address: str, pre_activation: bool) -> tuple[keras.Model, tuple]:
    """A model from `net`'s inputs to the unit of the layer at `address` (see unit_tensor), through any nested
    models, and the (source, copy) pairs made; a rank-2 output (Dense) is reshaped to a 1x1 map."""
    head, _, rest = address.partition("/")
    inputs = net.inputs[0] if len(net.inputs) == 1 else net.inputs
    if rest:
        sub = net.get_layer(head)
        inner, copies = address_model(sub, rest, pre_activation)
        return keras.Model(inputs, inner(call_inputs(net, sub))), copies
    out, copies = unit_tensor(net, net.get_layer(head), pre_activation)
    if len(out.shape) == 2:
        out = keras.layers.Reshape((1, 1, int(out.shape[-1])), name=f"{head}_as_map")(out)
    return keras.Model(inputs, out), copies
