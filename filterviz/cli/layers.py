"""`filterviz layers`: list the layers that can be visualized."""

from __future__ import annotations

import argparse

from ..settings import DEFAULT_MODEL


def add_parser(sub) -> None:
    p = sub.add_parser("layers", help="list the layers of a model that have filters")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or .keras/.h5 path (default {DEFAULT_MODEL})")
    p.add_argument("--unsafe", action="store_true", help="allow model files that run code when loaded")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..models import load_model, visual_layers

    lm = load_model(args.model, unsafe=args.unsafe)
    infos = visual_layers(lm)
    width = max([len(i.name) for i in infos] + [5])
    print(f"{'layer':<{width}}  {'type':<20} {'output shape':<24} filters")
    for i in infos:
        shape = "(" + ", ".join("None" if d is None else str(d) for d in i.output_shape) + ")"
        print(f"{i.name:<{width}}  {i.kind:<20} {shape:<24} {i.filters}")
    return 0
