"""`filterviz attribute IMAGE...`: saliency, guided backprop, deconvnet, SmoothGrad and gradient x input maps."""

from __future__ import annotations

import argparse

from ..settings import ATTRIBUTION_METHODS
from .common import add_model_options, load_from_args

__all__ = ["add_parser", "run"]

DEFAULT_SIZE = 224


def add_parser(sub) -> None:
    """Register the `attribute` subcommand."""
    p = sub.add_parser("attribute", help="which pixels of an image a class or a filter depends on")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files")
    p.add_argument("--method", default="saliency,guided",
                   help=f"one or more of {','.join(ATTRIBUTION_METHODS)}, comma-separated (default saliency,guided)")
    p.add_argument("--target", required=True,
                   help="class:N (output unit N of a classifier), layer:NAME (mean of the layer), "
                        "layer:NAME:FILTER (mean of one filter's map) or layer:NAME:FILTER@Y,X (one unit)")
    p.add_argument("--out", help="output folder (default outputs/<model>/attribution/)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE,
                   help=f"image size for models that take any size (default {DEFAULT_SIZE})")
    p.add_argument("--samples", type=int, default=16, help="SmoothGrad: noisy copies per image (default 16)")
    p.add_argument("--noise", type=float, default=0.15,
                   help="SmoothGrad: noise std as a fraction of the input range (default 0.15)")
    p.add_argument("--seed", type=int, default=0, help="SmoothGrad noise seed")
    p.add_argument("--batch", type=int, default=4, help="images per compiled call (default 4)")
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Compute the maps and write per image <stem>_<method>.png (heatmap), <stem>_<method>_overlay.png,
    <stem>.npz (raw maps and heatmaps), and methods.png (the methods side by side)."""
    from pathlib import Path

    from ..attribution import Attributor
    from ..figures import attribution_figure
    from ..files import ensure_dir, safe_name, save_figure
    from ..heatmaps import heatmap
    from ..models import warn_pending
    from ..settings import DEFAULT_OUTPUT

    methods, target, stems = _checked(args)  # cheap checks before the model loads
    lm = load_from_args(args, include_top=target.kind == "class", warn=False)
    att = Attributor(lm, samples=args.samples, noise=args.noise, seed=args.seed, batch=args.batch)
    pictures, inputs = _inputs(lm, args)
    att.check(target, inputs.shape[1:])
    att.prepare(methods)  # a model without ReLU fails here for guided/deconvnet, before anything is written
    warn_pending(lm)  # the checks passed: a model file's assumed input range is worth a line now
    raw = _maps(att, inputs, methods, target)
    heat = {m: heatmap(r, m) for m, r in raw.items()}
    out = ensure_dir(args.out or Path(DEFAULT_OUTPUT) / safe_name(lm.name) / "attribution")
    tag = safe_name(target.slug())
    _write_maps(out, tag, stems, pictures, methods, raw, heat, target)
    fig = attribution_figure(pictures, heat, row_labels=stems, title=f"{lm.name}: {target.describe()}")
    path = save_figure(fig, out / f"methods_{tag}.png", dpi=110)
    print(f"{lm.name} {target.describe()}: {len(stems)} image(s) x {len(methods)} method(s) -> {out} ({path.name})")
    return 0


def _checked(args: argparse.Namespace):
    """The methods, the target and the images' file stems, checked before anything loads."""
    from pathlib import Path

    from ..errors import UserError
    from ..files import safe_name
    from ..targets import parse_methods, parse_target

    methods = parse_methods(args.method)
    target = parse_target(args.target)
    if not 8 <= args.size <= 4096:
        raise UserError(f"bad size {args.size}: an integer from 8 to 4096")
    stems = [safe_name(Path(p).stem) for p in args.images]
    if len(set(stems)) != len(stems):
        raise UserError("two images have the same file name; give images with different names")
    for p in args.images:
        if not Path(p).is_file():
            raise UserError(f"image '{p}' does not exist" if not Path(p).exists() else f"image '{p}' is not a file")
    return methods, target, stems


def _inputs(lm, args: argparse.Namespace):
    """The images as read (uint8, the model's size) and in the model's input range."""
    import numpy as np

    from ..errors import UserError
    from ..images import read_images

    if lm.channels not in (1, 3):
        raise UserError(f"model '{lm.name}' takes {lm.channels}-channel input; attribute reads RGB or grayscale images")
    pictures = read_images(args.images, lm.fixed_size or (args.size, args.size), channels=lm.channels)
    lo, hi = lm.input_range
    return pictures, lo + (hi - lo) * pictures.astype(np.float32) / 255.0


def _maps(att, inputs, methods: list[str], target) -> dict:
    """Each method's raw maps; one trace per method is expected, so TensorFlow's retracing notes stay quiet."""
    import logging

    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        return {m: att(inputs, m, target) for m in methods}
    finally:
        tf_logger.setLevel(level)


def _write_maps(out, tag: str, stems: list[str], pictures, methods: list[str], raw: dict, heat: dict, target) -> None:
    """Per image: each method's heatmap and overlay PNGs and one npz; a note where a map is all zero."""
    import sys

    import numpy as np

    from ..files import write_npz, write_png
    from ..heatmaps import colorize, overlay

    for i, stem in enumerate(stems):
        for m in methods:
            write_png(out / f"{stem}_{tag}_{m}.png", colorize(heat[m][i]))
            write_png(out / f"{stem}_{tag}_{m}_overlay.png", overlay(pictures[i], heat[m][i]))
        write_npz(out / f"{stem}_{tag}.npz", image=pictures[i], methods=np.array(methods),
                  **{f"raw_{m}": raw[m][i] for m in methods}, **{f"heat_{m}": heat[m][i] for m in methods})
        flat = [m for m in methods if float(np.abs(raw[m][i]).max()) == 0.0]
        if flat:
            print(f"note: {stem}: {', '.join(flat)} map is all zero ({target.describe()} does not respond "
                  "to this image)", file=sys.stderr)
