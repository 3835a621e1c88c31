"""``bgpflat peer run|routes|status``: the receive-only ExaBGP verification peer."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from pathlib import Path
from typing import Any

from bgpflat.cli.arguments.common import LISTING_FORMATS, add_metrics_listen, add_output_option
from bgpflat.cli.arguments.peer import DEFAULT_STATE_DIR, PASSWORD_ENV, build_config, collect_settings, setting_int
from bgpflat.cli.output import EXIT_OK, MACHINE_FORMATS, console, info, write_data


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this group's sub-commands to the CLI."""
    peer = sub.add_parser(
        "peer",
        help="the receive-only ExaBGP verification peer",
        description="Run a receive-only BGP peer that learns what Calico advertises.",
    )
    peer_sub = peer.add_subparsers(dest="peer_command", metavar="SUBCOMMAND")
    peer_sub.required = True

    run = peer_sub.add_parser(
        "run",
        help="run ExaBGP as a receive-only peer in the foreground",
        description="Generate a receive-only ExaBGP config and run ExaBGP under supervision until "
        "SIGINT/SIGTERM. Flags override values from --config.",
    )
    run.add_argument("--config", metavar="FILE", help="YAML/JSON file with the same settings (keys as the flags)")
    run.add_argument(
        "--local-as", metavar="ASN", help="this peer's AS, asplain or dotted a.b (default: the BGPPeer's asNumber)"
    )
    run.add_argument("--router-id", metavar="IPV4", help="BGP router id (default: the IPv4 --listen address)")
    run.add_argument(
        "--listen", action="append", metavar="ADDR", help="local address to peer from; once per address family"
    )
    run.add_argument(
        "--neighbor",
        action="append",
        metavar="IP[,IP…]",
        help="neighbor address(es); by hand, so not with --from-snapshot/--from-cluster",
    )
    run.add_argument(
        "--neighbor-range", action="append", metavar="CIDR", help="accept sessions from any address in CIDR (passive)"
    )
    run.add_argument("--peer-as", metavar="ASN", help="the neighbors' AS (asplain or dotted a.b)")
    source = run.add_mutually_exclusive_group()
    source.add_argument(
        "--from-snapshot",
        metavar="FILE",
        help="neighbors = nodes selected by the BGPPeer pointing here, from a YAML of objects",
    )
    source.add_argument("--from-cluster", action="store_true", help="the same, read from the live cluster (kubeconfig)")
    run.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig for --from-cluster")
    run.add_argument("--context", metavar="NAME", help="kubeconfig context for --from-cluster")
    run.add_argument("--hold-time", type=int, metavar="SECONDS", help="BGP hold time (default 90)")
    run.add_argument("--password-file", metavar="FILE", help=f"TCP MD5 password file (or set {PASSWORD_ENV})")
    run.add_argument(
        "--no-add-path", dest="add_path", action="store_false", default=None, help="do not offer ADD-PATH receive"
    )
    run.add_argument("--passive", action="store_true", default=None, help="only accept sessions, never connect out")
    run.add_argument("--port", type=int, metavar="PORT", help="BGP port to listen on / connect to (default 179)")
    run.add_argument(
        "--state-dir", metavar="DIR", help=f"event log, snapshots, sockets (default ./{DEFAULT_STATE_DIR})"
    )
    run.add_argument(
        "--events-max-bytes",
        type=int,
        metavar="N",
        help="rotate DIR/events.jsonl once it would pass N bytes: it becomes events.jsonl.1, older "
        "ones .2 and .3, the oldest is dropped (default 64 MiB; 0 = never rotate). DIR/exabgp.log "
        "past N bytes becomes exabgp.log.1 when ExaBGP is (re)started",
    )
    run.add_argument(
        "--endpoint", metavar="HOST:PORT", help="serve the read-only endpoint on loopback TCP instead of DIR/peer.sock"
    )
    add_metrics_listen(run)
    run.add_argument("--exabgp", metavar="COMMAND", help="ExaBGP command line (default: this Python's exabgp server)")
    run.add_argument("--watch", action="store_true", help="show a live view of sessions")
    run.set_defaults(func=run_command)

    for name, helptext, func in (
        ("routes", "print the learned routes", routes_command),
        ("status", "print the sessions: state, uptime, prefixes, End-of-RIB", status_command),
    ):
        cmd = peer_sub.add_parser(name, help=helptext, description=helptext.capitalize() + ".")
        cmd.add_argument("--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR", help="the peer's state directory")
        cmd.add_argument("--endpoint", metavar="HOST:PORT", help="read from this loopback endpoint instead")
        add_output_option(cmd, LISTING_FORMATS)
        cmd.set_defaults(func=func)


