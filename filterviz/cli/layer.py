"""`filterviz layer LAYER`: render every (or some) filter of a layer to a grid picture."""

from __future__ import annotations

import argparse

from . import DEFAULT_MODEL


def add_render_options(p: argparse.ArgumentParser) -> None:
    """The render settings, shared by every command that renders filters. Unset options keep the preset's."""
    g = p.add_argument_group("render settings (override the preset)")
    g.add_argument("--preset", default="fast", help="fast, quality or lucid (default fast)")
    g.add_argument("--size", type=int, help="image size in pixels")
    g.add_argument("--steps", type=int, help="gradient-ascent steps")
    g.add_argument("--lr", type=float, help="step size")
    g.add_argument("--seed", type=int, help="random seed (same seed, same pictures)")
    g.add_argument("--chunk", type=int, help="filters per batch (default: from --max-memory)")
    g.add_argument("--max-memory", type=float, dest="max_memory_gb", help="activation memory budget in GB")
    g.add_argument("--border", type=int, help="feature-map pixels left out of the objective on each side")
    g.add_argument("--param", help="pixel, fourier or maco (phase only, with a photo's spectrum)")
    g.add_argument("--contrast", type=float, help="maco only: the picture's contrast before the sigmoid (default 2)")
    g.add_argument("--optimizer", help="normalized or adam")
    g.add_argument("--transforms", help="none, standard (mirrored shift, zoom, rotation) or lucid (Lucid's recipe)")
    g.add_argument("--tv", type=float, help="total-variation penalty weight")
    g.add_argument("--specificity", type=float,
                   help="weight of the penalty on the layer's other filters (relative to photos; quality uses 3)")
    g.add_argument("--colour", type=float,
                   help="weight of the penalty on colourfulness above --colour-limit (greyer, photo-like colours)")
    g.add_argument("--colour-limit", type=float, help="colourfulness allowed without penalty (default 60)")
    g.add_argument("--xla", action="store_true", default=None, help="compile the loop with XLA")
    g.add_argument("--mirrored", action="store_true", default=None,
                   help="split the filters across all visible GPUs (tf.distribute.MirroredStrategy)")
    g.add_argument("--coarse", type=float, help="share of the steps run at half size (coarse to fine; default 0)")
    g.add_argument("--precision", help="float32, mixed_float16, mixed_bfloat16 or auto (bfloat16 on CPUs with AMX)")
    g.add_argument("--post-activation", action="store_false", dest="pre_activation", default=None,
                   help="maximize the layer's output after its activation (default: before)")
    g.add_argument("--no-labels", action="store_false", dest="labels", default=None, help="no filter numbers")


def settings_from_args(args: argparse.Namespace):
    from ..ascent import RenderSettings, preset

    fields = set(RenderSettings.__dataclass_fields__)
    changes = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return preset(args.preset, **changes)


def add_parser(sub) -> None:
    p = sub.add_parser("layer", help="render the filters of a layer into one grid picture")
    p.add_argument("layer", help="layer name (see: filterviz layers)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or .keras/.h5 path (default {DEFAULT_MODEL})")
    p.add_argument("--filters", default="all", help="all, a range like 0:64, or a list like 3,7,9")
    p.add_argument("--out", help="output folder (default outputs/<model>/<layer>/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--unsafe", action="store_true", help="allow model files that run code when loaded")
    p.add_argument("--force", action="store_true", help="render every filter again, even ones already in --out")
    add_render_options(p)
    p.set_defaults(run=run)


def model_request(spec: str, layer: str, filters) -> dict:
    """What a `filterviz layer` run was asked for, stored with its results so a re-run knows whether it may
    resume: the model as given (plus a file's size and modification time), the layer and the filter indices."""
    import os

    try:
        st = os.stat(spec)
        stamp = [st.st_size, st.st_mtime_ns]
    except OSError:
        stamp = None  # a built-in model name
    return {"model": str(spec), "model_file": stamp, "layer": layer, "filters": [int(f) for f in filters]}


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..ascent import LayerRenderer, select_filters
    from ..models import feature_extractor, load_model
    from ..files import ensure_dir
    from ..sweep import layer_dir, render_into

    settings = settings_from_args(args)
    lm = load_model(args.model, unsafe=args.unsafe)
    extractor = feature_extractor(lm, args.layer, pre_activation=settings.pre_activation)
    idx = select_filters(args.filters, extractor.filters, args.layer)  # fail on a bad index before any work
    out = args.out or layer_dir("outputs", lm.name, args.layer)
    ensure_dir(out)
    request = model_request(args.model, args.layer, idx)
    renderer = None
    if lm.fixed_size in (None, (settings.size, settings.size)):  # else render_layer says which size to use
        renderer = LayerRenderer(extractor, settings, channels=lm.channels, input_range=lm.input_range,
                                 max_filters=len(idx))
    result, reused = render_into(lm, args.layer, idx, settings, out, request=request, renderer=renderer,
                                 quiet=args.quiet, force=args.force)
    dead = sum(r["dead"] for r in result.metrics)
    print(
        f"{lm.name} {args.layer}: {len(result.filters)} filters in {result.seconds:.1f} s"
        + (f" ({reused} already done)" if reused else "")
        + f", {dead} dead -> {Path(out) / 'grid.png'}",
        file=sys.stdout,
    )
    return 0
