"""`filterviz figure CONFIG`: a paper figure from a sweep's finished results (the config's `figure:` section)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("figure", help="make the figure of a sweep config from its finished results")
    p.add_argument("config", help="YAML config file with a 'figure:' section")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..errors import UserError
    from ..paper import write_figure

    cfg = load_config(args.config)
    if cfg.figure is None:
        raise UserError(f"{cfg.path}: no 'figure:' section; add one, e.g. 'figure: {{layout: rows, width: double}}'")
    for path in write_figure(cfg):
        print(path)
    return 0
