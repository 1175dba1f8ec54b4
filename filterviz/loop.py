"""The compiled ascent loop: the pictures' variables and the traced functions that start, step and score them.

One `AscentLoop` holds a batch of pictures (one or more per filter, a filter index per picture as a tensor) in
tf.Variables and three kinds of tf.function, each with a fixed input signature so that it is traced once and
serves every chunk of a layer: `init_fn` (random draws or a start image), one `segment_fns[coarse]` per
resolution (a tf.while_loop of `n` gradient-ascent steps: each picture maximizes its own filter's objective
and is updated in place) and `final_fn` (the pictures in model-input space and their scores). The host side
(chunks, padding, progress, rescue) is ascent.LayerRenderer's.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

from .quiet import tf

from . import canvas, objectives
from .heads import ChannelHead
from .params import Parameterization
from .settings import RenderSettings
from .transforms import Transform
from .update import ascend, learning_rate

__all__ = ["AscentLoop", "replicated", "PICTURE_VERSION"]

# Raised whenever the same settings give different pictures, so that a run never resumes from pictures the code
# no longer makes (results.read_partial): 2 = the guard measured from each picture's mean (2026-11-26) and
# `texture`'s zooms of 0.6-1.5.
PICTURE_VERSION = 2


def replicated(fn: Callable, strategy: tf.distribute.Strategy | None, chunk: int) -> Callable:
    """fn(ids[chunk], ...) -> tensors [chunk, ...], run on every replica with its own slice of ids[batch];
    the replicas' results are concatenated in order. Without a strategy, fn itself.

    Always a new partial object: TensorFlow counts traces per code object (a method's, a closure's), so the
    functions of every loop would count as one and warn of retracing after a few layers; a partial has no
    code object, so each loop's functions are counted on their own (each is traced once)."""
    if strategy is None:
        return functools.partial(fn)

    def on_replica(ids: tf.Tensor, *args):
        r = tf.distribute.get_replica_context().replica_id_in_sync_group
        return fn(ids[r * chunk : (r + 1) * chunk], *args)

    def run(ids: tf.Tensor, *args):
        out = strategy.run(on_replica, args=(ids, *args))
        if out is None:
            return None
        return tf.nest.map_structure(lambda x: tf.concat(strategy.experimental_local_results(x), axis=0), out)

    return functools.partial(run)


