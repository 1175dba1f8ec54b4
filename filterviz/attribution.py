"""Attribution: which input pixels an output of the network depends on.

The three ReLU backward rules (Springenberg et al. 2015, "Striving for simplicity"), each a ReLU whose
gradient is replaced with `tf.custom_gradient` (TF2 has no `gradient_override_map`):

- backprop:  grad * [x > 0]                (the ordinary gradient)
- deconvnet: grad * [grad > 0]             (Zeiler & Fergus)
- guided:    grad * [grad > 0] * [x > 0]   (guided backpropagation)

A ReLU with a `max_value` (ReLU6) keeps it in the forward pass, and all three rules also pass nothing back
through a saturated unit (x >= max_value), as the true gradient does.

`swap_relus` builds a clone of the model with every ReLU replaced by a rule (the user's model is never
touched). `Attributor` runs the methods, batched over images and compiled with `tf.function`, traced once per
(method, target kind, layer): the class/filter index and the position are tensors, so changing them does not
retrace.

Methods (`raw` maps have the input's shape [N,H,W,C]; `heatmap` reduces them to [N,H,W] in [0,1]):
- saliency:          the gradient of the target w.r.t. the input pixels (heatmap: abs-max over channels);
- guided, deconvnet: the same with the ReLUs' backward rule swapped;
- smoothgrad:        the gradient averaged over `samples` noisy copies of each image (noise std = `noise` times
                     the input range), all copies in one batched compiled call;
- gradient_x_input:  gradient times input (heatmap: |sum over channels|).

Targets: `class_target(i)` is output unit i of a classifier (a final softmax is made linear, so this is the
logit; seed 001's "activate the chosen neuron, set all others to zero"); `layer_target(name, filter, position)`
is one unit of a layer's output at (y, x), the mean of one filter's map, or (filter None) the mean of the whole
layer output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .quiet import keras
import numpy as np
from .quiet import tf

from .errors import UserError, suggest
from .models import LoadedModel, compose_front
from .graphs import is_graph_model, producer
from .rewrites import clone_with
from .targets import Target, parse_methods, parse_target

__all__ = [
    "RULES",
    "relu_rule",
    "swap_relus",
    "Attributor",
    "attribute",
]

RULES = ("backprop", "deconvnet", "guided")
_METHOD_RULE = {
    "saliency": "backprop",
    "guided": "guided",
    "deconvnet": "deconvnet",
    "smoothgrad": "backprop",
    "gradient_x_input": "backprop",
}


# -- the backward rules ----------------------------------------------------------------------------------
def relu_rule(rule: str, max_value: float | None = None) -> Callable[[tf.Tensor], tf.Tensor]:
    """A ReLU (capped at `max_value` if given) whose gradient follows `rule` (backprop, deconvnet or guided)."""
    if rule not in RULES:
        raise UserError(f"unknown ReLU rule {rule!r}: {suggest(str(rule), RULES)}")

    @tf.custom_gradient
    def rule_relu(x):
        y = tf.nn.relu(x) if max_value is None else tf.minimum(tf.nn.relu(x), tf.cast(max_value, x.dtype))

        def grad(dy):
            zero = tf.zeros_like(dy)
            if rule == "backprop":
                keep = x > 0
            elif rule == "deconvnet":
                keep = dy > 0
            else:
                keep = tf.logical_and(dy > 0, x > 0)
            if max_value is not None:
                keep = tf.logical_and(keep, x < tf.cast(max_value, x.dtype))
            return tf.where(keep, dy, zero)

        return y, grad

    rule_relu.__name__ = f"{rule}_relu"
    # its own small graph: traced inside a caller's graph, tf.custom_gradient registers a gradient function in
    # TensorFlow's global registry that holds the caller's graph for good (params.guarded_sigmoid); called eagerly
    # (a clone from swap_relus), new shapes are generalized rather than each traced again
    return tf.function(rule_relu, autograph=False, reduce_retracing=True)


def _act_name(act) -> str:
    return getattr(act, "__name__", "") if act is not None else ""


def _output_layer(net: keras.Model):
    """The layer that makes the model's (first) output, looking inside nested models."""
    layer = producer(net, net.outputs[0])
    if isinstance(layer, keras.Model) and getattr(layer, "outputs", None):
        return _output_layer(layer)
    return layer


