"""The verification peer for people: notices on stderr, learned routes and the session table."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bgpflat.core.exabgp.rib import Notice
from bgpflat.core.routes.table import RouteTable
from bgpflat.views.routes import PlainTable, drop_empty


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


def render_routes(table: RouteTable) -> RenderableType:
    """The learned paths, one row each, sorted; addresses whole and nothing cut short (PlainTable)."""
    headers = ("Neighbor", "Prefix", "Next hop", "AS path", "Communities", "Large communities", "Path ID")
    rows = [
        [
            route.session,
            str(route.prefix),
            route.next_hop,
            " ".join(str(a) for a in route.as_path),
            " ".join(f"{a}:{b}" for a, b in route.communities),
            " ".join(f"{a}:{b}:{c}" for a, b, c in route.large_communities),
            "" if route.path_id is None else str(route.path_id),
        ]
        for route in table.sorted()
    ]
    addresses = {"Prefix", "Neighbor", "Next hop"}
    columns, rows = drop_empty(
        [(h, h in addresses) for h in headers], rows, {"Communities", "Large communities", "Path ID"}
    )
    return PlainTable(f"Learned routes ({len(table)} paths)", columns, rows)


def _age(since: float | None, now: float) -> str:
    if since is None:
        return ""
    seconds = max(0, int(now - since))
    return str(dt.timedelta(seconds=seconds))


_STATE_STYLE = {"up": "green", "connecting": "yellow", "down": "red", "idle": "dim"}


def render_status(data: Mapping[str, Any], *, live: bool) -> RenderableType:
    """The peer's head line (ExaBGP, restarts, malformed lines) over one row per session."""
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
    # A stopped peer's sessions are whatever its last snapshot held: shown as they were then would
    # read as a peer still connecting, its uptime growing by the minute.
    stopped = data.get("source") == "snapshot" or not data.get("running", True)
    for session in data.get("sessions") or []:
        state = str(session.get("state"))
        if stopped:
            last = f"was {state}" + (f" at {data['written_at']}" if data.get("written_at") else "")
            if state == "connecting" and session.get("connect_attempts"):
                last += f", {session['connect_attempts']} attempt(s)"
            table.add_row(
                str(session.get("peer")),
                str(session.get("peer_as") or ""),
                Text("stopped", style="dim"),
                "",
                str(session.get("prefixes", 0)),
                str(session.get("paths", 0)),
                "-",
                last,
            )
            continue
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
