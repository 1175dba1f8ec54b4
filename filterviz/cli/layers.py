"""`filterviz layers`: list the layers that can be visualized, and what a render of each uses."""

from __future__ import annotations

import argparse

from .common import add_model_options, load_from_args

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """Register the `layers` subcommand."""
    p = sub.add_parser("layers", help="list the layers of a model that have filters (nested models included)")
    add_model_options(p)
    p.set_defaults(run=run)


def _shape(shape: tuple) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def run(args: argparse.Namespace) -> int:
    """Print the model's input (shape, range in use) and one row per layer: address, type, output shape,
    filters, and the unit a render uses (through a BN, an activation's input, logits...)."""
    from ..models import visual_layers

    lm = load_from_args(args)  # a file with no stated range: the warning line goes before the table
    infos = visual_layers(lm)
    print(f"model {lm.name}: input {_shape(tuple(lm.net.inputs[0].shape))}, {lm.describe_input()}"
          + (f", renders at {lm.fixed_size[0]}x{lm.fixed_size[1]}" if lm.fixed_size else ""))
    width = max([len(i.name) for i in infos] + [5])
    print(f"{'layer':<{width}}  {'type':<20} {'output shape':<24} {'filters':<7}  render uses")
    for i in infos:
        print(f"{i.name:<{width}}  {i.kind:<20} {_shape(i.output_shape):<24} {i.filters:<7}  {i.unit}")
    return 0
