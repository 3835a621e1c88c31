"""``bgpflat routes expected`` and ``bgpflat verify``: the expected table and the learned-vs-expected check.

Exit codes of ``verify`` (ux-conventions §1): 0 the routes match, 1 they do not, 2 the check could
not be made (no session, nothing learned, bad input) — each said in words on stderr and in JSON.
``verify --watch`` keeps checking, following the cluster through watches, and never ends on its own.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from bgpflat.cli.arguments.common import (
    LISTING_FORMATS,
    add_context,
    add_kubeconfig,
    add_metrics_listen,
    add_output_option,
    refuse_cluster_flags_with_snapshot,
)
from bgpflat.cli.arguments.learned import BmpSource, FileSource, PeerSource, learned_source
from bgpflat.cli.arguments.model import model_options, outside_peer
from bgpflat.cli.arguments.peer import DEFAULT_STATE_DIR
from bgpflat.cli.output import EXIT_ERROR, EXIT_OK, MACHINE_FORMATS, console, error_line, info, write_data, write_json
from bgpflat.core.bmp.policies import POLICIES, POST_POLICY
from bgpflat.errors import BgpflatError, SpecError

if TYPE_CHECKING:
    from bgpflat.core.routes.cluster import ClusterState
    from bgpflat.core.routes.expected import ExpectedRoutes

FORMAT_VERSION = 1


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this group's sub-commands to the CLI."""
    routes = sub.add_parser(
        "routes",
        help="expected BGP routes computed from the cluster",
        description="Routes computed from the cluster's Calico state.",
    )
    routes_sub = routes.add_subparsers(dest="routes_command", metavar="SUBCOMMAND")
    routes_sub.required = True
    expected = routes_sub.add_parser(
        "expected",
        help="the routes an outside BGP peer should learn from the Calico nodes, and why",
        description="Compute which routes each Calico node advertises to the outside peer --peer, "
        "with next hop, AS path and communities, and the reason for each route.",
    )
    _cluster_arguments(expected)
    add_output_option(expected, LISTING_FORMATS)
    expected.set_defaults(func=expected_command)

    verify = sub.add_parser(
        "verify",
        help="compare what a BGP peer learned with what the cluster should advertise",
        description="Diff the routes learned by the verification peer (or a JSON file, or what a router "
        "reported over BMP) against the expected routes. Exit 0 match, 1 mismatch, 2 could not verify.",
    )
    _cluster_arguments(verify)
    learned = verify.add_mutually_exclusive_group()
    learned.add_argument(
        "--learned",
        metavar="FILE",
        help='learned routes: JSON {"routes": [...]} (as `bgpflat peer routes -o json`) or a list',
    )
    learned.add_argument(
        "--state-dir", metavar="DIR", help=f"the verification peer's state directory (default ./{DEFAULT_STATE_DIR})"
    )
    learned.add_argument(
        "--source",
        metavar="bmp:DIR",
        help="what a real router received, from the state directory of `bgpflat bmp run` (needs --router)",
    )
    verify.add_argument(
        "--router", metavar="IP", help="with --source bmp:DIR: the router, by the address its BMP session comes from"
    )
    verify.add_argument(
        "--policy",
        choices=POLICIES,
        default=POST_POLICY,
        help="with --source bmp:DIR: what the nodes sent the router (pre), what it kept (post, the default; "
        "a route sent but not kept is reported as filtered-by-router) or what it selected as best across all "
        "its peers (loc-rib: each prefix's best path must be one a node was expected to send)",
    )
    verify.add_argument("--endpoint", metavar="HOST:PORT", help="the running peer's TCP endpoint, if it has one")
    verify.add_argument(
        "--wait",
        action="store_true",
        help="poll until converged: End-of-RIB seen, then a match or the same diff for --settle seconds",
    )
    verify.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS", help="give up waiting after this long (default 120)"
    )
    verify.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="poll interval (default 2)")
    verify.add_argument(
        "--settle",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --wait, a mismatch is final once unchanged this long after End-of-RIB (default 10)",
    )
    verify.add_argument(
        "--watch",
        type=float,
        metavar="INTERVAL",
        help="keep verifying every INTERVAL seconds, following the cluster through Kubernetes watches, "
        "until Ctrl-C/SIGTERM; one line on stderr whenever the result changes",
    )
    add_metrics_listen(verify)
    verify.add_argument("--strict", action="store_true", help="unexpected routes fail too")
    add_output_option(verify)
    verify.add_argument("--junit", metavar="FILE", help="write a JUnit XML report (one test case per session)")
    verify.add_argument(
        "--no-github-summary",
        dest="github_summary",
        action="store_false",
        help="do not append the Markdown summary to $GITHUB_STEP_SUMMARY",
    )
    verify.set_defaults(func=verify_command)


