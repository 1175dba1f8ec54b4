"""Quality on users' own models: dead filters and failed pictures (a photo crop excites the filter more) in every
preset, at the unit as the network uses it (filterviz.units), on models a user brings:

- `digits-bn`: a small BN ResNet trained here on scikit-learn's digits (grey, inputs in [0, 1], 32x32);
  a model below MIN_ACCURACY validation accuracy stops the run (its filters would be noise);
- `rgb-bn`: a small BN network on RGB inputs in [-1, 1] with separable convs, trained here on a colour task
  made from the digits (which of three colours the digit is drawn in);
- `nested`: `rgb-bn` as a backbone inside a Sequential (addresses like `rgb_bn/c2`);
- `mtcnn-onet`: the pretrained ONet of the `mtcnn` package (1.0.0 ships its weights): PReLU after every conv,
  48x48 inputs, (x - 127.5) / 128, rebuilt as a functional model (skipped where mtcnn is not installed).

A picture fails when the best photo crop (metrics.photo_crops, grey for 1-channel models) excites its filter
more (metrics.photo_ratio < 1); "colour free" counts the filters grown again without the colour limit
(filterviz.rescue); "photo start" counts the filters re-run from their best crop (filterviz.rescue);
"woken" those that nothing else fired, given a unit's tiled patch (filterviz.wake);
"no crop fires" counts the dead filters that no photo crop fires either (dead units of the network, as far as the
photos tell); "provably dead" those of them that no input of the network's range can fire (filterviz.bounds: the
upper bound of the unit after its activation is <= 0; "-" where the layer's path cannot be bounded).
Usage: python benchmarks/own_models.py [--presets quality,fast,lucid,maco] [--models digits-bn,rgb-bn,...]
[--filters 8] [--grids DIR] [--out outputs/benchmarks/own_models.json]. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

import filterviz
from filterviz import bounds, grid, metrics
from filterviz.files import ensure_dir, write_png
from filterviz.models import feature_extractor, load_model
from filterviz.render import prepare_render, render_plan


MIN_ACCURACY = 0.9  # a model below this validation accuracy is not scored: its filters would be noise


def _digits(size: int):
    """scikit-learn's digits, grey in [0, 1] at `size` x `size`, in a fixed random order (so that the validation
    split holds every writer's digits, not only the last writers')."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    x = tf.image.resize(d.images[order, :, :, None].astype("float32") / 16.0, (size, size)).numpy()
    return x, d.target[order]


def _block(x, width: int, name: str, separable: bool = False):
    import keras

    conv = keras.layers.SeparableConv2D if separable else keras.layers.Conv2D
    y = conv(width, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    # momentum 0.9: the running statistics settle within the few hundred steps of these runs (with Keras's
    # 0.99 they still hold much of their start after 100 steps, and the trained model scores chance)
    y = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(y)
    y = keras.layers.ReLU(name=f"{name}_relu")(y)
    if x.shape[-1] == width:
        y = keras.layers.Add(name=f"{name}_add")([x, y])
    return y


def _fit(net, x, y, epochs: int) -> float:
    """Adam with a cosine decay from 3e-3 (a large step early, calm BN statistics late); the validation accuracy."""
    import keras

    steps = epochs * int(np.ceil(0.8 * len(x) / 32))
    net.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps, alpha=0.05)),
                "sparse_categorical_crossentropy", metrics=["accuracy"])
    hist = net.fit(x, y, epochs=epochs, batch_size=32, verbose=0, validation_split=0.2)
    return float(hist.history["val_accuracy"][-1])


def digits_bn(epochs: int = 12):
    """A BN ResNet on grey digits in [0, 1]; (the model, its validation accuracy)."""
    import keras

    keras.utils.set_random_seed(0)
    x, y = _digits(32)
    inp = keras.Input((32, 32, 1), name="digit")
    h = _block(inp, 16, "b1")
    h = _block(h, 16, "b2")
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = _block(h, 32, "b3")
    h = keras.layers.MaxPooling2D(2, name="pool2")(h)
    h = _block(h, 32, "b4")
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    out = keras.layers.Dense(10, activation="softmax", name="predictions")(h)
    net = keras.Model(inp, out, name="digits_bn")
    return net, _fit(net, x, y, epochs)


