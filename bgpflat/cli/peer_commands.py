"""``bgpflat peer run|routes|status``: the receive-only ExaBGP verification peer."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import shlex
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bgpflat.cli.output import EXIT_OK, console, info
from bgpflat.errors import PeerError, SpecError

if TYPE_CHECKING:
    from rich.console import RenderableType

    from bgpflat.core.exabgp.config import PeerConfig
    from bgpflat.core.exabgp.rib import Notice

PASSWORD_ENV = "BGPFLAT_PEER_PASSWORD"
DEFAULT_STATE_DIR = "bgpflat-peer"


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
        cmd.add_argument("-o", "--output", choices=("table", "json"), default="table")
        cmd.set_defaults(func=func)


# -- run -----------------------------------------------------------------------------------------

_FILE_KEYS = {
    "local_as",
    "router_id",
    "listen",
    "neighbor",
    "neighbors",
    "neighbor_range",
    "neighbor_ranges",
    "peer_as",
    "from_snapshot",
    "hold_time",
    "password_file",
    "add_path",
    "passive",
    "port",
    "state_dir",
    "endpoint",
    "exabgp",
    "events_max_bytes",
}


def _load_config_file(path: str) -> dict[str, Any]:
    from bgpflat.adapters.files import load_documents

    documents = load_documents(path)
    if len(documents) > 1:
        raise SpecError("expected one YAML document", file=path, line=documents[1].line)
    data = documents[0].data if documents else {}
    if not isinstance(data, dict):
        raise SpecError("the peer config must be a mapping", file=path)
    settings = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = set(settings) - _FILE_KEYS
    if unknown:
        raise SpecError(f"unknown keys {sorted(unknown)}", file=path, fix=f"use {sorted(_FILE_KEYS)}")
    for plural, singular in (("neighbors", "neighbor"), ("neighbor_ranges", "neighbor_range")):
        if plural in settings:
            settings[singular] = settings.pop(plural)
    return settings


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings = _load_config_file(args.config) if args.config else {}
    for key in _FILE_KEYS:
        value = getattr(args, key, None)
        if value is not None and value != []:
            settings[key] = value
    if args.from_cluster:
        settings.pop("from_snapshot", None)
    return settings


def _password(settings: Mapping[str, Any]) -> str | None:
    path = settings.get("password_file")
    if path:
        try:
            text = Path(str(path)).read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(f"cannot read the password file: {exc.strerror}", file=str(path)) from None
        password = text.rstrip("\r\n")
        if not password:
            raise SpecError("the password file is empty", file=str(path))
        return password
    return os.environ.get(PASSWORD_ENV) or None


def build_config(args: argparse.Namespace, settings: Mapping[str, Any]) -> PeerConfig:
    """Flags and config file -> a validated ``PeerConfig``."""
    from bgpflat.core.exabgp import config as exabgp_conf
    from bgpflat.core.net.prefixes import parse_address
    from bgpflat.peer import cluster

    listen = _as_list(settings.get("listen"))
    if not listen:
        raise SpecError("no local address", fix="give --listen ADDR (the address the nodes' BGPPeer points at)")
    for address in listen:
        _check_address(address, "--listen", fix="give the bare address; the port is --port")
    by_hand = _as_list(settings.get("neighbor")) + _as_list(settings.get("neighbor_range"))
    from_calico = bool(settings.get("from_snapshot")) or bool(getattr(args, "from_cluster", False))
    if by_hand and from_calico:
        raise SpecError(
            "--neighbor/--neighbor-range and --from-snapshot/--from-cluster both choose the neighbors",
            fix="give the neighbors either by hand or from Calico's BGPPeers, not both",
        )
    if (args.kubeconfig or args.context) and not getattr(args, "from_cluster", False):
        raise SpecError("--kubeconfig and --context are read only with --from-cluster", fix="add --from-cluster")
    peer_as = _setting_as(settings, "peer_as", "--peer-as")
    neighbors: list[exabgp_conf.Neighbor] = []
    local_as = _setting_as(settings, "local_as", "--local-as")
    for key, flag in (("neighbor", "--neighbor"), ("neighbor_range", "--neighbor-range")):
        for address in _as_list(settings.get(key)):
            if peer_as is None:
                raise SpecError(f"no AS for neighbor {address}", fix="give --peer-as")
            try:
                neighbors.append(exabgp_conf.neighbor(address, peer_as=peer_as))
            except SpecError as exc:
                raise SpecError(exc.message, path=flag, fix=exc.fix) from None
    objects: list[dict[str, Any]] | None = None
    if settings.get("from_snapshot"):
        objects = _snapshot_objects(str(settings["from_snapshot"]))
    elif getattr(args, "from_cluster", False):
        objects = cluster.read_cluster_objects(kubeconfig=args.kubeconfig, context=args.context)
    if objects is not None:
        peering = cluster.select_neighbors(
            objects=objects, local_addresses=listen, peer_as=None if peer_as is None else int(peer_as)
        )
        for reason in peering.skipped:
            info(f"bgpflat peer: {reason}")
        if not peering.bgp_peers:
            raise PeerError(
                f"no BGPPeer has peerIP {' or '.join(listen)}; no node would peer here (fix: check --listen, "
                "or create the BGPPeer that points at this address)"
            )
        if local_as is None:
            local_as = peering.local_as
        elif peering.local_as is not None and peering.local_as != local_as:
            info(
                f"bgpflat peer: warning: BGPPeer {', '.join(peering.bgp_peers)} expects AS "
                f"{peering.local_as}, running as {local_as}"
            )
        neighbors.extend(n for n in peering.neighbors if n.address not in {m.address for m in neighbors})
        info(f"bgpflat peer: {len(peering.neighbors)} node(s) selected by BGPPeer {', '.join(peering.bgp_peers)}")
    if local_as is None:
        raise SpecError("no local AS", fix="give --local-as")
    router_id = settings.get("router_id") or next((a for a in listen if parse_address(a)[0] == 4), None)
    if router_id is None:
        raise SpecError("no router id", fix="give --router-id (an IPv4 address)")
    # "is None", not "or": --port 0 and --hold-time 0 are values to check, not "unset".
    port = _setting_int(settings, "port", "--port", default=179, low=1, high=65535)
    hold_time = _setting_int(settings, "hold_time", "--hold-time", default=90, low=0, high=65535)
    config = exabgp_conf.PeerConfig(
        local_as=local_as,
        router_id=str(router_id),
        local_addresses=tuple(listen),
        neighbors=tuple(neighbors),
        hold_time=hold_time,
        md5_password=_password(settings),
        add_path=bool(settings.get("add_path", True)),
        passive=bool(settings.get("passive", False)),
        listen_port=port,
        connect_port=port,
    )
    exabgp_conf.validate(config)
    return config


def _check_address(text: str, flag: str, *, fix: str) -> None:
    from bgpflat.core.net.prefixes import canonical_address

    try:
        canonical_address(text)
    except SpecError as exc:
        raise SpecError(exc.message, path=flag, fix=fix) from None


def _setting_as(settings: Mapping[str, Any], key: str, flag: str) -> int | None:
    from bgpflat.core.calico import parse_as_number

    value = settings.get(key)
    if value is None:
        return None
    try:
        return parse_as_number(value)
    except SpecError as exc:
        raise SpecError(exc.message, path=flag, fix=exc.fix) from None


def _setting_int(settings: Mapping[str, Any], key: str, flag: str, *, default: int, low: int, high: int) -> int:
    value = settings.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"expected a whole number, got {value!r}", path=flag, fix=f"use {low}-{high}")
    if not low <= value <= high:
        raise SpecError(f"{value} is out of range", path=flag, fix=f"use {low}-{high}")
    return value


def _snapshot_objects(path: str) -> list[dict[str, Any]]:
    """``--from-snapshot``: any file of Kubernetes objects, read and checked like every other input."""
    from bgpflat.adapters.files import load_documents
    from bgpflat.peer.cluster import flatten_objects

    documents = load_documents(path)
    if not documents:
        raise SpecError("empty file", file=path, fix="give a snapshot, e.g. from `bgpflat snapshot -o FILE`")
    for doc in documents:
        if not isinstance(doc.data, dict) or not doc.data.get("kind"):
            raise SpecError(
                "not a Kubernetes object (no kind)",
                file=path,
                line=doc.line,
                fix="give Nodes and BGPPeers, e.g. a snapshot from `bgpflat snapshot -o FILE`",
            )
    return flatten_objects(doc.data for doc in documents)


def run_command(args: argparse.Namespace) -> int:
    from bgpflat.peer.state import EVENTS_MAX_BYTES
    from bgpflat.peer.supervisor import PeerRuntime, RunOptions

    settings = _settings(args)
    config = build_config(args, settings)
    options = RunOptions(
        config=config,
        state_dir=Path(str(settings.get("state_dir") or DEFAULT_STATE_DIR)).resolve(),
        endpoint=settings.get("endpoint"),
        events_max_bytes=_setting_int(
            settings, "events_max_bytes", "--events-max-bytes", default=EVENTS_MAX_BYTES, low=0, high=2**62
        ),
    )
    if settings.get("exabgp"):
        options = dataclasses.replace(options, exabgp_command=tuple(shlex.split(str(settings["exabgp"]))))
    if not args.watch:
        runtime = PeerRuntime(options, notify=lambda notice: info(describe_notice(notice)))
        runtime.run()
        return EXIT_OK

    from rich.live import Live

    out = console()
    live_holder: list[Live] = []
    runtime = PeerRuntime(options, notify=lambda notice: _live_print(live_holder, describe_notice(notice)))
    with Live(console=out, refresh_per_second=4, transient=False) as live:
        live_holder.append(live)

        def tick() -> None:
            live.update(render_status(runtime.status(), live=True))

        runtime.run(tick=tick, tick_interval=0.5)
        live.update(render_status(runtime.status(), live=True))
    return EXIT_OK


def _live_print(holder: list[Any], text: str) -> None:
    if holder:
        holder[0].console.print(text, markup=False, highlight=False)
    else:
        info(text)


def describe_notice(notice: Notice) -> str:
    """One line per notice, for people (stderr)."""
    d = notice.detail
    who = notice.peer or "bgpflat peer"
    kind = notice.kind
    if kind == "up":
        stale = f"; {d['stale_paths']} stale path(s) kept until End-of-RIB" if d.get("stale_paths") else ""
        return f"{who}: session up{stale}"
    if kind == "connecting":
        return f"{who}: connecting"
    if kind == "down":
        kept = f"; {d['stale']} path(s) kept as stale" if d.get("stale") else ""
        reason = d.get("reason") or "no reason given"
        return f"{who}: session down ({reason}); {d.get('flushed', 0)} path(s) removed{kept}"
    if kind == "eor":
        swept = f", {d['swept']} stale path(s) removed" if d.get("swept") else ""
        return f"{who}: End-of-RIB {d['family']}: {d['paths']} path(s){swept}"
    if kind == "notification":
        return f"{who}: NOTIFICATION ({d.get('code')},{d.get('subcode')}) received"
    if kind == "peer-started":
        return f"bgpflat peer: running (pid {d['pid']}), endpoint {d['endpoint']}"
    if kind == "exabgp-started":
        return f"bgpflat peer: ExaBGP started (pid {d['pid']})"
    if kind == "exabgp-exited":
        tail = "".join(f"\n    {line}" for line in d.get("log_tail", []))
        return f"bgpflat peer: ExaBGP exited with {d['code']}; restarting in {d['restart_in']:g} s{tail}"
    if kind == "collector-lost":
        return f"bgpflat peer: lost ExaBGP's event stream; {d['action']}"
    if kind == "speaker-shutdown":
        return "bgpflat peer: ExaBGP shut down"
    if kind == "peer-stopping":
        return "bgpflat peer: stopping ExaBGP"
    if kind == "peer-stopped":
        return "bgpflat peer: stopped"
    return f"{who}: {kind} {json.dumps(d)}" if d else f"{who}: {kind}"


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

    data = read_state(args, "/routes")
    records = data.get("routes") or []
    if args.output == "json":
        json.dump({"format_version": 1, "source": data["source"], "routes": records}, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    table = RouteTable.from_records(records, where="peer routes")
    console().print(render_routes(table))
    return EXIT_OK


def status_command(args: argparse.Namespace) -> int:
    data = read_state(args, "/status")
    if args.output == "json":
        data.pop("routes", None)
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    console().print(render_status(data, live=False))
    return EXIT_OK


def render_routes(table: Any) -> RenderableType:
    from rich.table import Table

    out = Table(title=f"Learned routes ({len(table)} paths)", title_justify="left")
    for column in ("Neighbor", "Prefix", "Next hop", "AS path", "Communities", "Large communities", "Path ID"):
        out.add_column(column, no_wrap=column in {"Prefix", "Neighbor", "Next hop"})
    for route in table.sorted():
        out.add_row(
            route.session,
            str(route.prefix),
            route.next_hop,
            " ".join(str(a) for a in route.as_path),
            " ".join(f"{a}:{b}" for a, b in route.communities),
            " ".join(f"{a}:{b}:{c}" for a, b, c in route.large_communities),
            "" if route.path_id is None else str(route.path_id),
        )
    return out


def _age(since: float | None, now: float) -> str:
    if since is None:
        return ""
    seconds = max(0, int(now - since))
    return str(dt.timedelta(seconds=seconds))


_STATE_STYLE = {"up": "green", "connecting": "yellow", "down": "red", "idle": "dim"}


def render_status(data: Mapping[str, Any], *, live: bool) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    now = time.time()
    exabgp = data.get("exabgp") or {}
    if data.get("source") == "snapshot":
        head = f"peer not running (snapshot written at {data.get('written_at', '?')})"
    elif not data.get("running", True):
        head = "peer stopped"
    elif exabgp.get("running"):
        head = f"ExaBGP pid {exabgp.get('pid')} running, {exabgp.get('restarts', 0)} restart(s)"
    else:
        wait = exabgp.get("next_restart_in")
        head = "ExaBGP not running" + (f", restarting in {wait:.1f} s" if wait is not None else "")
    counters = data.get("counters") or {}
    head += f"; malformed lines: {counters.get('malformed', 0)}"
    table = Table(
        title_justify="left",
        title=f"bgpflat peer AS{data.get('local_as')} router-id {data.get('router_id')}" if live else None,
    )
    for column in ("Neighbor", "AS", "State", "Since", "Prefixes", "Paths", "End-of-RIB", "Info"):
        table.add_column(column, justify="right" if column in {"Prefixes", "Paths", "AS"} else "left")
    for session in data.get("sessions") or []:
        state = str(session.get("state"))
        families = session.get("families") or []
        eor = session.get("eor") or {}
        if families:
            eor_text = " ".join(f"{f.split()[0]}{'✓' if f in eor else '…'}" for f in families)
        else:
            eor_text = " ".join(f"{f.split()[0]}✓" for f in eor) or "-"
        notes = []
        if session.get("stale"):
            notes.append(f"stale ({session.get('stale_paths', 0)} paths)")
        if state == "connecting" and session.get("connect_attempts"):
            notes.append(f"{session['connect_attempts']} attempt(s)")
        if state in {"down", "connecting"} and session.get("reason"):
            notes.append(str(session["reason"]))
        table.add_row(
            str(session.get("peer")),
            str(session.get("peer_as") or ""),
            Text(state, style=_STATE_STYLE.get(state, "")),
            _age(session.get("up_since") if state == "up" else session.get("since"), now),
            str(session.get("prefixes", 0)),
            str(session.get("paths", 0)),
            eor_text,
            "; ".join(notes),
        )
    return Group(Text(head), table)
