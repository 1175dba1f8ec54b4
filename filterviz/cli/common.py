"""The model options every command that loads a model shares: --model, --input-range, --preprocess, --unsafe."""

from __future__ import annotations

import argparse

from ..inputs import PREPROCESS_HELP, PREPROCESSES
from ..settings import DEFAULT_MODEL

__all__ = ["add_model_options", "load_from_args", "input_options"]


def add_model_options(p: argparse.ArgumentParser) -> None:
    """Add --model, --input-range, --preprocess and --unsafe to a subcommand."""
    g = p.add_argument_group("model")
    g.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or .keras/.h5 path (default {DEFAULT_MODEL})")
    g.add_argument("--input-range", metavar="LO:HI",
                   help="the value range a model file's network takes, e.g. 0:1, -1:1 (default 0:255)")
    g.add_argument("--preprocess", metavar="NAME", type=str.lower,
                   help=f"{'|'.join(PREPROCESSES)}: {PREPROCESS_HELP}")
    g.add_argument("--unsafe", action="store_true", help="allow model files that run code when loaded")


def input_options(args: argparse.Namespace) -> dict:
    """The model-input options that were given, as load_model keywords (and request entries)."""
    return {k: v for k, v in (("input_range", args.input_range), ("preprocess", args.preprocess)) if v is not None}


def load_from_args(args: argparse.Namespace, **kwargs):
    """load_model with the command's model options (checked before the model loads); `warn=False` keeps a model
    file's assumed-range warning for later (models.warn_pending), e.g. until the command's own checks passed."""
    from ..inputs import check_preprocess, parse_input_range
    from ..models import load_model

    parse_input_range(args.input_range)
    check_preprocess(args.preprocess)
    return load_model(args.model, unsafe=args.unsafe, **input_options(args), **kwargs)