# -- run -----------------------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> int:
    from bgpflat.daemon.metrics import check_available as check_metrics
    from bgpflat.peer.state import EVENTS_MAX_BYTES
    from bgpflat.peer.supervisor import PeerRuntime, RunOptions
    from bgpflat.views import peer as views

    settings = collect_settings(args)
    config = build_config(args, settings)
    options = RunOptions(
        config=config,
        state_dir=Path(str(settings.get("state_dir") or DEFAULT_STATE_DIR)).resolve(),
        endpoint=settings.get("endpoint"),
        events_max_bytes=setting_int(
            settings, "events_max_bytes", "--events-max-bytes", default=EVENTS_MAX_BYTES, low=0, high=2**62
        ),
        metrics_listen=str(settings["metrics_listen"]) if settings.get("metrics_listen") else None,
    )
    check_metrics(options.metrics_listen)
    if settings.get("exabgp"):
        options = dataclasses.replace(options, exabgp_command=tuple(shlex.split(str(settings["exabgp"]))))
    if not args.watch:
        runtime = PeerRuntime(options, notify=lambda notice: info(views.describe_notice(notice)))
        runtime.run()
        return EXIT_OK

    from rich.live import Live

    out = console()
    live_holder: list[Live] = []
    runtime = PeerRuntime(options, notify=lambda notice: _live_print(live_holder, views.describe_notice(notice)))
    with Live(console=out, refresh_per_second=4, transient=False) as live:
        live_holder.append(live)

        def tick() -> None:
            live.update(views.render_status(runtime.status(), live=True))

        runtime.run(tick=tick, tick_interval=0.5)
        live.update(views.render_status(runtime.status(), live=True))
    return EXIT_OK


def _live_print(holder: list[Any], text: str) -> None:
    if holder:
        holder[0].console.print(text, markup=False, highlight=False)
    else:
        info(text)


# -- routes and status ---------------------------------------------------------------------------


def read_state(args: argparse.Namespace, path: str) -> dict[str, Any]:
    """From the running peer's endpoint, or else from its last snapshot (said on stderr)."""
    from bgpflat.peer.endpoint import EndpointUnavailable, fetch, fetch_running
    from bgpflat.peer.state import StateDir

    state = StateDir(Path(args.state_dir))
    answered = fetch_running(state, args.endpoint, path)
    if answered is not None:
        data = answered[1]
        data["source"] = "live"
        return data
    data = state.read_snapshot()
    recorded = data.get("endpoint")
    if data.get("running") and isinstance(recorded, str) and not recorded.startswith("unix:"):
        # A peer run with --endpoint HOST:PORT records where it serves in its snapshot.
        try:
            live = fetch(recorded, path)
            live["source"] = "live"
            return live
        except EndpointUnavailable:
            pass
    data["source"] = "snapshot"
    data["running"] = False
    info(f"bgpflat peer: not running; showing the snapshot written at {data.get('written_at', '?')}")
    return data


def routes_command(args: argparse.Namespace) -> int:
    from bgpflat.core.routes.table import RouteTable
    from bgpflat.views import peer as views

    data = read_state(args, "/routes")
    records = data.get("routes") or []
    if args.output in MACHINE_FORMATS:
        write_data({"format_version": 1, "source": data["source"], "routes": records}, args.output)
        return EXIT_OK
    table = RouteTable.from_records(records, where="peer routes")
    console().print(views.render_routes(table))
    return EXIT_OK


def status_command(args: argparse.Namespace) -> int:
    from bgpflat.views import peer as views

    data = read_state(args, "/status")
    if args.output in MACHINE_FORMATS:
        data.pop("routes", None)
        write_data(data, args.output)
        return EXIT_OK
    console().print(views.render_status(data, live=False))
    return EXIT_OK