class AscentLoop:
    """The variables and compiled functions for `chunk` pictures per replica (`batch` per call in all).

    `model` is the network the loop runs (its output the layer, or with `head` the trunk before the layer's
    own-filter head); `start` a canvas.Start or None; `clip` keeps raw pixels in range; `loss_scale` guards
    float16 gradients against underflow. `traces` counts Python traces of the step loop."""

    def __init__(
        self,
        *,
        settings: RenderSettings,
        model: tf.keras.Model,
        head: ChannelHead | None,
        objective: objectives.Objective,
        param: Parameterization,
        transform: Transform,
        input_range: tuple[float, float],
        chunk: int,
        strategy: tf.distribute.Strategy | None = None,
        start: canvas.Start | None = None,
        clip: bool = False,
        loss_scale: float = 1.0,
    ) -> None:
        self.settings, self.model, self.head, self.objective = settings, model, head, objective
        self.param, self.transform, self.input_range = param, transform, input_range
        self.chunk, self.strategy, self.start, self.clip, self.loss_scale = chunk, strategy, start, clip, loss_scale
        self.batch = chunk * (strategy.num_replicas_in_sync if strategy is not None else 1)
        self.coarse_steps = int(round(settings.coarse * settings.steps))
        self.traces = 0
        self._make_variables()
        self._compile()

    # -- construction --------------------------------------------------------------------------------
    def _make_variables(self) -> None:
        shape = [self.chunk] + self.param.shape
        with self.strategy.scope() if self.strategy is not None else contextlib.nullcontext():
            # per replica (sync on read): each replica keeps and updates its own images
            local = dict(trainable=False)
            if self.strategy is not None:
                local.update(synchronization=tf.VariableSynchronization.ON_READ,
                             aggregation=tf.VariableAggregation.NONE)
            self.variable = tf.Variable(tf.zeros(shape), name="params", **local)
            self._m = tf.Variable(tf.zeros(shape), name="adam_m", **local)
            self._v = tf.Variable(tf.zeros(shape), name="adam_v", **local)
            self._bad = tf.Variable(tf.zeros([self.chunk], tf.bool), name="nonfinite", **local)
            self._alpha = None  # the accumulated absolute gradient of each picture, for its transparency map
            if self.settings.keeps_alpha:
                side = self.param.size
                self._alpha = tf.Variable(tf.zeros([self.chunk, side, side]), name="alpha", **local)

    def _compile(self) -> None:
        """The tf.functions, each with a fixed signature so it is traced once: init, one compiled loop per
        resolution (full size, and half size for the first `coarse` share of the steps), and the final score."""
        ids = tf.TensorSpec([self.batch], tf.int32)
        scalar = tf.TensorSpec([], tf.int32)
        self.init_fn = tf.function(replicated(self._init, self.strategy, self.chunk), input_signature=[ids])
        signature = [ids, scalar, scalar, tf.TensorSpec([], tf.float32)]
        self.segment_fns = {
            coarse: tf.function(replicated(functools.partial(self._segment, coarse=coarse), self.strategy, self.chunk),
                                input_signature=signature, jit_compile=self.settings.xla)
            for coarse in ((False, True) if self.coarse_steps else (False,))
        }
        self.final_fn = tf.function(replicated(self._final, self.strategy, self.chunk), input_signature=[ids])

    @property
    def keeps_alpha(self) -> bool:
        """Whether `final_fn` also returns each picture's transparency map."""
        return self._alpha is not None

    @property
    def functions(self) -> tuple[Callable, ...]:
        """The tf.functions: init, the loop of each resolution, the final score."""
        return (self.init_fn, *self.segment_fns.values(), self.final_fn)

    def segments(self) -> list[tuple[int, int, bool]]:
        """(first step, number of steps, coarse) of each call of the compiled loop, for every chunk."""
        steps, seg, c = self.settings.steps, self.settings.segment, self.coarse_steps
        return [(s, min(seg, hi - s), coarse) for lo, hi, coarse in ((0, c, True), (c, steps, False))
                for s in range(lo, hi, seg)]

    # -- compiled pieces -----------------------------------------------------------------------------
    def _model_input(self, unit: tf.Tensor) -> tf.Tensor:
        lo, hi = self.input_range
        return lo + (hi - lo) * unit

    def _score(self, unit: tf.Tensor, shown: tf.Tensor, filters: tf.Tensor) -> tf.Tensor:
        out = self.model(self._model_input(shown), training=False)
        if self.head is not None:
            ctx = objectives.Context(unit, None, filters, self.head.maps(out, filters))
        else:
            ctx = objectives.Context(unit, tf.cast(out, tf.float32), filters)
        return self.objective(ctx)

    def _init(self, ids: tf.Tensor) -> None:
        """Start the pictures `ids` (canvas.picture_ids): random draws, or the start image, where each filter's
        further pictures (diversity) get a tenth of their random draw added so that they can part."""
        p = self.param.init(ids, self.settings.seed)
        if self.start is not None:
            centre = 0.5 if self.param.kind == "pixel" else 0.0
            further = tf.reshape(ids >= canvas.COPY_STRIDE, [-1] + [1] * len(self.param.shape))
            p = self.start.params + tf.where(further, 0.1 * (p - centre), 0.0)
        self.variable.assign(p)
        for v in (self._m, self._v, self._bad) + ((self._alpha,) if self._alpha is not None else ()):
            v.assign(tf.zeros_like(v))

    def _picture(self) -> tf.Tensor:
        """The pictures being optimized, in unit space (the whole canvas)."""
        return self.param.to_image(self.variable, None if self.start is None else self.start.offset)

    def _step_score(self, unit: tf.Tensor, filters: tf.Tensor, seed: tf.Tensor, coarse: bool) -> tf.Tensor:
        """Each picture's score at one step: of what the network sees (random crops of the canvas, then the
        random transforms, at half size when `coarse`), averaged over its crops, minus the pull to the start."""
        crops = self.settings.crops
        views = canvas.random_crops(unit, crops, self.settings.size, seed) if crops > 1 else unit
        shown = self.transform(views, seed)
        if coarse:  # coarse to fine: the network sees a half-size view (a quarter of the FLOPs)
            shown = tf.nn.avg_pool2d(shown, 2, 2, "VALID")
        score = self._score(views, shown, tf.tile(filters, [crops]) if crops > 1 else filters)
        if crops > 1:  # crop by crop: [crops, N]
            score = tf.reduce_mean(tf.reshape(score, [crops, -1]), axis=0)
        if self.start is not None and self.settings.init_weight:
            score -= self.settings.init_weight * tf.reduce_mean(tf.square(unit - self.start.unit), axis=[1, 2, 3])
        return score

    def _gradient(self, filters: tf.Tensor, i: tf.Tensor, coarse: bool) -> tuple[tf.Tensor, tf.Tensor, list]:
        """Each picture's score at step i, and the gradients of their sum: of the parameters and, where the
        transparency map is kept, of the picture (each picture's score depends only on its own parameters and,
        with diversity, on its filter's other pictures)."""
        seed = tf.stack([tf.constant(self.settings.seed, tf.int32), i])
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(self.variable)
            unit = self._picture()
            score = self._step_score(unit, filters, seed, coarse)
            scaled = score * self.loss_scale if self.loss_scale != 1.0 else score  # float16 underflow guard
        grads = tape.gradient(scaled, [self.variable] + ([unit] if self._alpha is not None else []))
        if self.loss_scale != 1.0:
            grads = [x / self.loss_scale for x in grads]
        return score, grads[0], grads[1:]

    def _segment(
        self, ids: tf.Tensor, start: tf.Tensor, n: tf.Tensor, lr: tf.Tensor, *, coarse: bool = False
    ) -> tf.Tensor:
        self.traces += 1
        filters = tf.math.floormod(ids, canvas.COPY_STRIDE)
        axes = list(range(1, len(self.variable.shape)))

        def body(i: tf.Tensor, trace: tf.TensorArray):
            score, g, picture_grad = self._gradient(filters, i, coarse)
            ok = tf.logical_and(tf.reduce_all(tf.math.is_finite(g), axis=axes), tf.math.is_finite(score))
            g = tf.where(tf.reshape(ok, [-1] + [1] * len(axes)), g, tf.zeros_like(g))
            self._bad.assign(tf.logical_or(self._bad, tf.logical_not(ok)))
            if self._alpha is not None:  # MaCo's transparency: where the gradient has been large
                gain = tf.reduce_mean(tf.abs(picture_grad[0]), axis=3)
                self._alpha.assign_add(tf.where(tf.reshape(ok, [-1, 1, 1]), gain, tf.zeros_like(gain)))
            step_lr = learning_rate(self.settings.schedule, i, lr, self.settings.steps)
            # raw pixels shown as rendered are kept in range, so the grid shows exactly what was optimized
            ascend(self.settings.optimizer, self.variable, self._m, self._v, g, i, step_lr, clip=self.clip)
            return i + 1, trace.write(i - start, score)

        trace = tf.TensorArray(tf.float32, size=n)
        _, trace = tf.while_loop(lambda i, _: i < start + n, body, [start, trace])
        return tf.transpose(trace.stack())  # [chunk, n]

    def _final(self, ids: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """The pictures (the canvas's centre) in model-input space, their score, the NaN flags and, where kept,
        the transparency maps: divided by their 99th percentile (a few outlying pixels do not fade the rest)
        and clipped to 0..1."""
        unit = canvas.centre(self._picture(), self.settings.size)
        filters = tf.math.floormod(ids, canvas.COPY_STRIDE)
        out = (self._model_input(unit), self._score(unit, unit, filters), self._bad.read_value())
        if self._alpha is None:
            return out
        acc = canvas.centre(self._alpha.read_value(), self.settings.size)
        flat = tf.sort(tf.reshape(acc, [tf.shape(acc)[0], -1]), axis=1)
        high = flat[:, int(0.99 * (self.settings.size**2 - 1))][:, None, None]
        return out + (tf.clip_by_value(acc / (high + 1e-12), 0.0, 1.0),)