def rgb_bn(epochs: int = 6):
    """A BN network with separable convs on RGB in [-1, 1]: which of three colours a digit is drawn in."""
    import keras

    keras.utils.set_random_seed(1)
    grey, _ = _digits(32)
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 3, len(grey))
    palette = np.array([[1, 0.2, 0.2], [0.2, 1, 0.2], [0.2, 0.2, 1]], "float32")
    x = grey * palette[colour][:, None, None, :] * 2.0 - 1.0
    inp = keras.Input((32, 32, 3), name="rgb")
    h = _block(inp, 16, "c1")
    h = _block(h, 24, "c2", separable=True)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    out = keras.layers.Dense(3, activation="softmax", name="predictions")(h)
    net = keras.Model(inp, out, name="rgb_bn")
    return net, _fit(net, x, colour, epochs)


def _trained(label: str, made: tuple) -> tuple:
    """The model of `made` (model, validation accuracy), printed; SystemExit below MIN_ACCURACY."""
    net, acc = made
    print(f"<!-- {label}: validation accuracy {acc:.3f} -->", file=sys.stderr, flush=True)
    if acc < MIN_ACCURACY:
        raise SystemExit(f"{label}: validation accuracy {acc:.3f} < {MIN_ACCURACY}: not scoring an untrained model")
    return net, acc


def mtcnn_onet():
    """The mtcnn package's pretrained ONet as a functional Keras model (its weights copied), or None."""
    try:
        from mtcnn.network.onet import ONet
        from mtcnn.utils.tensorflow import load_weights
    except ImportError:
        return None
    import keras

    onet = ONet()
    onet.build()
    onet.set_weights(load_weights("onet.lz4"))
    inp = keras.Input((48, 48, 3), name="face")
    x = inp
    for name in ("conv1", "prelu1", "maxpool1", "conv2", "prelu2", "maxpool2", "conv3", "prelu3", "maxpool3",
                 "conv4", "prelu4"):
        layer = getattr(onet, name)
        copy = type(layer).from_config(layer.get_config())
        x = copy(x)
        copy.set_weights(layer.get_weights())
    return keras.Model(inp, x, name="mtcnn_onet")


def measure(lm, layer: str, preset: str, n: int, grids: str | None = None) -> dict:
    """Dead count and failed share of the first `n` filters of `layer` in `preset`, how many of them were re-run
    from their best photo crop (filterviz.rescue) or woken from a unit's tiled patch (filterviz.wake), and of
    the dead, those no input can fire (`network_bounds`); the grid goes to `grids` when given."""
    plan = prepare_render(lm, layer, f"0:{n}", filterviz.preset(preset), size_from_model=True)
    result = render_plan(plan)
    if grids:
        write_png(os.path.join(grids, f"{lm.name}__{layer.replace('/', '-')}__{preset}.png"), result.grid)
    post = feature_extractor(lm, layer, pre_activation=False).model
    crops = metrics.photo_crops(plan.settings.size, lm.channels)
    best = metrics.best_photo_activation(post, crops)
    shown = grid.to_model_space(result.display, lm.input_range)
    ratio = metrics.photo_ratio(post, shown, result.filters, best)
    dead = [int(r["filter"]) for r in result.metrics if r["dead"]]
    upper = network_bounds(lm, layer, plan.settings.size)
    return {"dead": len(dead), "failed": float(np.mean(ratio < 1.0)),
            "no_crop_fires": int(sum(r["dead"] and r["photo_best"] <= 0 for r in result.metrics)),
            "provably_dead": None if upper is None else int(sum(upper[f] <= 0 for f in dead)),
            "dead_upper_bounds": None if upper is None else {f: float(upper[f]) for f in dead},
            "colour_free": int(sum(r["colour_free"] for r in result.metrics)),
            "photo_start": int(sum(r["photo_start"] for r in result.metrics)),
            "woken": int(sum(r["woken"] for r in result.metrics)), "filters": len(result.filters),
            "seconds": round(result.seconds, 1)}


