"""`filterviz layer LAYER`: render every (or some) filter of a layer to a grid picture."""

from __future__ import annotations

import argparse

from ..settings import DEFAULT_MODEL, PRESETS, SCHEMA, RenderSettings, preset


def add_render_options(p: argparse.ArgumentParser) -> None:
    """The render settings, shared by every command that renders filters: `--preset` and one option per
    RenderSettings field, generated from its FieldSpec. Unset options (None) keep the preset's value."""
    g = p.add_argument_group("render settings (override the preset)")
    names = list(PRESETS)
    g.add_argument("--preset", default="fast", help=f"{', '.join(names[:-1])} or {names[-1]} (default fast)")
    for name, spec in SCHEMA.items():
        text = spec.help.replace("%", "%%")  # argparse formats help with %
        if spec.kind is bool:  # a switch to the value the default is not
            action = "store_false" if spec.default else "store_true"
            g.add_argument(spec.option, action=action, dest=name, default=None, help=text)
        else:
            g.add_argument(spec.option, dest=name, type=None if spec.kind is str else spec.kind, help=text)


def settings_from_args(args: argparse.Namespace) -> RenderSettings:
    """The preset named by --preset with every render option that was given."""
    changes = {k: v for k, v in vars(args).items() if k in SCHEMA and v is not None}
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

    from ..files import ensure_dir
    from ..render import prepare_render
    from ..results import layer_dir, render_into
    from ..settings import DEFAULT_OUTPUT

    plan = prepare_render(args.model, args.layer, args.filters, settings_from_args(args),
                          size_from_model=args.size is None, unsafe=args.unsafe)
    out = ensure_dir(args.out or layer_dir(DEFAULT_OUTPUT, plan.model.name, args.layer))
    request = model_request(args.model, args.layer, plan.filters)
    result, reused = render_into(plan, out, request=request, quiet=args.quiet, force=args.force)
    dead = sum(r["dead"] for r in result.metrics)
    print(
        f"{plan.model.name} {args.layer}: {len(result.filters)} filters in {result.seconds:.1f} s"
        + (f" ({reused} already done)" if reused else "")
        + f", {dead} dead -> {Path(out) / 'grid.png'}",
        file=sys.stdout,
    )
    return 0
