"""User errors: mistakes the user can fix, reported as one line with exit status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["UserError", "Interrupted", "suggest"]


class UserError(Exception):
    """A bad name, path, number or file given by the user. The CLI prints it as one line and exits 2."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM after the finished work was saved; str() is the one-line summary the CLI prints."""


def suggest(value: str, choices: Iterable[str], n: int = 3) -> str:
    """A short 'did you mean' / 'valid: ...' tail naming what is valid, closest matches first."""
    choices = list(choices)
    close = difflib.get_close_matches(value, choices, n=n, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    shown = ", ".join(choices[:12]) + (f", ... ({len(choices)} in all)" if len(choices) > 12 else "")
    return f"valid: {shown}"