def _as_keras(model: keras.Model | LoadedModel) -> keras.Model:
    net = model.model if isinstance(model, LoadedModel) else model
    if not isinstance(net, keras.Model):
        raise UserError(f"attribution needs a Keras model, got {type(net).__name__}")
    if not is_graph_model(net):
        raise UserError(
            f"model '{net.name}' is a subclassed Keras model; attribution needs a Functional or Sequential model"
        )
    return net


def swap_relus(
    model: keras.Model | LoadedModel, rule: str, *, linear_output: bool = False, require_relu: bool = True
) -> tuple[keras.Model, int]:
    """A clone of `model`, with the same weights, whose ReLUs follow `rule`. Returns (clone, ReLUs swapped).

    Swapped: layers with `activation='relu'` (or relu6), `Activation('relu')` layers, and `ReLU` layers (keeping
    `max_value`; a leaky or thresholded ReLU layer is left as it is), also inside nested models. With
    `linear_output`, a softmax on the final layer is made linear. The user's model is not changed.
    """
    net = _as_keras(model)
    relu_rule(rule)  # validate the name
    final = _output_layer(net) if linear_output else None
    swapped = [0]

    def clone(layer):
        if isinstance(layer, keras.layers.ReLU):
            if float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0:
                swapped[0] += 1
                mv = None if layer.max_value is None else float(layer.max_value)
                return keras.layers.Activation(relu_rule(rule, mv), name=layer.name)
        if isinstance(layer, keras.layers.Softmax) and layer is final:
            return keras.layers.Activation("linear", name=layer.name)
        new = layer.__class__.from_config(layer.get_config())
        name = _act_name(getattr(layer, "activation", None))
        if name == "relu":
            new.activation = relu_rule(rule)
            swapped[0] += 1
        elif name == "relu6":
            new.activation = relu_rule(rule, 6.0)
            swapped[0] += 1
        elif name == "softmax" and layer is final:
            new.activation = keras.activations.linear
        return new

    try:
        copy = clone_with(net, clone, recursive=True)
    except UserError:
        raise
    except Exception as e:  # pragma: no cover - unusual graphs
        first = str(e).splitlines()[0][:160]
        raise UserError(f"model '{net.name}' could not be cloned for attribution: {first}") from None
    if require_relu and swapped[0] == 0:
        raise UserError(
            f"model '{net.name}' has no ReLU, so the '{rule}' rule changes nothing; "
            "use method 'saliency' (or a model with ReLU activations)"
        )
    return copy, swapped[0]


def _check_options(samples, noise, batch) -> None:
    """Raise a UserError naming the first bad SmoothGrad or batching option."""
    if not (isinstance(samples, (int, np.integer)) and 1 <= samples <= 1024):
        raise UserError(f"bad samples {samples!r}: an integer from 1 to 1024")
    if not (isinstance(noise, (int, float, np.number)) and 0.0 <= float(noise) <= 10.0):
        raise UserError(f"bad noise {noise!r}: a number from 0 to 10 (fraction of the input range)")
    if not (isinstance(batch, (int, np.integer)) and batch >= 1):
        raise UserError(f"bad batch {batch!r}: a positive integer")


