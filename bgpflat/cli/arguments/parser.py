"""The argparse parser every bgpflat command uses: global options anywhere, errors in kubectl's shape.

* ``--debug`` and ``--color`` are accepted before or after the sub-command (``bgpflat plan --debug``
  as well as ``bgpflat --debug plan``), as kubectl's global flags are.
* A usage error is one ``bgpflat: error:`` line naming the command, then the command's usage on one
  line (required arguments and ``[options]``) and where the full help is, instead of argparse's
  usage block of every option.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import NoReturn

COLOR_CHOICES = ("auto", "always", "never")


def add_global_options(parser: argparse.ArgumentParser, *, suppress_defaults: bool) -> None:
    """``--debug`` and ``--color``. On sub-commands their defaults are suppressed so that a value
    given before the sub-command is not reset by the sub-command's parser."""
    group = parser.add_argument_group("global options")
    suppressed = argparse.SUPPRESS
    group.add_argument(
        "--debug",
        action="store_true",
        default=suppressed if suppress_defaults else False,
        help="show tracebacks for errors",
    )
    group.add_argument(
        "--color",
        choices=COLOR_CHOICES,
        default=suppressed if suppress_defaults else "auto",
        help="colour: auto (on a terminal, honouring NO_COLOR and FORCE_COLOR), always (even with NO_COLOR set) "
        "or never",
    )


def subcommand_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every sub-command's parser below ``parser``, depth first, each once (aliases share one)."""
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if id(child) not in seen:
                    seen.add(id(child))
                    yield child
                    yield from subcommand_parsers(child)


def one_line_usage(parser: argparse.ArgumentParser) -> str:
    """``bgpflat plan -f FILE [options]``: the prog, what must be given, and [options] if more exists."""
    formatter = parser._get_formatter()
    parts = [parser.prog]
    optional = False
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            parts.append(f"{action.metavar or action.dest} ...")
        elif not action.option_strings:
            parts.append(formatter._format_args(action, action.dest.upper()))
        elif action.required:
            text = action.option_strings[0]
            if action.nargs != 0:
                text += " " + formatter._format_args(action, action.dest.upper())
            parts.append(text)
        else:
            optional = True
    if optional:
        parts.append("[options]")
    return " ".join(parts)


class Parser(argparse.ArgumentParser):
    """argparse with bgpflat's error shape; ``add_subparsers`` makes its sub-commands of this class too."""

    def error(self, message: str) -> NoReturn:
        top = self.prog.split()[0]
        sys.stderr.write(f"{top}: error: {self.prog}: {message}\n")
        sys.stderr.write(f"usage: {one_line_usage(self)}  (see: {self.prog} --help)\n")
        sys.exit(2)
