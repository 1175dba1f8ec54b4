"""Memory stays flat over many layers in one process, and finished renderers and models are let go."""

from __future__ import annotations

import gc
import os
import weakref

import keras
import numpy as np
import pytest

from filterviz import models
from filterviz import render as render_module
from filterviz import results as results_module
from filterviz.attribution import Attributor, parse_target
from filterviz.config import load_config
from filterviz.sweep import run_sweep

LAYERS = 10  # per model; two models: 20 jobs


def _rss_mb() -> float:
    """Resident memory of this process, from /proc/self/statm (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _deep_model(path, seed: int) -> str:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, 3), name="rgb")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inp)
    for i in range(LAYERS):
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name=f"c{i}")(x)
    keras.Model(inp, x, name=f"deep{seed}").save(path)
    return str(path)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_twenty_layers_in_one_process_memory_flat_traces_released(tmp_path, monkeypatch):
    paths = [_deep_model(tmp_path / f"deep{k}.keras", k) for k in range(2)]
    cfg_path = tmp_path / "mem.yaml"
    cfg_path.write_text(f"name: mem\nmodel: [{', '.join(paths)}]\nlayers: all-conv\nfilters: '0:2'\nsize: 16\n"
                        f"steps: 2\nsegment: 2\nchunk: 2\noutput: {tmp_path / 'out'}\n")

    renderers, loaded = [], []  # weak references only: the test must not keep anything alive

    class Tracked(render_module.LayerRenderer):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            renderers.append([weakref.ref(x) for x in (self, *self.functions)])

    real_load = models.load_model

    def load(*args, **kwargs):
        lm = real_load(*args, **kwargs)
        loaded.append(weakref.ref(lm.model))
        return lm

    rss: dict[int, float] = {}
    alive_at_end: list[int] = []
    real_save = results_module.save_layer

    def save(*args, **kwargs):
        written = real_save(*args, **kwargs)
        rss[len(rss) + 1] = _rss_mb()  # no gc.collect() here: the runner must free what it is done with
        if len(rss) == 2 * LAYERS:
            alive_at_end.extend(sum(r() is not None for r in refs) for refs in renderers)
            alive_at_end.append(loaded[0]() is not None)
        return written

    monkeypatch.setattr(render_module, "LayerRenderer", Tracked)
    monkeypatch.setattr(models, "load_model", load)
    monkeypatch.setattr(results_module, "save_layer", save)
    report = run_sweep(load_config(cfg_path), quiet=True)

    assert len(report.rendered) == 2 * LAYERS and len(renderers) == 2 * LAYERS and len(loaded) == 2
    growth = rss[2 * LAYERS] - rss[5]
    assert growth < 25, f"RSS grew {growth:.1f} MB from render 5 to render 20: {rss}"
    # while the 20th job is saved, only its own renderer is alive; the first model's last job was job 10
    *per_renderer, first_model_alive = alive_at_end
    assert sum(1 for a in per_renderer if a) <= 1, per_renderer
    assert not first_model_alive, "the first model was kept after its last job"
    gc.collect()
    assert all(r() is None for refs in renderers for r in refs)  # every renderer and its tf.functions freed


def test_attributor_let_go_releases_its_traced_graph():
    """A ReLU rule's tf.custom_gradient traced inside the Attributor's graph once registered a gradient function
    globally that kept that graph (a whole clone of the network) alive after the Attributor was gone."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    net = keras.Model(inp, keras.layers.Dense(3)(x))
    attributor = Attributor(net)
    attributor(np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32), "guided", parse_target("class:1"))
    (fn,) = attributor.functions.values()
    graph = weakref.ref(fn.get_concrete_function().graph)
    del attributor, fn
    gc.collect()
    assert graph() is None