def network_bounds(lm, layer: str, size: int) -> np.ndarray | None:
    """[C] upper bounds of `layer`'s units as the network uses them (after their activation) over every input in
    the network's range (filterviz.bounds): a unit bounded at or below 0 is provably dead in the network. None where
    the range is a preprocess's or the path to the layer is not a chain of layers filterviz.bounds knows."""
    if lm.preprocess != "none":
        return None
    try:
        unit = feature_extractor(lm.net, layer, pre_activation=False).model
        return bounds.output_bounds(unit, lm.network_range or lm.input_range, size)[1]
    except ValueError:
        return None


def models(only: list[str] | None = None) -> list[tuple[str, object, list[str], str]]:
    """(label, LoadedModel, layers, note) of every model measured, or of those labelled in `only`."""
    import keras

    want = (lambda label: only is None or label in only)
    out = []
    if want("digits-bn"):
        digits, acc = _trained("digits-bn", digits_bn())
        out.append(("digits-bn", load_model(digits, input_range="0:1"), ["b1_conv", "b4_conv"], f"val acc {acc:.2f}"))
    if want("rgb-bn") or want("nested"):
        rgb, acc = _trained("rgb-bn", rgb_bn())
        if want("rgb-bn"):
            out.append(("rgb-bn", load_model(rgb, input_range="-1:1"), ["c1_conv", "c2_conv"], f"val acc {acc:.2f}"))
        if want("nested"):
            outer = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Identity(name="pixels_in"), rgb,
                                      keras.layers.Dense(2, name="head")], name="nested")
            out.append(("nested", load_model(outer, input_range="-1:1"), ["rgb_bn/c2_conv"],
                        "rgb-bn inside a Sequential"))
    onet = mtcnn_onet() if want("mtcnn-onet") else None
    if onet is None and want("mtcnn-onet"):
        print("<!-- mtcnn-onet: skipped, the mtcnn package is not installed (pip install -e '.[bench]') -->",
              file=sys.stderr, flush=True)
    elif onet is not None:
        out.append(("mtcnn-onet", load_model(onet, input_range=(-127.5 / 128, 127.5 / 128)), ["conv2", "conv4"],
                    "pretrained (mtcnn 1.0.0 wheel)"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="quality,fast,lucid,maco")
    p.add_argument("--filters", type=int, default=8)
    p.add_argument("--out", default="outputs/benchmarks/own_models.json")
    p.add_argument("--grids", default=None, help="a folder for every grid (MODEL__LAYER__PRESET.png)")
    p.add_argument("--models", default=None, help="comma-separated labels to run (default all)")
    args = p.parse_args(argv)
    if args.grids:
        ensure_dir(args.grids)
    rows = []
    print("| model | layer | preset | dead | of which no crop fires | provably dead | failed | colour free | photo start "
          "| woken | filters | s |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, lm, layers, note in models(args.models.split(",") if args.models else None):
        print(f"<!-- {label}: {lm.describe_input()}, {note} -->", file=sys.stderr)
        for layer in layers:
            for preset in args.presets.split(","):
                r = dict(model=label, layer=layer, preset=preset, **measure(lm, layer, preset, args.filters,
                                                                            args.grids))
                rows.append(r)
                proof = "-" if r["provably_dead"] is None else r["provably_dead"]
                print(f"| {label} | {layer} | {preset} | {r['dead']} | {r['no_crop_fires']} | {proof} | "
                      f"{r['failed']:.0%} | {r['colour_free']} | {r['photo_start']} | {r['woken']} | {r['filters']} | {r['seconds']} |",
                      flush=True)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
