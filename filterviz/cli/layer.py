"""`filterviz layer LAYER`: render every (or some) filter of a layer to a grid picture."""

from __future__ import annotations

import argparse

from ..settings import DEFAULT_PRESET, PRESETS, SCHEMA, RenderSettings, preset
from .common import add_model_options, input_options, load_from_args


def add_render_options(p: argparse.ArgumentParser) -> None:
    """The render settings, shared by every command that renders filters: `--preset` and one option per
    RenderSettings field, generated from its FieldSpec. Unset options (None) keep the preset's value."""
    g = p.add_argument_group("render settings (override the preset)")
    names = list(PRESETS)
    g.add_argument("--preset", default=DEFAULT_PRESET,
                   help=f"{', '.join(names[:-1])} or {names[-1]} (default {DEFAULT_PRESET})")
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
    p.add_argument("layer", help="layer address (see: filterviz layers), e.g. conv1 or backbone/block_3_expand")
    p.add_argument("--filters", default="all", help="all, a range like 0:64, or a list like 3,7,9")
    p.add_argument("--out", help="output folder (default outputs/<model>/<layer>/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_model_options(p)
    p.add_argument("--force", action="store_true", help="render every filter again, even ones already in --out")
    add_render_options(p)
    p.set_defaults(run=run)


def model_request(spec: str, layer: str, filters, preset: str | None = None) -> dict:
    """What a `filterviz layer` run was asked for, stored with its results so a re-run knows whether it may
    resume: the model as given (plus a file's size and modification time), the layer, the filter indices and
    the preset the settings started from."""
    import os

    try:
        st = os.stat(spec)
        stamp = [st.st_size, st.st_mtime_ns]
    except OSError:
        stamp = None  # a built-in model name
    return {"model": str(spec), "model_file": stamp, "layer": layer, "filters": [int(f) for f in filters],
            "preset": preset}


def _skips_softmax(plan) -> bool:
    from ..models import visual_layers

    return any(i.name == plan.layer and "softmax skipped" in i.unit for i in visual_layers(plan.model))


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..files import ensure_dir
    from ..render import prepare_render
    from ..results import layer_dir, render_into
    from ..settings import DEFAULT_OUTPUT

    settings = settings_from_args(args)  # checked before the model loads
    lm = load_from_args(args, warn=False)  # prepare_render warns once its checks pass
    plan = prepare_render(lm, args.layer, args.filters, settings, size_from_model=args.size is None)
    out = ensure_dir(args.out or layer_dir(DEFAULT_OUTPUT, plan.model.name, args.layer))
    request = dict(model_request(args.model, args.layer, plan.filters, args.preset), **input_options(args))
    if _skips_softmax(plan):
        print(f"note: {args.layer}: rendering the logits (the softmax is skipped)", file=sys.stderr)
    result, reused = render_into(plan, out, request=request, quiet=args.quiet, force=args.force)
    print(
        f"{plan.model.name} {args.layer}: {len(result.filters)} filters in {result.seconds:.1f} s"
        + (f" ({reused} already done)" if reused else "")
        + ("" if result.settings.negative else weak_filters(result.metrics)) + f" -> {Path(out) / 'grid.png'}"
        + whole_layer_estimate(result.seconds, len(result.filters) - reused, plan.renderer.extractor.filters),
        file=sys.stdout,
    )
    return 0


def weak_filters(rows: list[dict]) -> str:
    """', 2 dead (7, 9), 1 below the best photo crop (3); red numbers in the grid': the filters whose picture
    does not beat natural photos, named, never hidden in a grid that looks fine; and those whose picture was grown
    from their best photo crop (filterviz.rescue) instead of noise."""
    def named(ids: list[int]) -> str:
        return ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")

    dead = [r["filter"] for r in rows if r["dead"]]
    beaten = [r["filter"] for r in rows if r.get("failed") and not r["dead"]]
    text = f", {len(dead)} dead" + (f" ({named(dead)})" if dead else "")
    silent = [r["filter"] for r in rows if r["dead"] and r.get("photo_best", 1.0) <= 0]
    if silent:  # the network's own dead units: nothing we tried fires them
        text += f" of which {len(silent)} no photo crop fires either ({named(silent)})"
    if beaten:
        text += f", {len(beaten)} below the best photo crop ({named(beaten)})"
    free = [r["filter"] for r in rows if r.get("colour_free")]
    if free:  # honest: these exceed the colours of photographs, which the preset otherwise keeps to
        text += f", {len(free)} grown without the colour limit ({named(free)})"
    started = [r["filter"] for r in rows if r.get("photo_start")]
    if started:  # honest: these did not grow from noise
        text += f", {len(started)} grown from their best photo crop ({named(started)}; blue numbers in the grid)"
    woken = [r["filter"] for r in rows if r.get("woken")]
    if woken:  # honest: a pixel-level pattern one unit fires on, tiled; it does not survive a shift
        text += f", {len(woken)} woken from one unit's tiled patch ({named(woken)}; purple numbers in the grid)"
    return text + ("; red numbers in the grid" if dead or beaten else "")


def whole_layer_estimate(seconds: float, rendered: int, layer_filters: int) -> str:
    """'; all N filters: about T' (measured seconds per filter x the layer's filter count) when only some of the
    layer's filters were rendered, else ''. It includes this run's one-time compile, so it errs on the long side."""
    if rendered <= 0 or rendered >= layer_filters:
        return ""
    t = seconds / rendered * layer_filters
    shown = f"{t:.0f} s" if t < 120 else f"{t / 60:.0f} min" if t < 7200 else f"{t / 3600:.1f} h"
    return f"; all {layer_filters} filters of the layer: about {shown} at this rate"
