"""`filterviz kernels LAYER`: a grid picture of a conv layer's raw weights."""

from __future__ import annotations

import argparse

from .common import add_model_options, load_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """Register the `kernels` subcommand."""
    p = sub.add_parser("kernels", help="tile a conv layer's raw weights (RGB for 3-channel input, else grayscale)")
    p.add_argument("layer", help="conv layer name (see: filterviz layers)")
    p.add_argument("--filters", help="all, a range like 0:64, or a list like 3,7,9 (default: the first 64)")
    p.add_argument("--inputs", type=int, default=8, dest="max_inputs",
                   help="input channels shown per filter for non-RGB layers (default 8: the first 8)")
    p.add_argument("--tile", type=int, default=24, help="tile size in pixels (default 24)")
    p.add_argument("--labels", action="store_true", help="draw filter numbers on RGB tiles")
    p.add_argument("--out", help="output folder (default outputs/<model>/<layer>/)")
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write kernels.png and kernels.npz (the raw weights of the shown filters)."""
    import numpy as np

    from ..errors import UserError, suggest
    from ..files import ensure_dir, write_npz, write_png
    from ..kernels import kernel_grid
    from ..results import layer_dir
    from ..settings import select_filters
    from ..units import find, walk

    if args.max_inputs < 1:
        raise UserError(f"bad --inputs {args.max_inputs}: a positive number of input channels")
    if not 1 <= args.tile <= 512:
        raise UserError(f"bad --tile {args.tile}: an integer from 1 to 512")
    lm = load_from_args(args, warn=False)  # kernels are weights: the input range does not matter
    _, layer = find(lm.net, args.layer)
    kernels = [w for w in layer.get_weights() if np.ndim(w) == 4]
    if not kernels:
        convs = [a for a, _, x in walk(lm.net) if any(np.ndim(w) == 4 for w in x.get_weights())]
        raise UserError(f"layer '{args.layer}' has no conv kernel; conv layers: {suggest(args.layer, convs)}")
    weights = kernels[0]
    spec = args.filters if args.filters is not None else f"0:{min(64, weights.shape[-1])}"
    idx = select_filters(spec, weights.shape[-1], args.layer)
    picture = kernel_grid(weights, idx, max_inputs=args.max_inputs, tile_px=args.tile, labels=args.labels)
    out = ensure_dir(args.out or layer_dir("outputs", lm.name, args.layer))
    path = write_png(out / "kernels.png", picture)
    write_npz(out / "kernels.npz", weights=weights[..., idx].astype(np.float32), filters=idx)
    kind = "RGB" if weights.shape[2] == 3 else f"grayscale, first {min(args.max_inputs, weights.shape[2])} of " \
        f"{weights.shape[2]} input channels"
    print(f"{lm.name} {args.layer}: {len(idx)} kernels {weights.shape[0]}x{weights.shape[1]} ({kind}) -> {path}")
    return 0
