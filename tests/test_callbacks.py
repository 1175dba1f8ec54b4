"""FilterSnapshots during model.fit: grids per epoch, a GIF at the end, one trace for the whole run."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from filterviz.settings import RenderSettings
from filterviz.callbacks import FilterSnapshots
from filterviz.errors import UserError


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    return model


def _data():
    rng = np.random.RandomState(0)
    return rng.uniform(0, 255, (16, 16, 16, 3)).astype(np.float32), rng.randint(0, 2, 16)


def test_activation_snapshots_no_retrace(tmp_path):
    model = _model()
    x, y = _data()
    cb = FilterSnapshots("conv2", every=1, out_dir=tmp_path, filters="0:4",
                         settings=RenderSettings(size=16, steps=4, chunk=4))
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[cb])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["epoch_0000.png", "epoch_0001.png", "epoch_0002.png", "epoch_0003.png", "evolution.gif"]
    assert cb.plan.renderer.traces == 1
    gif = Image.open(tmp_path / "evolution.gif")
    assert gif.n_frames == 4
    # the copied pre-activation layer follows training
    src, dst = cb.plan.renderer.extractor.copies[0]
    np.testing.assert_array_equal(src.get_weights()[0], dst.get_weights()[0])
    assert not np.array_equal(cb.frames[0], cb.frames[-1])


def test_kernel_snapshots_every_two(tmp_path):
    model = _model()
    x, y = _data()
    cb = FilterSnapshots("conv1", every=2, mode="kernels", out_dir=tmp_path, filters="all")
    model.fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[cb])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["epoch_0000.png", "epoch_0002.png", "epoch_0004.png", "evolution.gif"]
    assert cb.frames[0].shape[-1] == 3 and not np.array_equal(cb.frames[0], cb.frames[-1])


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="kernels"):
        FilterSnapshots("conv1", mode="weights", out_dir=tmp_path)
    with pytest.raises(UserError, match="every"):
        FilterSnapshots("conv1", every=0, out_dir=tmp_path)
    model = _model()
    x, y = _data()
    with pytest.raises(UserError, match="conv9"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[FilterSnapshots("conv9", out_dir=tmp_path)])


def test_snapshots_go_to_tensorboard_one_step_per_epoch(tmp_path):
    """With `logdir`, every snapshot and the layer's kernel grid are image summaries, read back pixel for pixel."""
    from test_tensorboard import _read_images

    model = _model()
    x, y = _data()
    cb = FilterSnapshots("conv2", out_dir=tmp_path / "png", filters="0:4", logdir=tmp_path / "tb",
                         settings=RenderSettings(size=16, steps=4, chunk=4))
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[cb])
    got = _read_images(tmp_path / "tb")
    assert sorted(got) == [(f"conv2/{kind}", step) for kind in ("activation", "kernels") for step in (0, 1, 2)]
    for step, frame in enumerate(cb.frames):
        np.testing.assert_array_equal(got["conv2/activation", step], frame)
    assert not np.array_equal(got["conv2/kernels", 0], got["conv2/kernels", 2])  # the weights were trained
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1
