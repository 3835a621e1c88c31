"""Options that several commands take, defined once so that every command spells and explains them alike."""

from __future__ import annotations

import argparse

OUTPUT_FORMATS = ("table", "json")

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
    machine = "/".join(f for f in formats if f != "table")
    parser.add_argument(
        "-o",
        "--output",
        choices=formats,
        default="table",
        help=f"table for people (default), or {machine} with a format_version for scripts",
    )


def add_metrics_listen(container: Container) -> None:
    """``--metrics-listen HOST:PORT``: Prometheus metrics of a long-running command."""
    container.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (e.g. 127.0.0.1:9473; 0.0.0.0:9473 in a pod)",
    )
