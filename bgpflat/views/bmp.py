"""The BMP station for people: one line per event on stderr, the router/peer table, the routes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bgpflat.views.routes import PlainTable, drop_empty


def describe_event(record: Mapping[str, Any]) -> str:
    """One line per station event, for people (stderr)."""
    who = f"router {record['router']}" if record.get("router") else "bgpflat bmp"
    kind = record.get("event")
    if kind == "station-started":
        return f"bgpflat bmp: running (pid {record['pid']}), endpoint {record['endpoint']}"
    if kind == "station-stopped":
        return "bgpflat bmp: stopped"
    if kind == "router-connected":
        return f"{who}: BMP session up"
    if kind == "initiation":
        return f"{who}: {record.get('sys_name') or '?'} ({record.get('sys_descr') or 'no description'})"
    if kind == "peer-up":
        return f"{who}: monitored peer {record['peer']} AS{record['peer_as']} up"
    if kind == "peer-down":
        return f"{who}: monitored peer {record['peer']} down ({record['reason']}); {record['flushed']} path(s) removed"
    if kind == "termination":
        return f"{who}: terminating the session ({record['reason']})"
    if kind == "connect-failed":
        retry = f"attempt {record['attempts']}, next in {record['retry_in']:g} s"
        return f"{who}: cannot connect ({record['reason']}); {retry}"
    if isinstance(kind, str) and kind.startswith("router-"):
        return f"{who}: session {kind[7:]}: {record.get('reason')}; {record.get('paths_dropped', 0)} path(s) dropped"
    return f"{who}: {kind}"


def render_status(data: Mapping[str, Any]) -> RenderableType:
    """A head line, then one row per monitored peer and table of every router."""
    if data.get("source") == "snapshot":
        head = f"station not running (snapshot written at {data.get('written_at', '?')})"
    else:
        head = f"station pid {data.get('pid')}, listening on {', '.join(data.get('listen') or []) or '-'}"
        if data.get("connect"):
            head += f", connecting to {', '.join(data['connect'])}"
    table = Table(title_justify="left")
    for column in ("Router", "Peer", "AS", "State", "Table", "Prefixes", "Paths", "End-of-RIB", "Info"):
        table.add_column(column, justify="right" if column in {"AS", "Prefixes", "Paths"} else "left")
    for router in data.get("routers") or []:
        name = f"{router.get('router')} {router.get('sys_name') or ''}".strip()
        if not router.get("peers"):
            table.add_row(
                name,
                "",
                "",
                Text(str(router.get("state")), style=_style(router.get("state"))),
                "",
                "",
                "",
                "",
                str(router.get("reason") or ""),
            )
        for peer in router.get("peers") or []:
            tables = peer.get("tables") or {"": {}}
            for policy, counts in tables.items():
                table.add_row(
                    name,
                    str(peer.get("peer")),
                    str(peer.get("peer_as") or ""),
                    Text(str(peer.get("state")), style=_style(peer.get("state"))),
                    policy,
                    str(counts.get("prefixes", "")),
                    str(counts.get("paths", "")),
                    " ".join(f"{f.split()[0]}✓" for f in counts.get("eor") or []) or "-",
                    str(peer.get("reason") or ""),
                )
    return Group(Text(head), table)


def _style(state: object) -> str:
    return {"up": "green", "down": "red", "dropped": "red", "disconnected": "yellow"}.get(str(state), "")


def render_routes(records: Sequence[Mapping[str, Any]]) -> RenderableType:
    # Addresses stay whole, nothing is cut short (PlainTable); also fast for a full table.
    addresses = {"Prefix", "Peer", "Router", "Next hop"}
    headers = ("Router", "Peer", "Policy", "Prefix", "Next hop", "AS path", "Communities", "Path ID")
    rows = [
        [
            str(r.get("router")),
            # A Loc-RIB row's monitored peer is the Loc-RIB instance (0.0.0.0): show the node whose
            # path the router selected instead.
            str(r.get("session") if r.get("policy") == "loc-rib" else r.get("peer")),
            str(r.get("policy")),
            str(r.get("prefix")),
            str(r.get("next_hop")),
            " ".join(str(a) for a in r.get("as_path") or []),
            " ".join([*(r.get("communities") or []), *(r.get("large_communities") or [])]),
            "" if r.get("path_id") is None else str(r["path_id"]),
        ]
        for r in records
    ]
    columns, rows = drop_empty([(h, h in addresses) for h in headers], rows, {"Communities", "Path ID"})
    return PlainTable(f"BMP routes ({len(records)} paths)", columns, rows)
