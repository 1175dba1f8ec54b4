"""Train a tiny BatchNorm CNN on scikit-learn's digits (grey, inputs in [0, 1]) and save it, to try filterviz on
a model of your own (README, "Your own model"; docs/own-model.md):

    python examples/digits.py digits.keras      # about a minute on a CPU; needs scikit-learn

It also writes the validation digits as PNG files to digits-images/ (beside the model), a folder of images for
`filterviz examples`.

A model worth looking at is a trained one, so it prints its validation accuracy (about 0.98). With BatchNorm, a
short training needs momentum=0.9: with Keras's default 0.99 the running statistics the saved model uses hardly
move in a few hundred steps, and it scores about chance.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(path: str = "digits.keras") -> None:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from filterviz.quiet import keras, tf  # TensorFlow without its start-up log lines

    keras.utils.set_random_seed(0)
    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))  # mixed, so the validation split holds every writer
    x = tf.image.resize(d.images[order, :, :, None] / 16.0, (32, 32)).numpy()  # grey, in [0, 1]
    y = d.target[order]
    inp = keras.Input((32, 32, 1), name="digit")
    h = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inp)
    h = keras.layers.BatchNormalization(momentum=0.9, name="bn1")(h)
    h = keras.layers.ReLU(name="relu1")(h)
    h = keras.layers.MaxPooling2D(name="pool1")(h)
    h = keras.layers.SeparableConv2D(32, 3, padding="same", name="conv2")(h)
    h = keras.layers.BatchNormalization(momentum=0.9, name="bn2")(h)
    h = keras.layers.ReLU(name="relu2")(h)
    h = keras.layers.MaxPooling2D(name="pool2")(h)
    h = keras.layers.Flatten(name="flat")(h)
    out = keras.layers.Dense(10, activation="softmax", name="predictions")(h)
    model = keras.Model(inp, out, name="digits")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    fit = model.fit(x, y, epochs=10, batch_size=32, validation_split=0.2, verbose=0)
    model.save(path)
    folder = Path(path).resolve().parent / "digits-images"
    folder.mkdir(exist_ok=True)
    for i in range(int(0.8 * len(x)), len(x)):  # the validation split: digits the model did not train on
        Image.fromarray(np.round(x[i, :, :, 0] * 255).astype(np.uint8)).save(folder / f"digit{i:04d}_{y[i]}.png")
    print(f"validation accuracy {fit.history['val_accuracy'][-1]:.2f} -> {path}, {len(x) - int(0.8 * len(x))} "
          f"validation digits -> {folder}/")


if __name__ == "__main__":
    main(*sys.argv[1:2])