def _cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peer", required=True, metavar="IP", help="the outside peer's address (a BGPPeer peerIP)")
    parser.add_argument(
        "--peer-as",
        type=_as_number,
        metavar="ASN",
        help="the outside peer's AS (default: the BGPPeer's asNumber; needed if no BGPPeer exists)",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--snapshot", metavar="FILE", help="cluster state from a snapshot file instead of the API")
    add_kubeconfig(source)
    add_context(parser)
    parser.add_argument(
        "--calico-version",
        type=_calico_version,
        metavar="VERSION",
        help="model this Calico release (default: ClusterInformation's calicoVersion)",
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        metavar="FILE",
        help="lay this flat spec or these Calico manifests over the cluster (or snapshot) first: "
        "the routes of the state after `bgpflat apply -f FILE`; - reads stdin, a directory its manifests; repeatable",
    )
    parser.add_argument(
        "--no-add-path",
        dest="add_path",
        action="store_false",
        help="the peer does not negotiate ADD-PATH: expect only each node's best path",
    )


def _as_number(text: str) -> int:
    from bgpflat.core.calico import parse_as_number

    try:
        return parse_as_number(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message} ({exc.fix})") from None


def _calico_version(text: str) -> str:
    from bgpflat.core.calico import release_for

    # A version read from the cluster may be a dev build ("master") and only draws a note; one
    # typed here is a choice, and a typo must not quietly model another release: the rule of
    # `validate --calico-version` (3.x, a version that parses).
    try:
        release_for(text, source="--calico-version")
    except SpecError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message} (fix: {exc.fix})") from None
    return text


# --- inputs ----------------------------------------------------------------------------------------


def load_cluster(args: argparse.Namespace) -> ClusterState:
    from bgpflat.workflows.routes import cluster_state, read_live_objects

    # The spec first: a typo in it must not wait for the whole cluster to be read.
    desired = None
    if getattr(args, "files", None):
        from bgpflat.cli.plan_commands import load_desired_files

        desired = load_desired_files(args.files)
    objects: Sequence[Mapping[str, Any]]
    file: str | None = None
    if args.snapshot:
        from bgpflat.adapters.files import load_snapshot

        snapshot = load_snapshot(args.snapshot)
        objects, file = snapshot.objects, snapshot.file
    else:
        from bgpflat.adapters.kube import CalicoApi, KubeClient

        # The flavour is discovered at the first read, after the target is named on stderr.
        api = CalicoApi(KubeClient.connect(kubeconfig=args.kubeconfig, context=args.context))
        try:
            objects = read_live_objects(api, progress=info)
        finally:
            api.close()
    if desired is not None:
        from bgpflat.workflows.planning import lay_desired_over

        objects = lay_desired_over(objects, desired)
    return cluster_state(objects, file=file)