def _check_map(target: Target, shape: tuple) -> None:
    """Raise a UserError if a layer target's filter or position does not exist in its output `shape`."""
    if len(shape) != 4:
        raise UserError(f"layer '{target.layer}' has output shape {shape}; a layer target needs a feature map")
    if target.index is not None and not 0 <= target.index < shape[-1]:
        raise UserError(
            f"filter index {target.index} is out of range for layer '{target.layer}': valid 0 to {shape[-1] - 1}"
        )
    if target.position is not None:
        y, x = target.position
        if not (0 <= y < shape[1] and 0 <= x < shape[2]):
            raise UserError(f"position y={y}, x={x} is outside layer '{target.layer}''s {shape[1]}x{shape[2]} map")


def _target_score(out: tf.Tensor, variant: str, index, position) -> tf.Tensor:
    """The score whose gradient is the attribution, summed over the batch: a class logit, the layer's mean, one
    filter's mean, or one unit (`variant`, see targets.Target)."""
    if variant == "class":
        return tf.reduce_sum(tf.gather(out, index, axis=1))
    if variant == "layer":
        return tf.reduce_sum(tf.reduce_mean(out, axis=[1, 2, 3]))
    fmap = tf.gather(out, index, axis=3)
    if variant == "filter":
        return tf.reduce_sum(tf.reduce_mean(fmap, axis=[1, 2]))
    return tf.reduce_sum(fmap[:, position[0], position[1]])


