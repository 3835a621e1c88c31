"""bgpflat's command line: argparse and the composition root.

``main(argv) -> int`` never lets a traceback reach the user unless ``--debug`` is given: errors that
bgpflat raises on purpose print their message and exit 2 (exit codes: ux-conventions §1). Each
command group lives in its own module and registers its sub-commands; imports of heavy libraries
(kubernetes, rich) happen inside the handlers so that ``bgpflat --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO, cast

from bgpflat import __version__
from bgpflat.cli import (
    bmp_commands,
    external_commands,
    lab_commands,
    peer_commands,
    plan_commands,
    render_commands,
    routes_commands,
    shell_commands,
    validate_commands,
)
from bgpflat.cli.arguments.examples import HelpFormatter, command_path, epilog
from bgpflat.cli.arguments.parser import Parser, add_global_options, subcommand_parsers
from bgpflat.cli.output import EXIT_ERROR, GuardedStdout, configure_output, error_line
from bgpflat.errors import BgpflatError

COMMAND_GROUPS = (
    plan_commands,
    validate_commands,
    routes_commands,
    peer_commands,
    bmp_commands,
    render_commands,
    external_commands,
    lab_commands,
    shell_commands,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="bgpflat",
        description="Flatten the network between an office and a Calico cluster over BGP, and prove it.",
    )
    parser.add_argument("--version", action="version", version=f"bgpflat {__version__}")
    add_global_options(parser, suppress_defaults=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in COMMAND_GROUPS:
        group.register(sub)
    # Global options after the sub-command too (`bgpflat plan ... --debug`), as kubectl takes them;
    # and under every command's options, examples of it.
    for command in subcommand_parsers(parser):
        add_global_options(command, suppress_defaults=True)
    for command in (parser, *subcommand_parsers(parser)):
        command.epilog = epilog(command_path(command))
        command.formatter_class = HelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_output(color=args.color)
    stdout = sys.stdout
    guarded = GuardedStdout(stdout)
    sys.stdout = cast(TextIO, guarded)
    try:
        code: int = args.func(args)
        # Output smaller than the buffer meets a full disk only here, not at interpreter exit.
        guarded.flush()
        return code
    except BgpflatError as exc:
        if args.debug:
            raise
        error_line(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        error_line("interrupted")
        return 130
    finally:
        sys.stdout = stdout


if __name__ == "__main__":  # pragma: no cover - python -m bgpflat.cli
    sys.exit(main())
