"""`filterviz sweep CONFIG`: render every job of a YAML sweep config, resumably and shardably."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run the jobs of a YAML sweep config (models x layers x settings)")
    p.add_argument("config", help="YAML config file (see configs/)")
    p.add_argument("--dry-run", action="store_true", help="list the jobs (and which are done); write nothing")
    p.add_argument("--shard", metavar="I/N", help="run only shard I of N (1-based), e.g. a SLURM array task")
    p.add_argument("--force", action="store_true", help="redo finished jobs too")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run each job as a Ray task: on a local cluster, or on the cluster at ADDRESS (HOST:PORT, "
                        "ray://HOST:PORT or auto); the output folder must be shared by every node")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..config import load_config
    from ..jobs import parse_shard
    from ..sweep import run_sweep

    shard = parse_shard(args.shard)  # check the arguments before reading anything
    cfg = load_config(args.config)
    report = run_sweep(cfg, shard=shard, force=args.force, quiet=args.quiet, dry_run=args.dry_run,
                       executor="ray" if args.ray is not None else None, ray_address=args.ray or None)
    if not args.dry_run:
        done = ", ".join(str(p) for p in report.figure)
        print(
            f"sweep '{cfg.name}' shard {shard[0]}/{shard[1]}: {len(report.rendered)} rendered, "
            f"{len(report.skipped)} already done -> {report.manifest}" + (f"; figure: {done}" if done else ""),
            file=sys.stdout,
        )
    return 0
