"""The `filterviz` command: a thin layer over the Python API.

Each subcommand lives in its own module with `add_parser(subparsers)` and `run(args) -> int`.
User errors print one line on stderr and exit 2; TensorFlow is imported only when a command needs it.
"""

from __future__ import annotations

import argparse
import os
import sys

from .. import __version__

__all__ = ["main"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
NEGATIVE_VALUES = ("--input-range",)  # options whose value may start with '-' (-1:1), which argparse takes for an option


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USER_ERROR)


def _parser() -> argparse.ArgumentParser:
    from . import attribute, examples, figure, gallery, kernels, layer, layers, sweep

    p = _Parser(prog="filterviz", description="See what a convolutional network has learned.")
    p.add_argument("--version", action="version", version=f"filterviz {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (layer, layers, sweep, figure, attribute, kernels, examples, gallery):
        module.add_parser(sub)
    return p


def _joined(argv: list[str]) -> list[str]:
    """argv with `--input-range -1:1` written as `--input-range=-1:1`, which argparse reads as the value."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in NEGATIVE_VALUES and i + 1 < len(argv) and argv[i + 1][:1] == "-" and argv[i + 1][1:2].isdigit():
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(_joined(list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_USER_ERROR
    from ..errors import Interrupted, UserError
    from ..quiet import start_tensorflow

    import signal

    def _terminate(signum, frame):  # SIGTERM (e.g. a cluster's time limit) unwinds like Ctrl-C: temp files go
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        start_tensorflow()  # without its C++ start-up lines
        return int(args.run(args) or 0)
    except UserError as e:
        sys.stderr.write(f"filterviz: error: {e}\n")
        return EXIT_USER_ERROR
    except KeyboardInterrupt as e:
        what = str(e) if isinstance(e, Interrupted) else "finished files are kept, nothing half-written"
        sys.stderr.write(f"filterviz: interrupted: {what}\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `filterviz layers | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
