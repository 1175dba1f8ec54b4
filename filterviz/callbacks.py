"""`FilterSnapshots`: watch a layer's filters evolve while a model trains (seed 003's question).

    model.fit(x, y, epochs=20, callbacks=[FilterSnapshots("conv2", every=2, out_dir="snapshots")])

After every `every` epochs it writes `epoch_NNNN.png` (a grid of the layer's filters) into `out_dir`, and at the
end of training `evolution.gif`, an animation of all snapshots (plus the starting point, `epoch_0000.png`,
taken before the first epoch).

mode "activation": the picture each filter responds to most (activation maximization), rendered by the
compiled engine, prepared once by `render.prepare_render` when training starts (a model with a fixed input
size renders at that size unless `settings` say otherwise). The extractor shares the training model's layers
(so it sees the new weights), its one copied layer is re-synced each snapshot, and the compiled loop is traced
once for the whole run.
mode "kernels": the layer's raw weights (`kernels.kernel_grid`: symmetric per-filter scaling, zero is grey).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from .quiet import keras
import numpy as np

from . import files, grid
from .errors import UserError
from .inputs import parse_input_range
from .kernels import kernel_grid
from .models import load_model
from .render import RenderPlan, prepare_render
from .settings import RenderSettings, select_filters
from .tensorboard import ImageSummaries

__all__ = ["FilterSnapshots", "MODES"]

MODES = ("activation", "kernels")


class FilterSnapshots(keras.callbacks.Callback):
    """Write a grid of `layer`'s filters every `every` epochs, and an animated GIF of them when training ends.

    `filters`: 'all', '0:16', '3,7' or a list (default the first 16). `settings`: RenderSettings for the
    activation mode (default: 64-pixel images, 20 steps; a model with a fixed input size uses that size).
    `input_range`: the value range the model's input takes (e.g. (0, 1)); as with load_model, the pictures are
    made in 0-255 and rescaled in front of the network. `gif_ms`: milliseconds per GIF frame.
    `logdir`: also write each snapshot (and, for a conv layer, its kernel grid) as TensorBoard image summaries,
    one step per epoch (`tensorboard --logdir LOGDIR` shows them over training).
    """

    def __init__(
        self,
        layer: str,
        every: int = 1,
        mode: str = "activation",
        out_dir: str | os.PathLike = "snapshots",
        filters: str | list[int] | None = "0:16",
        settings: RenderSettings | None = None,
        input_range: str | tuple[float, float] = (0.0, 255.0),
        max_inputs: int = 8,
        gif_ms: int = 500,
        logdir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise UserError(f"unknown snapshot mode {mode!r}: valid: {', '.join(MODES)}")
        if not (isinstance(every, int) and not isinstance(every, bool) and every >= 1):
            raise UserError(f"bad every {every!r}: a positive number of epochs")
        self.layer = layer
        self.every = every
        self.mode = mode
        self.out_dir = Path(out_dir)
        self.filters = filters
        self.settings = settings
        self.input_range = parse_input_range(input_range)  # a bad one fails here, not when training starts
        self.max_inputs = max_inputs
        self.gif_ms = gif_ms
        self.logdir = logdir
        self._summaries: ImageSummaries | None = None
        self.plan: RenderPlan | None = None  # the prepared render, kept across fits of the same model
        self.frames: list[np.ndarray] = []
        self.written: list[Path] = []
        self._idx: np.ndarray | None = None

    # -- setup -----------------------------------------------------------------------------------------
    def on_train_begin(self, logs=None) -> None:
        files.ensure_dir(self.out_dir)
        self.frames, self.written = [], []
        if self.logdir is not None:
            self._summaries = ImageSummaries(self.logdir)
        if self.mode == "activation":
            if self.plan is None or self.plan.model.net is not self.model:
                # as load_model does: a model on another range goes behind a front taking 0-255 pixels, so the
                # sample photos (0-255) are measured on what the network takes; the layers stay the model's own
                lm = load_model(self.model, input_range=self.input_range)
                settings = self.settings or RenderSettings(size=64, steps=20)
                self.plan = prepare_render(lm, self.layer, self.filters, settings,
                                           size_from_model=self.settings is None)
            self._idx = self.plan.filters
        else:
            weights = self._kernel()
            self._idx = select_filters(self.filters, weights.shape[-1], self.layer)
        self._snapshot(0)

    def _kernel(self) -> np.ndarray:
        try:
            layer = self.model.get_layer(self.layer)
        except ValueError:
            raise UserError(f"unknown layer '{self.layer}' in model '{self.model.name}'") from None
        weights = [w for w in layer.get_weights() if np.ndim(w) == 4]
        if not weights:
            raise UserError(f"layer '{self.layer}' has no conv kernel (a [kh, kw, in, out] weight) to show")
        return weights[0]

    # -- per epoch -------------------------------------------------------------------------------------
    def _snapshot(self, epoch: int) -> None:
        if self.mode == "activation":
            renderer, settings = self.plan.renderer, self.plan.settings
            renderer.extractor.sync()  # refresh the copied (pre-activation) layer; the rest is shared
            images = renderer.render(self._idx).images
            lo_hi = self.plan.model.input_range  # the pictures' range: 0-255 behind a front
            images = np.where(np.isfinite(images), images, np.float32(np.mean(lo_hi)))
            display = grid.to_display(images, lo_hi, settings.display_mode)
            picture = grid.tile(display, labels=[int(i) for i in self._idx] if settings.labels else None)
        else:
            picture = kernel_grid(self._kernel(), self._idx, max_inputs=self.max_inputs)
        self.frames.append(picture)
        self.written.append(files.write_png(self.out_dir / f"epoch_{epoch:04d}.png", picture))
        if self._summaries is not None:
            self._summaries.write(self._summary_grids(picture), step=epoch)

    def _summary_grids(self, picture: np.ndarray) -> dict[str, np.ndarray]:
        """The snapshot, and in activation mode the layer's kernel grid too where it has a conv kernel."""
        grids = {f"{self.layer}/{self.mode}": picture}
        if self.mode == "activation" and any(np.ndim(w) == 4 for w in self.model.get_layer(self.layer).get_weights()):
            grids[f"{self.layer}/kernels"] = kernel_grid(self._kernel(), self._idx, max_inputs=self.max_inputs)
        return grids

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        if (epoch + 1) % self.every == 0:
            self._snapshot(epoch + 1)

    def on_train_end(self, logs=None) -> None:
        if self._summaries is not None:
            self._summaries.close()
            self._summaries = None
        if not self.frames:
            return
        from PIL import Image

        frames = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f).convert("RGB") for f in self.frames]
        buf = io.BytesIO()
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=self.gif_ms, loop=0)
        self.written.append(files.atomic_write(self.out_dir / "evolution.gif", buf.getvalue()))
