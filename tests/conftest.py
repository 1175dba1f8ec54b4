"""Shared fixtures: tiny models built in the tests, so the suite is fast and needs no download."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def make_tiny_cnn(seed: int = 0, channels: int = 3) -> keras.Model:
    """A 3-conv ReLU network with fixed random weights, any input size, RGB 0-255 input."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((None, None, channels), name="rgb")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, name="logits")(x)
    return keras.Model(inp, out, name="tiny")


@pytest.fixture
def tiny_cnn() -> keras.Model:
    return make_tiny_cnn()


@pytest.fixture
def tiny_weights(tiny_cnn) -> list[np.ndarray]:
    return [w.copy() for w in tiny_cnn.get_weights()]


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory) -> str:
    """make_tiny_cnn() saved once per session as tiny.keras (the model's name in output paths is 'tiny');
    tests only read it."""
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    make_tiny_cnn().save(path)
    return str(path)


@pytest.fixture(scope="session")
def model_path(tiny_path) -> str:
    """The same file, under the name the sweep tests use."""
    return tiny_path


def write_sweep(folder, name: str, model_path: str, keys: str, extra: str = ""):
    """A sweep config `folder/NAME.yaml` over `model_path` with `keys` (YAML lines), seeds 0 and 1, results in
    `folder/out`, then `extra` top-level lines; the sweep tests' configs differ only in their keys."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nmodel: {model_path}\n{keys}output: {folder / 'out'}\nsweep:\n  seed: [0, 1]\n{extra}")
    return path
