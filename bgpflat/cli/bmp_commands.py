"""``bgpflat bmp run|status|routes``: the BMP monitoring station and what it recorded."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bgpflat.cli.arguments.common import LISTING_FORMATS, add_metrics_listen, add_output_option
from bgpflat.cli.output import EXIT_OK, MACHINE_FORMATS, console, info, write_data
from bgpflat.core.bmp.policies import POLICIES

DEFAULT_STATE_DIR = "bgpflat-bmp"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this group's sub-commands to the CLI."""
    bmp = sub.add_parser(
        "bmp",
        help="a BMP station: what real routers received from the Calico nodes",
        description="Receive BGP Monitoring Protocol (RFC 7854) from routers: their pre- and "
        "post-policy Adj-RIB-In and Loc-RIB. The station never sends anything to a router.",
    )
    bmp_sub = bmp.add_subparsers(dest="bmp_command", metavar="SUBCOMMAND")
    bmp_sub.required = True

    run = bmp_sub.add_parser(
        "run",
        help="run the station in the foreground",
        description="Accept BMP sessions from routers (--listen) and/or dial routers that listen "
        "(--connect), until SIGINT/SIGTERM. Several routers at once.",
    )
    run.add_argument(
        "--listen", action="append", default=[], metavar="IP:PORT", help="accept routers here (repeatable)"
    )
    run.add_argument(
        "--connect",
        action="append",
        default=[],
        metavar="IP:PORT",
        help="dial a router's BMP listener, again with backoff when the session ends (repeatable)",
    )
    run.add_argument(
        "--state-dir",
        default=DEFAULT_STATE_DIR,
        metavar="DIR",
        help=f"events, snapshot, socket (default ./{DEFAULT_STATE_DIR})",
    )
    run.add_argument(
        "--endpoint", metavar="HOST:PORT", help="serve the read-only endpoint on loopback TCP instead of DIR/bmp.sock"
    )
    run.add_argument(
        "--events-max-bytes",
        type=int,
        metavar="N",
        help="rotate DIR/events.jsonl once it would pass N bytes (default 64 MiB; 0 = never rotate)",
    )
    add_metrics_listen(run)
    run.set_defaults(func=run_command)

    for name, helptext, func in (
        ("status", "print the routers, their monitored peers and tables", status_command),
        ("routes", "print the routes the routers reported", routes_command),
    ):
        cmd = bmp_sub.add_parser(name, help=helptext, description=helptext.capitalize() + ".")
        cmd.add_argument("--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR", help="the station's state directory")
        cmd.add_argument("--endpoint", metavar="HOST:PORT", help="read from this loopback endpoint instead")
        cmd.add_argument("--router", metavar="IP", help="only this router (the address it connects from)")
        cmd.add_argument("--peer", metavar="IP", help="only this monitored peer (the node that sent the routes)")
        cmd.add_argument("--policy", choices=POLICIES, help="only this table: pre-policy, post-policy or Loc-RIB")
        add_output_option(cmd, LISTING_FORMATS)
        cmd.set_defaults(func=func)


def run_command(args: argparse.Namespace) -> int:
    from bgpflat.bmp.station import Station, StationOptions, parse_address_port
    from bgpflat.daemon.metrics import check_available as check_metrics
    from bgpflat.daemon.state import EVENTS_MAX_BYTES
    from bgpflat.errors import SpecError
    from bgpflat.views.bmp import describe_event

    if args.events_max_bytes is not None and args.events_max_bytes < 0:
        raise SpecError("--events-max-bytes must be ≥ 0", fix="0 never rotates")
    options = StationOptions(
        state_dir=Path(args.state_dir).resolve(),
        listen=tuple(parse_address_port(text, flag="--listen") for text in args.listen),
        connect=tuple(parse_address_port(text, flag="--connect") for text in args.connect),
        endpoint=args.endpoint,
        events_max_bytes=EVENTS_MAX_BYTES if args.events_max_bytes is None else args.events_max_bytes,
        metrics_listen=args.metrics_listen,
    )
    check_metrics(args.metrics_listen)
    Station(options, notify=lambda record: info(describe_event(record))).run()
    return EXIT_OK


def read_state(state_dir: str, endpoint: str | None, path: str) -> dict[str, Any]:
    """From the running station's endpoint, or else from its last snapshot (said on stderr)."""
    from bgpflat.bmp.state import StateDir
    from bgpflat.daemon.endpoint import fetch_running

    state = StateDir(Path(state_dir))
    answered = fetch_running(state, endpoint, path)
    if answered is not None:
        data = answered[1]
        data["source"] = "live"
        return data
    data = state.read_snapshot()
    data["source"] = "snapshot"
    data["running"] = False
    info(f"bgpflat bmp: station not running; showing the snapshot written at {data.get('written_at', '?')}")
    return data


def _canonical(text: str | None, flag: str) -> str | None:
    from bgpflat.core.net.prefixes import canonical_address
    from bgpflat.errors import SpecError

    if text is None:
        return None
    try:
        return canonical_address(text)
    except SpecError as exc:
        raise SpecError(exc.message, path=flag, fix="give a bare IP address") from None


def select(records: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    router, peer = _canonical(args.router, "--router"), _canonical(args.peer, "--peer")
    return [
        r
        for r in records
        if (router is None or r.get("router") == router)
        and (peer is None or r.get("peer") == peer)
        and (args.policy is None or r.get("policy") == args.policy)
    ]


def routes_command(args: argparse.Namespace) -> int:
    from bgpflat.views.bmp import render_routes

    data = read_state(args.state_dir, args.endpoint, "/routes")
    records = select(data.get("routes") or [], args)
    if args.output in MACHINE_FORMATS:
        write_data({"format_version": 1, "source": data["source"], "routes": records}, args.output)
        return EXIT_OK
    console().print(render_routes(records))
    return EXIT_OK


def status_command(args: argparse.Namespace) -> int:
    from bgpflat.views.bmp import render_status

    data = read_state(args.state_dir, args.endpoint, "/status")
    data.pop("routes", None)
    router, peer = _canonical(args.router, "--router"), _canonical(args.peer, "--peer")
    routers = [r for r in data.get("routers") or [] if router is None or r.get("router") == router]
    for item in routers:
        peers = [p for p in item.get("peers") or [] if peer is None or p.get("peer") == peer]
        if args.policy is not None:
            for p in peers:
                p["tables"] = {k: v for k, v in (p.get("tables") or {}).items() if k == args.policy}
        item["peers"] = peers
    data["routers"] = routers
    if args.output in MACHINE_FORMATS:
        write_data(data, args.output)
        return EXIT_OK
    console().print(render_status(data))
    return EXIT_OK
