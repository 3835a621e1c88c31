"""Where the CLI writes: data on stdout, messages and progress on stderr; colour only on a terminal."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK = 0
EXIT_DIFFERENCES = 1
EXIT_ERROR = 2

PIPED_WIDTH = 400

_color = "auto"


def configure_output(*, color: str) -> None:
    global _color
    _color = color


def _want_color(stream: object) -> bool | None:
    """True/False to force, None to let rich decide (it honours NO_COLOR, FORCE_COLOR, TERM=dumb)."""
    if _color == "never" or os.environ.get("NO_COLOR"):
        return False
    if _color == "always":
        return True
    return None


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    wanted = _want_color(stream)
    # Piped output (files, CI logs, less) has no width; rich would assume 80 columns and squeeze
    # tables into truncated cells. Let tables take their natural width instead, unless COLUMNS says.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH
    # soft_wrap: long lines are never broken by rich, so piped output stays one record per line.
    if wanted is False:
        return Console(file=stream, no_color=True, highlight=False, force_terminal=False, soft_wrap=True, width=width)
    if wanted is True:
        return Console(file=stream, force_terminal=True, highlight=False, soft_wrap=True, width=width)
    return Console(file=stream, highlight=False, soft_wrap=True, width=width)


def error_line(message: str) -> None:
    """One line on stderr, prefixed so that it stands out in CI logs."""
    print(f"bgpflat: error: {message}", file=sys.stderr)


def info(message: str) -> None:
    print(message, file=sys.stderr)
