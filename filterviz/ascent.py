"""The engine: activation maximization of every filter of a layer in one compiled tf.while_loop.

`LayerRenderer` is the host side: it picks the model the loop runs (a clone under mixed precision, a
single-channel head where the objective allows), the chunk size, the transforms and the parameterization, then
renders any list of filters chunk by chunk through one `filterviz.loop.AscentLoop` (the variables and the traced
functions). A batch holds one image per filter (with `diversity` K, K consecutive images per filter; see
filterviz.canvas for the canvas, its random crops and a start from the user's image). Filter indices are
tensors and the last chunk is padded, so one trace of the loop serves every chunk of a layer. The loop runs in
segments of `segment` steps so that a progress bar can advance inside a chunk without a host round-trip
per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from .quiet import tf

from . import canvas, metrics, objectives, transforms
from .chunks import ChunkOutput
from .errors import UserError
from .models import Extractor
from .objectives import build_objective
from .precision import resolve_precision
from .graphs import onednn_max_pool_available
from .loop import AscentLoop
from .rewrites import copy_weights, graph_cost, loop_model
from .settings import RenderSettings

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
        self._loop = AscentLoop(
            settings=settings, model=self._model, head=self._head, objective=self.objective, param=self.param,
            transform=self.transform, input_range=input_range, chunk=self.chunk, strategy=strategy,
            start=self._start, clip=self._clip, loss_scale=self._loss_scale)

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
        return self._loop.variable

    @property
    def segments(self) -> list[tuple[int, int, bool]]:
        """(first step, number of steps, coarse) of each call of the compiled loop, for every chunk."""
        return self._loop.segments()

    @property
    def functions(self) -> tuple[Callable, ...]:
        """The tf.functions: init, the loop of each resolution, the final score."""
        return self._loop.functions

    @property
    def loop(self) -> AscentLoop:
        """The compiled loop (variables and traced functions) this renderer runs every chunk through."""
        return self._loop

    @property
    def traces(self) -> int:
        """Python traces of the compiled step loop (one per resolution when all goes well)."""
        return self._loop.traces


    # -- host side ---------------------------------------------------------------------------------
    def variant(
        self, max_filters: int | None = None, objective: objectives.Objective | None = None, **changes
    ) -> LayerRenderer:
        """The same renderer (extractor, objective unless another is given, devices) with some settings changed:
        a new trace. For example a smaller chunk after running out of memory, or a rescue of dead filters. Its
        objective is the changed settings' own where this renderer's is its settings' own."""
        return LayerRenderer(
            self.extractor, self.settings.replace(**changes), channels=self.param.channels,
            input_range=self.input_range, objective=objective or (None if self.default_objective else self.objective),
            max_filters=max_filters,
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
        loop = self._loop
        loop.init_fn(padded)
        if starts is not None:  # every picture of filter i from starts[i] (the padding from the last one's)
            p = canvas.start_params(self.param, starts)
            padded_starts = np.concatenate([p, np.repeat(p[-1:], self.batch // k - real, axis=0)])
            loop.variable.assign(np.repeat(padded_starts, k, axis=0))
        elif self.settings.photo_colour and self.param.kind == "fourier" and self.strategy is None \
                and self._start is None:
            loop.variable.assign_add(tf.repeat(canvas.photo_colour_offset(
                self.param, self.photos, self.extractor.model, filled, self.settings.photo_colour), k, axis=0))
        parts = []
        for s, n, coarse in loop.segments():
            parts.append(loop.segment_fns[coarse](padded, tf.constant(s), tf.constant(n), rate).numpy())
            if progress is not None:
                progress(real * n / self.settings.steps)
        final = [t.numpy() for t in loop.final_fn(padded)]
        images, scores, trace, bad = (x.reshape((-1, k) + x.shape[1:])[:real]
                                      for x in (final[0], final[1], np.concatenate(parts, axis=1), final[2]))
        extras = {"diversity": images} if k > 1 else {}
        if loop.keeps_alpha:
            extras["alpha"] = final[3].reshape((-1, k) + final[3].shape[1:])[:real, 0]
        return ChunkOutput(images[:, 0], scores[:, 0], trace[:, 0], bad.any(axis=1), ids, extras=extras)
