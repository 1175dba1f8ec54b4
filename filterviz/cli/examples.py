"""`filterviz examples LAYER --images DIR`: the dataset patches that excite each filter of a layer most."""

from __future__ import annotations

import argparse

from ..settings import DEFAULT_OUTPUT
from .common import add_model_options, load_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """Register the `examples` subcommand."""
    p = sub.add_parser("examples", help="find the image patches that excite each filter of a layer most")
    p.add_argument("layer", help="layer name (see: filterviz layers)")
    p.add_argument("--images", required=True, help="folder of JPEG/PNG images (searched recursively)")
    p.add_argument("--k", type=int, default=9, help="examples kept per filter (default 9)")
    p.add_argument("--batch", type=int, default=32, help="images per batch (default 32)")
    p.add_argument("--size", type=int,
                   help="images are centre-cropped and resized to this (default 224 or the model's)")
    p.add_argument("--out", help=f"output folder (default {DEFAULT_OUTPUT}/<model>/<layer>/examples/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write examples.npz, examples.png and examples.json; resume an interrupted run of the same request."""
    from ..examples import find_examples
    from ..results import layer_dir
    from .layer import model_request

    lm = load_from_args(args, warn=False)  # find_examples says a file's range is assumed once its checks pass
    out = args.out or layer_dir(DEFAULT_OUTPUT, lm.name, args.layer) / "examples"
    meta = find_examples(lm, args.layer, args.images, out, k=args.k, batch=args.batch, size=args.size,
                         request=model_request(args.model, args.layer, []), quiet=args.quiet)
    bad = meta["unreadable"]
    shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
    print(f"{lm.name} {args.layer}: top {meta['k']} of {len(meta['files']) - len(bad)} images for "
          f"{len(meta['filters'])} filters -> {out}/examples.png"
          + (f"; {len(bad)} unreadable files skipped ({shown})" if bad else ""))
    return 0
