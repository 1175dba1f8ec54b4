"""The engine: activation maximization of every filter of a layer in one compiled tf.while_loop.

A batch holds one image per filter (with `diversity` K, K consecutive images per filter; see filterviz.canvas
for the canvas, its random crops and a start from the user's image). Each image maximizes its own filter's
objective, its gradient is normalized by its own norm, and it is updated in place in a tf.Variable. Filter indices are tensors and
the last chunk is padded, so one trace of the loop serves every chunk of a layer. The loop runs in
segments of `segment` steps so that a progress bar can advance inside a chunk without a host round-trip
per step.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from . import canvas, metrics, objectives, transforms
from .chunks import ChunkOutput
from .errors import UserError
from .models import Extractor
from .objectives import build_objective
from .precision import resolve_precision
from .graphs import onednn_max_pool_available
from .rewrites import copy_weights, graph_cost, loop_model
from .settings import RenderSettings
from .update import ascend, learning_rate

__all__ = [
    "build_objective",  # from filterviz.objectives
    "LayerRenderer",
    "ChunkOutput",  # from filterviz.chunks
    "auto_chunk",
    "resolve_precision",  # from filterviz.precision
]


def auto_chunk(
    extractor: Extractor, size: int, channels: int, max_memory_gb: float, cap: int = 64, precision: str = "float32"
) -> int:
    """The most images per batch whose forward+backward activations fit in `max_memory_gb`.

    Under mixed precision the activations take 2 bytes instead of 4, so twice as many images fit."""
    _, act_bytes = graph_cost(extractor.model, size, channels)
    if precision.startswith("mixed_"):
        act_bytes //= 2
    per_image = max(1, 3 * act_bytes)  # forward activations, their gradients, and workspace
    return int(max(1, min(cap, (max_memory_gb * 2**30) // per_image)))


class LayerRenderer:
    """The compiled ascent loop for one extractor and one set of settings.

    It is traced once (`traces` counts Python traces) and reused for every chunk of the layer, and for later
    calls with other filters (a sweep or a training callback reuses it across jobs and epochs).
    `max_filters` (the most filters one call will render) lets it pick balanced chunks.

    With a `strategy` (tf.distribute.MirroredStrategy) every replica renders its own `chunk` of filters: one
    call of the compiled loop covers `batch = chunk * replicas` filters, the images live in per-replica
    variables and the model in a mirrored copy of its weights.
    """

    def __init__(
        self,
        extractor: Extractor,
        settings: RenderSettings,
        *,
        channels: int = 3,
        input_range: tuple[float, float] = (0.0, 255.0),
        objective: objectives.Objective | None = None,
        max_filters: int | None = None,
        single_channel: bool = True,
        strategy: tf.distribute.Strategy | None = None,
        photos: metrics.NaturalPhotos | None = None,
    ) -> None:
        self.extractor, self.settings, self.input_range = extractor, settings, input_range
        if strategy is None and settings.mirrored:  # split the filters across all visible GPUs (or the CPU)
            strategy = tf.distribute.MirroredStrategy()
        self.strategy = strategy
        self.replicas = strategy.num_replicas_in_sync if strategy is not None else 1
        # the layer's usual response to photos at this size: shared with the caller's metrics where it has them
        self.photos = photos if photos is not None else metrics.NaturalPhotos(settings.size, channels)
        self.default_objective = objective is None  # the settings' own objective (not a caller's)
        self._single_channel_allowed = single_channel
        self.objective = objective if objective is not None else self._settings_objective()
        # compute only each image's own filter of the target layer where the layer and objective allow it
        self._head = extractor.head if single_channel and self.objective.own_filter_only else None
        self._source = self._head.trunk if self._head is not None else extractor.model
        self._model = self._loop_model()
        self._loss_scale = 1024.0 if self.precision == "mixed_float16" else 1.0
        self.pictures = settings.diversity  # pictures per filter, one after another in the batch
        self.chunk = self._chunk(channels, max_filters)
        self.batch = self.chunk * self.replicas  # pictures per call of the compiled loop
        self.transforms = canvas.transforms_for(settings, extractor)  # 'auto' resolved from the receptive field
        self.param = canvas.make_param(settings, channels, self.photos, texture=self.transforms == "texture")
        self._start = canvas.read_start(settings.init, self.param) if settings.init else None
        self._clip = settings.param == "pixel" and settings.display_mode == "range"
        self.transform = transforms.named(self.transforms, settings.size)
        self._make_variables()
        self.traces = 0
        self._compile()

    # -- construction steps ------------------------------------------------------------------------
    def _settings_objective(self) -> objectives.Objective:
        natural = None
        if self.settings.specificity:  # each filter's usual response to photos (of its positive part)
            natural = self.photos.means(self.extractor.model, relu=True)
        return build_objective(self.settings, natural)

    def _loop_model(self) -> tf.keras.Model:
        """The loop runs a clone of the extractor: computing in float16/bfloat16 under mixed precision (images
        stay float32), with each ReLU that feeds a max-pool moved after it (same values, less memory traffic),
        and on CPUs with max-pools whose oneDNN gradient is always used (TensorFlow's rewrite sometimes falls
        back). Sets `precision`: 'auto' falls back to float32 where the model cannot be copied to bfloat16."""
        self.precision = resolve_precision(self.settings.precision)
        try:
            return loop_model(self._source, self.precision, strategy=self.strategy, relu_after_pool=True,
                              onednn_pool=onednn_max_pool_available())
        except UserError as e:
            if (self.settings.precision != "auto" and self.precision != "float32") or self.strategy is not None:
                raise UserError(f"layer '{self.extractor.layer}': {e}") from None
            self.precision = "float32"
            return self._source

    def _chunk(self, channels: int, max_filters: int | None) -> int:
        """Images per replica per call: from the settings or the memory budget (which the network's views, `crops`
        per image, share), balanced so that the padded last chunk of `max_filters` wastes little; a whole number
        of each filter's `pictures`."""
        s, k = self.settings, self.pictures
        chunk = s.chunk or max(1, auto_chunk(self.extractor, s.size, channels, s.max_memory_gb,
                                             precision=self.precision) // s.crops)
        if max_filters:
            per_replica = math.ceil(max_filters * k / self.replicas)
            chunk = math.ceil(per_replica / math.ceil(per_replica / chunk))
        return max(k, chunk // k * k)

    def _make_variables(self) -> None:
        shape = [self.chunk] + self.param.shape
        with self.strategy.scope() if self.strategy is not None else contextlib.nullcontext():
            # per replica (sync on read): each replica keeps and updates its own images
            local = dict(trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                         aggregation=tf.VariableAggregation.NONE) if self.strategy is not None else dict(trainable=False)
            self._p = tf.Variable(tf.zeros(shape), name="params", **local)
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
        self._init_fn = tf.function(self._replicated(self._init), input_signature=[ids])
        signature = [ids, scalar, scalar, tf.TensorSpec([], tf.float32)]
        self._coarse_steps = int(round(self.settings.coarse * self.settings.steps))
        self._segment_fns = {
            coarse: tf.function(self._replicated(functools.partial(self._segment, coarse=coarse)),
                                input_signature=signature, jit_compile=self.settings.xla)
            for coarse in ((False, True) if self._coarse_steps else (False,))
        }
        self._final_fn = tf.function(self._replicated(self._final), input_signature=[ids])

    # -- compiled pieces -------------------------------------------------------------------------
    def _replicated(self, fn: Callable) -> Callable:
        """fn(ids[chunk], ...) -> tensors [chunk, ...], run on every replica with its own slice of ids[batch];
        the replicas' results are concatenated in order. Without a strategy, fn itself.

        Always a new partial object: TensorFlow counts traces per code object (a method's, a closure's), so the
        functions of every renderer would count as one and warn of retracing after a few layers; a partial has no
        code object, so each renderer's functions are counted on their own (each is traced once)."""
        if self.strategy is None:
            return functools.partial(fn)
        chunk = self.chunk

        def on_replica(ids: tf.Tensor, *args):
            r = tf.distribute.get_replica_context().replica_id_in_sync_group
            return fn(ids[r * chunk : (r + 1) * chunk], *args)

        def run(ids: tf.Tensor, *args):
            out = self.strategy.run(on_replica, args=(ids, *args))
            if out is None:
                return None
            return tf.nest.map_structure(
                lambda x: tf.concat(self.strategy.experimental_local_results(x), axis=0), out
            )

        return functools.partial(run)

    def _model_input(self, unit: tf.Tensor) -> tf.Tensor:
        lo, hi = self.input_range
        return lo + (hi - lo) * unit

    @property
    def single_channel(self) -> bool:
        """Whether the loop computes only each image's own filter of the target layer (models.ChannelHead)."""
        return self._head is not None

    # read-only views for callers and tests
    @property
    def source(self) -> tf.keras.Model:
        """The model whose weights the loop uses: the extractor's model, or its channel head's trunk."""
        return self._source

    @property
    def model(self) -> tf.keras.Model:
        """The model the loop runs: `source` itself, or its clone (mixed precision, ReLUs after pools, oneDNN)."""
        return self._model

    @property
    def loss_scale(self) -> float:
        """The factor the score is multiplied by before its gradient (1.0 except under mixed_float16)."""
        return self._loss_scale

    @property
    def variable(self) -> tf.Variable:
        """The parameters being optimized for the current chunk: float32 whatever the precision."""
        return self._p

    @property
    def segments(self) -> list[tuple[int, int, bool]]:
        """(first step, number of steps, coarse) of each call of the compiled loop, for every chunk."""
        return self._segments()

    @property
    def functions(self) -> tuple[Callable, ...]:
        """The tf.functions: init, the loop of each resolution, the final score."""
        return (self._init_fn, *self._segment_fns.values(), self._final_fn)

    def _score(self, unit: tf.Tensor, shown: tf.Tensor, filters: tf.Tensor) -> tf.Tensor:
        out = self._model(self._model_input(shown), training=False)
        if self._head is not None:
            ctx = objectives.Context(unit, None, filters, self._head.maps(out, filters))
        else:
            ctx = objectives.Context(unit, tf.cast(out, tf.float32), filters)
        return self.objective(ctx)

    def _init(self, ids: tf.Tensor) -> None:
        """Start the pictures `ids` (canvas.picture_ids): random draws, or the start image, where each filter's
        further pictures (diversity) get a tenth of their random draw added so that they can part."""
        p = self.param.init(ids, self.settings.seed)
        if self._start is not None:
            centre = 0.5 if self.param.kind == "pixel" else 0.0
            further = tf.reshape(ids >= canvas.COPY_STRIDE, [-1] + [1] * len(self.param.shape))
            p = self._start.params + tf.where(further, 0.1 * (p - centre), 0.0)
        self._p.assign(p)
        self._m.assign(tf.zeros_like(self._m))
        self._v.assign(tf.zeros_like(self._v))
        self._bad.assign(tf.zeros_like(self._bad))
        if self._alpha is not None:
            self._alpha.assign(tf.zeros_like(self._alpha))

    def _picture(self) -> tf.Tensor:
        """The pictures being optimized, in unit space (the whole canvas)."""
        return self.param.to_image(self._p, None if self._start is None else self._start.offset)

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
        if self._start is not None and self.settings.init_weight:
            score -= self.settings.init_weight * tf.reduce_mean(tf.square(unit - self._start.unit), axis=[1, 2, 3])
        return score

    def _segment(
        self, ids: tf.Tensor, start: tf.Tensor, n: tf.Tensor, lr: tf.Tensor, *, coarse: bool = False
    ) -> tf.Tensor:
        self.traces += 1
        filters = tf.math.floormod(ids, canvas.COPY_STRIDE)
        axes = list(range(1, len(self._p.shape)))
        per_image = [-1] + [1] * len(axes)
        seed0 = tf.constant(self.settings.seed, tf.int32)

        def body(i: tf.Tensor, trace: tf.TensorArray):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(self._p)
                unit = self._picture()
                score = self._step_score(unit, filters, tf.stack([seed0, i]), coarse)
                scaled = score * self._loss_scale if self._loss_scale != 1.0 else score  # float16 underflow guard
            # sums over images; each depends only on its own (and, with diversity, on its filter's other pictures)
            grads = tape.gradient(scaled, [self._p] + ([unit] if self._alpha is not None else []))
            if self._loss_scale != 1.0:
                grads = [x / self._loss_scale for x in grads]
            g = grads[0]
            ok = tf.logical_and(tf.reduce_all(tf.math.is_finite(g), axis=axes), tf.math.is_finite(score))
            g = tf.where(tf.reshape(ok, per_image), g, tf.zeros_like(g))
            self._bad.assign(tf.logical_or(self._bad, tf.logical_not(ok)))
            if self._alpha is not None:  # MaCo's transparency: where the gradient has been large
                gain = tf.reduce_mean(tf.abs(grads[1]), axis=3)
                self._alpha.assign_add(tf.where(tf.reshape(ok, [-1, 1, 1]), gain, tf.zeros_like(gain)))
            step_lr = learning_rate(self.settings.schedule, i, lr, self.settings.steps)
            # raw pixels shown as rendered are kept in range, so the grid shows exactly what was optimized
            ascend(self.settings.optimizer, self._p, self._m, self._v, g, i, step_lr, clip=self._clip)
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

    # -- host side ---------------------------------------------------------------------------------
    def _segments(self) -> list[tuple[int, int, bool]]:
        """(first step, number of steps, coarse) of each call of the compiled loop."""
        steps, seg, c = self.settings.steps, self.settings.segment, self._coarse_steps
        return [(s, min(seg, hi - s), coarse) for lo, hi, coarse in ((0, c, True), (c, steps, False))
                for s in range(lo, hi, seg)]

    def variant(
        self, max_filters: int | None = None, objective: objectives.Objective | None = None, **changes
    ) -> LayerRenderer:
        """The same renderer (extractor, objective unless another is given, devices) with some settings changed:
        a new trace. For example a smaller chunk after running out of memory, or a rescue of dead filters."""
        return LayerRenderer(
            self.extractor, self.settings.replace(**changes), channels=self.param.channels,
            input_range=self.input_range, objective=objective or self.objective, max_filters=max_filters,
            single_channel=self._single_channel_allowed, strategy=self.strategy, photos=self.photos,
        )

    def render(
        self,
        filters: Sequence[int],
        progress: Callable[[float], None] | None = None,
        lr: float | None = None,
        starts: np.ndarray | None = None,
    ) -> ChunkOutput:
        """Render `filters` chunk by chunk. `progress(k)` is called with the filters finished since last call.
        `starts` [len(filters), h, w, C] (unit space) starts each filter from its own image instead of a random
        draw (canvas.start_params; the same trace: only the parameters' first value changes)."""
        filters = np.asarray(filters, dtype=np.int32)
        if starts is not None and (self.strategy is not None or self._start is not None):
            raise ValueError("per-filter starts need a renderer without a strategy or an init image")
        if self._model is not self._source:  # the mixed-precision clone follows the extractor's weights
            copy_weights(self._source, self._model)
        rate = tf.constant(self.settings.lr if lr is None else lr, tf.float32)
        per_call = self.batch // self.pictures  # filters per call
        return ChunkOutput.concat([
            self._render_call(filters[s : s + per_call], rate, progress,
                              None if starts is None else starts[s : s + per_call])
            for s in range(0, len(filters), per_call)])

    def _render_call(
        self, ids: np.ndarray, rate: tf.Tensor, progress: Callable[[float], None] | None, starts: np.ndarray | None
    ) -> ChunkOutput:
        """One call of the compiled loop for up to batch/pictures filters (the last padded with copies of its last
        filter); each filter's first picture is its result, all its pictures are extras['diversity']."""
        real, k = len(ids), self.pictures
        filled = np.concatenate([ids, np.repeat(ids[-1:], self.batch // k - real)])
        padded = tf.constant(canvas.picture_ids(filled, k) if k > 1 else filled.astype(np.int32))
        self._init_fn(padded)
        if starts is not None:  # every picture of filter i from starts[i] (the padding from the last one's)
            p = canvas.start_params(self.param, starts)
            self._p.assign(np.repeat(np.concatenate([p, np.repeat(p[-1:], self.batch // k - real, axis=0)]), k, axis=0))
        elif self.settings.photo_colour and self.param.kind == "fourier" and self.strategy is None \
                and self._start is None:
            self._p.assign_add(tf.repeat(canvas.photo_colour_offset(
                self.param, self.photos, self.extractor.model, filled, self.settings.photo_colour), k, axis=0))
        parts = []
        for s, n, coarse in self._segments():
            parts.append(self._segment_fns[coarse](padded, tf.constant(s), tf.constant(n), rate).numpy())
            if progress is not None:
                progress(real * n / self.settings.steps)
        final = [t.numpy() for t in self._final_fn(padded)]
        images, scores, trace, bad = (x.reshape((-1, k) + x.shape[1:])[:real]
                                      for x in (final[0], final[1], np.concatenate(parts, axis=1), final[2]))
        extras = {"diversity": images} if k > 1 else {}
        if self._alpha is not None:
            extras["alpha"] = final[3].reshape((-1, k) + final[3].shape[1:])[:real, 0]
        return ChunkOutput(images[:, 0], scores[:, 0], trace[:, 0], bad.any(axis=1), ids, extras=extras)