def compute_expected(args: argparse.Namespace) -> ExpectedRoutes:
    from bgpflat.workflows.routes import expected_for

    peer = outside_peer(args)
    refuse_cluster_flags_with_snapshot(args)
    from bgpflat.adapters.collector import collector_paused

    # The loaded state is hundreds of thousands of long-lived objects on a big cluster; keeping
    # them out of the cyclic collector's walks halves the time of loading and of the route computation.
    with collector_paused(freeze=True):
        cluster = load_cluster(args)
    # The same for the expected routes: a route, its key and its reasons per path (300,000 on a
    # mesh re-exported to an eBGP peer), none of them garbage; the collector's passes over them
    # were half the model's time.
    with collector_paused(freeze=True):
        return expected_for(cluster, peer=peer, options=model_options(args))


# --- commands --------------------------------------------------------------------------------------


def no_peering_message(args: argparse.Namespace) -> str:
    """Why nothing can be expected at --peer, and the flag that fixes it: ``routes expected`` and
    ``verify`` say it alike (exit 2: nothing to compare is not an empty result)."""
    message = f"no Calico node peers with {args.peer}"
    if args.peer_as is None:
        message += " (fix: check --peer, or give --peer-as ASN to model the global BGPPeer you are about to create)"
    else:
        message += " (see the notes above)"
    return message


def expected_command(args: argparse.Namespace) -> int:
    result = compute_expected(args)
    if args.output in MACHINE_FORMATS:
        from bgpflat.adapters.collector import collector_paused

        with collector_paused():  # a record per route, none of them garbage until the end
            write_data({"format_version": FORMAT_VERSION, **result.to_dict()}, args.output)
        for note in result.notes:  # in the JSON too; repeated where a person watching will see it
            info(f"note: {note}")
    elif result.sessions:
        from bgpflat.views.routes import expected_routes_table

        console().print(expected_routes_table(result, wide=args.output == "wide"))
    else:
        for note in result.notes:
            info(f"note: {note}")
    if not result.sessions:
        error_line(no_peering_message(args))
        return EXIT_ERROR
    return EXIT_OK


def verify_command(args: argparse.Namespace) -> int:
    from bgpflat.core.routes.verdict import CANNOT_VERIFY, MATCH, NO_EXPECTATIONS
    from bgpflat.views.reports import junit_xml, markdown_summary
    from bgpflat.workflows.verify import verify

    # Flag values first: a typo must not wait for the whole cluster to be read.
    if args.timeout < 0 or args.interval <= 0 or args.settle < 0:
        raise SpecError("--timeout and --settle must be ≥ 0 and --interval > 0")
    if args.watch is not None or args.metrics_listen:
        return watch_command(args)
    source = learned_source(args)
    expected = compute_expected(args)

    def progress(poll: Any) -> None:
        if args.wait:
            info(f"verify: attempt {poll.attempts} after {poll.elapsed:.0f}s: {poll.status} — {poll.message}")

    result = verify(
        expected=expected,
        source=source,
        wait=args.wait,
        timeout=args.timeout,
        interval=args.interval,
        settle=args.settle,
        strict=args.strict,
        on_poll=progress,
    )
    if args.junit:
        _write(args.junit, junit_xml(result))
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path and args.github_summary:
        try:
            with open(summary_path, "a", encoding="utf-8") as handle:
                handle.write(markdown_summary(result))
        except OSError as exc:
            info(f"bgpflat: cannot append to $GITHUB_STEP_SUMMARY ({summary_path}): {exc.strerror}")
    if args.output == "json":
        write_json(result.to_dict())
    else:
        from bgpflat.views.routes import verify_result

        console().print(verify_result(result))
    if result.reason == NO_EXPECTATIONS:
        error_line(f"could not verify ({result.reason}): {no_peering_message(args)}")
    elif result.status == CANNOT_VERIFY:
        error_line(f"could not verify ({result.reason}): {result.message}")
    elif result.status != MATCH:
        info(f"bgpflat: routes do not match: {result.message}")
    return result.exit_code