class Attributor:
    """Compiled attribution maps for one model.

    The ReLU-swapped clones are built on first use and kept; each (method, target variant, layer) gets one
    `tf.function` with a fixed input signature, so it is traced once (`traces` counts traces per key, `calls`
    counts compiled calls per key). `samples` and `noise` are SmoothGrad's number of noisy copies and noise
    standard deviation as a fraction of the input range. `batch` is the most images per compiled call
    (SmoothGrad runs batch x samples copies at once).
    """

    def __init__(
        self,
        model: keras.Model | LoadedModel,
        *,
        samples: int = 16,
        noise: float = 0.15,
        seed: int = 0,
        batch: int = 8,
    ) -> None:
        lm = model if isinstance(model, LoadedModel) else LoadedModel(model.name, model)
        # the user's network (its layers are the ones a layer target names) is cloned; the front that turns 0-255
        # pixels into its input (--input-range, --preprocess) goes before each head as it is
        self.net, self.front = _as_keras(lm.net), lm.front
        self.name = lm.name
        self.input_range = lm.input_range
        _check_options(samples, noise, batch)
        self.samples, self.noise, self.seed, self.batch = int(samples), float(noise), int(seed), int(batch)
        self.channels = int(self.net.inputs[0].shape[-1])
        self.traces: dict[tuple, int] = {}
        self.calls: dict[tuple, int] = {}
        self._clones: dict[str, keras.Model] = {}
        self._heads: dict[tuple, keras.Model] = {}
        self._fns: dict[tuple, tf.types.experimental.GenericFunction] = {}

    @property
    def functions(self) -> dict[tuple, tf.types.experimental.GenericFunction]:
        """A copy of the compiled function of each (method, target variant, layer) used so far."""
        return dict(self._fns)

    # -- models ------------------------------------------------------------------------------------------
    def _clone(self, rule: str) -> keras.Model:
        if rule not in self._clones:
            self._clones[rule] = swap_relus(self.net, rule, linear_output=True, require_relu=rule != "backprop")[0]
        return self._clones[rule]

    def _head(self, rule: str, target: Target) -> keras.Model:
        key = (rule, target.kind, target.layer)
        if key not in self._heads:
            clone = self._clone(rule)
            if target.kind != "class":
                names = [layer.name for layer in clone.layers]
                if target.layer not in names:
                    raise UserError(f"unknown layer '{target.layer}' in model '{self.name}': "
                                    f"{suggest(target.layer, names)}")
                clone = keras.Model(clone.inputs, clone.get_layer(target.layer).output)
            self._heads[key] = compose_front(self.front, clone)
        return self._heads[key]

    def prepare(self, methods: Sequence[str]) -> None:
        """Build the clones `methods` need now (a model without ReLU fails here, before any work)."""
        for m in parse_methods(methods):
            self._clone(_METHOD_RULE[m])

    def check(self, target: Target, image_shape: tuple[int, ...]) -> None:
        """Raise a UserError if `target` does not exist in this model for images of `image_shape` [H,W,C]."""
        if target.kind == "class":
            shape = tuple(self.net.outputs[0].shape)
            if len(shape) != 2:
                raise UserError(
                    f"class targets need a model with a classifier (output [batch, classes]); model '{self.name}' "
                    f"outputs {shape}; use --target layer:NAME[:FILTER] instead"
                )
            n = int(shape[-1])
            if not 0 <= target.index < n:
                raise UserError(f"class index {target.index} is out of range for model '{self.name}': "
                                f"valid 0 to {n - 1}")
            return
        head = self._head("backprop", target)
        _check_map(target, tuple(head.compute_output_spec(keras.KerasTensor((1, *image_shape))).shape))

    # -- compiled pieces ---------------------------------------------------------------------------------
    def _function(self, method: str, target: Target):
        key = (method, target.variant, target.layer)
        if key in self._fns:
            return key, self._fns[key]
        head = self._head(_METHOD_RULE[method], target)
        variant, samples, seed = target.variant, self.samples, self.seed
        self.traces[key] = 0

        def grad_of(x, index, position):
            with tf.GradientTape() as tape:
                tape.watch(x)
                score = _target_score(tf.cast(head(x, training=False), tf.float32), variant, index, position)
            return tape.gradient(score, x)

        def fn(images, index, position, sigma):
            self.traces[key] += 1
            if method == "smoothgrad":
                n = tf.shape(images)[0]
                noisy = tf.repeat(images, samples, axis=0)  # [n*samples, H, W, C], image-major
                noisy = noisy + sigma * tf.random.stateless_normal(tf.shape(noisy), seed=[seed, 0])
                g = grad_of(noisy, index, position)
                shape = tf.concat([[n, samples], tf.shape(images)[1:]], axis=0)
                return tf.reduce_mean(tf.reshape(g, shape), axis=1)
            g = grad_of(images, index, position)
            return g * images if method == "gradient_x_input" else g

        sig = [
            tf.TensorSpec([None, None, None, self.channels], tf.float32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([2], tf.int32),
            tf.TensorSpec([], tf.float32),
        ]
        self._fns[key] = tf.function(fn, input_signature=sig, reduce_retracing=True)
        self.calls[key] = 0
        return key, self._fns[key]

    # -- host side ---------------------------------------------------------------------------------------
    def __call__(self, images: np.ndarray, method: str, target: Target) -> np.ndarray:
        """Raw attribution maps [N,H,W,C] (float32) of `images` [N,H,W,C] in model-input space."""
        (method,) = parse_methods([method])
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[-1] != self.channels:
            raise UserError(f"images must be [N,H,W,{self.channels}] for model '{self.name}', got {images.shape}")
        self.check(target, images.shape[1:])
        key, fn = self._function(method, target)
        index = tf.constant(0 if target.index is None else target.index, tf.int32)
        position = tf.constant(target.position or (0, 0), tf.int32)
        sigma = tf.constant(self.noise * (self.input_range[1] - self.input_range[0]), tf.float32)
        out = []
        for s in range(0, len(images), self.batch):
            self.calls[key] += 1
            out.append(fn(tf.constant(images[s : s + self.batch]), index, position, sigma).numpy())
        return np.concatenate(out).astype(np.float32)


def attribute(
    model: keras.Model | LoadedModel,
    images: np.ndarray,
    methods: str | Sequence[str] = "saliency",
    target: Target | str = "class:0",
    **options,
) -> dict[str, np.ndarray]:
    """Raw maps {method: [N,H,W,C]} of `images` (model-input space) for each method; options go to Attributor."""
    att = Attributor(model, **options)
    tgt = parse_target(target) if isinstance(target, str) else target
    return {m: att(images, m, tgt) for m in parse_methods(methods)}
