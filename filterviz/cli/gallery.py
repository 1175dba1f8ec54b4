"""`filterviz gallery OUTDIR`: a static website of the renders, dataset examples and kernels under a folder."""

from __future__ import annotations

import argparse

from ..settings import DEFAULT_OUTPUT

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """Register the `gallery` subcommand."""
    p = sub.add_parser("gallery", help="write a static website (no server, no network) of what is under --from")
    p.add_argument("outdir", help="folder to write the website to (replaced if it holds an earlier gallery)")
    p.add_argument("--from", dest="source", default=DEFAULT_OUTPUT,
                   help=f"folder of results: renders, examples/ and kernels (default {DEFAULT_OUTPUT}/)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Discover the results, write the pages and pictures, then swap the new site into place."""
    from ..gallery import write_gallery

    site = write_gallery(args.source, args.outdir)
    print(f"gallery of {site['layers']} layers ({site['filters']} filter pages) from {args.source} -> "
          f"{site['index']}")
    return 0