def _write(path: str, text: str) -> None:
    from bgpflat.adapters.files import write_text_atomic

    try:
        write_text_atomic(path, text)
    except BgpflatError:
        raise
    except OSError as exc:
        raise SpecError(f"cannot write: {exc.strerror}", file=path) from None


# --- verify --watch ----------------------------------------------------------------------------------

DEFAULT_INTERVAL = 30.0
WATCH_CONNECTIONS = 32


def watch_command(args: argparse.Namespace) -> int:
    """``verify --watch INTERVAL [--metrics-listen HOST:PORT]``: verify for as long as it runs.

    The cluster is listed once and then followed through Kubernetes watches
    (``bgpflat.adapters.kube.watch``); the learned routes are read every INTERVAL seconds. A line on
    stderr whenever the outcome changes (``-o json``: the result as one JSON line on stdout), the
    last result as Prometheus metrics. Ctrl-C or SIGTERM ends it after the run in flight, exit 0.
    """
    import json
    import signal
    import sys
    import threading
    import time

    from bgpflat.adapters.kube import CalicoApi, KubeClient
    from bgpflat.adapters.kube.watch import ClusterWatch
    from bgpflat.daemon.metrics import check_available, serve
    from bgpflat.daemon.verify_metrics import VerifyMetrics
    from bgpflat.workflows.routes import cluster_state, expected_for
    from bgpflat.workflows.verify import watch_verify

    interval = DEFAULT_INTERVAL if args.watch is None else args.watch
    if interval <= 0:
        raise SpecError("the interval must be > 0 seconds", path="--watch", fix="e.g. --watch 30")
    for flag, given in (("--snapshot", args.snapshot), ("--wait", args.wait), ("--junit", args.junit)):
        if given:
            raise SpecError(
                f"{flag} does not go with --watch/--metrics-listen",
                path=flag,
                fix="--watch follows a live cluster and never ends; drop one of them",
            )
    check_available(args.metrics_listen)
    source = learned_source(args, forever=True)
    peer = outside_peer(args)
    options = model_options(args)
    desired = None
    if args.files:
        from bgpflat.cli.plan_commands import load_desired_files

        desired = load_desired_files(args.files)

    def expected_of(objects: list[dict[str, Any]]) -> Any:
        laid: Sequence[Mapping[str, Any]] = objects
        if desired is not None:
            from bgpflat.workflows.planning import lay_desired_over

            laid = lay_desired_over(objects, desired)
        return expected_for(cluster_state(laid), peer=peer, options=options)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # One connection per watch (a dozen resources) and one for the rest, so none is ever dropped.
    api = CalicoApi(KubeClient.connect(kubeconfig=args.kubeconfig, context=args.context, connections=WATCH_CONNECTIONS))
    info(f"watching context {api.target.context!r} ({api.target.server}); verifying every {interval:g} s")
    watch = ClusterWatch(api, on_error=lambda message: info(f"bgpflat: {message}"))
    metrics = VerifyMetrics(peer.address)
    server = None
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        watch.start()
        server = serve(args.metrics_listen, metrics.families)
        if server is not None:
            info(f"metrics on http://{server.address}/metrics")
        last: list[tuple[Any, ...]] = []

        def on_result(result: Any) -> None:
            metrics.record(result, now=time.time())
            shown = (result.status, result.message)
            if last and last[0] == shown:
                return
            last[:] = [shown]
            info(f"verify: {result.status}: {result.message}")
            if args.output == "json":
                sys.stdout.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
                sys.stdout.flush()

        watch_verify(
            cluster=watch,
            peer=peer,
            expected_of=expected_of,
            source=source,
            strict=args.strict,
            wait=lambda: stop.wait(interval),
            on_result=on_result,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.close()
        watch.close()
        api.close()
    info("verify --watch: stopped")
    return EXIT_OK


__all__ = ["EXIT_ERROR", "BmpSource", "FileSource", "PeerSource", "register"]
