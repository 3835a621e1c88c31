"""Options that several commands take, defined once so that every command spells and explains them alike."""

from __future__ import annotations

import argparse

from bgpflat.cli.output import info
from bgpflat.errors import SpecError

OUTPUT_FORMATS = ("table", "json")
# Commands that list things take what kubectl's listings take: wide is the table with every column
# (and cells never shortened), json and yaml the same data.
LISTING_FORMATS = ("table", "wide", "json", "yaml")

# Both argparse.ArgumentParser and the groups it makes have add_argument; argparse names no common
# public type for them.
Container = argparse.ArgumentParser | argparse._ArgumentGroup | argparse._MutuallyExclusiveGroup


def add_kubeconfig(
    container: Container, *, help_text: str = "kubeconfig file (default: $KUBECONFIG merged, ~/.kube/config)"
) -> None:
    """``--kubeconfig``; ``help_text`` for commands that read no cluster unless asked to."""
    container.add_argument("--kubeconfig", metavar="FILE", help=help_text)


def add_context(container: Container) -> None:
    container.add_argument("--context", metavar="NAME", help="kubeconfig context (default: the current context)")


def add_calico_api(container: Container, *, hidden: bool = False) -> None:
    """``--calico-api auto|v3|v1``: which API the Calico objects are read and written through."""
    container.add_argument(
        "--calico-api",
        choices=("auto", "v3", "v1"),
        default="auto",
        help=argparse.SUPPRESS
        if hidden
        else "which API to use for Calico objects: auto-detect (default), projectcalico.org/v3 "
        "(Calico API server or native v3 CRDs) or crd.projectcalico.org/v1",
    )


def add_cluster_options(parser: argparse.ArgumentParser, *, calico_api: bool = True) -> None:
    """The "cluster" group: ``--kubeconfig``, ``--context`` and, for commands that touch Calico
    objects, ``--calico-api``."""
    group = parser.add_argument_group("cluster")
    add_kubeconfig(group)
    add_context(group)
    if calico_api:
        add_calico_api(group)


def add_output_option(parser: argparse.ArgumentParser, formats: tuple[str, ...] = OUTPUT_FORMATS) -> None:
    """``-o/--output``: a table for people by default, or machine-readable data."""
    machine = "/".join(f for f in formats if f not in ("table", "wide"))
    wide = ", wide for every column" if "wide" in formats else ""
    parser.add_argument(
        "-o",
        "--output",
        choices=formats,
        default="table",
        help=f"table for people (default{wide}), or {machine} with a format_version for scripts",
    )


def add_metrics_listen(container: Container) -> None:
    """``--metrics-listen HOST:PORT``: Prometheus metrics of a long-running command."""
    container.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (e.g. 127.0.0.1:9473; 0.0.0.0:9473 in a pod)",
    )


def refuse_cluster_flags_with_snapshot(args: argparse.Namespace) -> None:
    """``--snapshot`` reads no cluster, so ``--context``/``--kubeconfig`` beside it would be ignored
    without a word: a user who typed both must learn which one counts before anything is read."""
    if not getattr(args, "snapshot", None):
        return
    for flag in ("context", "kubeconfig"):
        if getattr(args, flag, None):
            raise SpecError(f"--{flag} selects a cluster, but --snapshot reads none", fix="drop one of them")


SNAPSHOT_FORMATS = ("json",)


def snapshot_output_file(args: argparse.Namespace) -> str:
    """``--output-file FILE``; ``-o`` is the output format as everywhere else, but ``-o FILE`` (its
    meaning before) still works, with a note to change it."""
    if args.output is not None and args.output not in SNAPSHOT_FORMATS:
        if args.output_file:
            raise SpecError(f"-o {args.output!r} is not an output format (json)", fix="write -o json, or leave -o out")
        info(f"bgpflat: warning: `snapshot -o FILE` is deprecated: write `snapshot --output-file {args.output}`")
        return str(args.output)
    if not args.output_file:
        raise SpecError("where should the snapshot go?", path="--output-file", fix="add --output-file FILE")
    return str(args.output_file)
