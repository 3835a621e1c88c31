"""ExaBGP JSON API lines -> typed peer events (``bgpflat.core.exabgp.events``).

ExaBGP writes one JSON object per line on its API processes' stdin. The two supported versions
differ (exabgp-lab-notes §5): 4.2 gives ``as-path`` as a flat list and adds ``confederation-path``;
5.0 gives an object of numbered segments. Both are accepted here so that the rest of bgpflat never
sees a version difference.

``parse_line`` never raises: anything it cannot make sense of becomes a ``Malformed`` event, which
the RIB counts. A verification peer that crashed on one odd line would lose every route it holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bgpflat.core.exabgp.events import (
    Announcement,
    EndOfRibEvent,
    IgnoredEvent,
    MalformedEvent,
    NegotiatedEvent,
    NotificationEvent,
    OpenEvent,
    PathAttributes,
    PeerEvent,
    SessionStateEvent,
    UpdateEvent,
)
from bgpflat.core.exabgp.nlri import BadLine, PathKey, nlri_count, path_keys, path_texts
from bgpflat.core.net.prefixes import canonical_address
from bgpflat.core.routes.table import (
    ORIGINS,
    Community,
    LargeCommunity,
    make_communities,
    make_large_communities,
)
from bgpflat.errors import SpecError

SUPPORTED_FAMILIES = ("ipv4 unicast", "ipv6 unicast")

# ExaBGP answers commands with bare text lines; a receive-only consumer never sends commands, but
# ``exabgp.api.ack`` defaults to true, so these can still appear and are not errors.
_TEXT_LINES = frozenset({"done", "error", "shutdown", b"done", b"error", b"shutdown"})
_MAX_QUOTED = 200
_new = tuple.__new__


def parse_line(line: str | bytes) -> PeerEvent:
    """Turn one ExaBGP API line (4.2 or 5.0 JSON) into an event; never raises."""
    stripped = line.strip()
    if not stripped or stripped in _TEXT_LINES:
        return IgnoredEvent(kind="text")
    try:
        # json.loads takes bytes as they come from the socket: no decoded copy of a 20 kB line.
        data = json.loads(stripped)
    except ValueError as exc:  # UnicodeDecodeError and a number of thousands of digits included
        return MalformedEvent(reason=f"not JSON: {exc}", line=_quote(stripped))
    except RecursionError:
        return MalformedEvent(reason="not JSON: nested deeper than the parser goes", line=_quote(stripped))
    try:
        return _dispatch(data)
    except (BadLine, SpecError) as exc:
        return MalformedEvent(reason=str(exc), line=_quote(stripped))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        # RecursionError: a value nested hundreds deep where a scalar belongs, met by repr() in
        # the message that describes it; its own text would be no better than the exception name.
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return MalformedEvent(reason=f"unexpected shape: {type(exc).__name__}: {detail}", line=_quote(stripped))


def _quote(line: str | bytes) -> str:
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return text if len(text) <= _MAX_QUOTED else text[:_MAX_QUOTED] + "…"


def _dispatch(data: Any) -> PeerEvent:
    if not isinstance(data, dict):
        raise BadLine("a JSON line must be an object")
    kind = data.get("type")
    neighbor = data.get("neighbor")
    if kind == "notification" and not isinstance(neighbor, dict):
        # ExaBGP's own shutdown line has no neighbor key.
        return NotificationEvent(peer=None, code=None, subcode=None, text=str(data.get("notification", "")))
    if not isinstance(kind, str):
        raise BadLine("no 'type'")
    if not isinstance(neighbor, dict):
        raise BadLine(f"'{kind}' line without a neighbor")
    peer = _peer_address(neighbor)
    if kind == "state":
        return _state(neighbor, peer)
    if kind == "update":
        return _update(neighbor, peer)
    if kind == "open":
        return _open(neighbor, peer)
    if kind == "negotiated":
        return _negotiated(neighbor, peer)
    if kind == "notification":
        return _notification(neighbor, peer)
    return IgnoredEvent(kind=kind)


def _peer_address(neighbor: Mapping[str, Any]) -> str:
    address = neighbor.get("address")
    if not isinstance(address, dict) or not isinstance(address.get("peer"), str):
        raise BadLine("neighbor.address.peer missing")
    return canonical_address(address["peer"])


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadLine(f"expected an integer, got {value!r}")
    return value


def _state(neighbor: Mapping[str, Any], peer: str) -> SessionStateEvent:
    state = neighbor.get("state")
    if not isinstance(state, str):
        raise BadLine("state line without a state")
    address = neighbor["address"]
    local = address.get("local")
    asn_raw = neighbor.get("asn")
    asn: Mapping[str, Any] = asn_raw if isinstance(asn_raw, dict) else {}
    return SessionStateEvent(
        peer=peer,
        local=canonical_address(local) if isinstance(local, str) and local else "",
        peer_as=_optional_int(asn.get("peer")),
        local_as=_optional_int(asn.get("local")),
        state=state,
        reason=str(neighbor.get("reason", "")),
    )


def _update(neighbor: Mapping[str, Any], peer: str) -> PeerEvent:
    message = neighbor.get("message")
    if not isinstance(message, dict):
        raise BadLine("update line without a message")
    eor = message.get("eor")
    if isinstance(eor, dict):
        return EndOfRibEvent(peer=peer, family=f"{eor['afi']} {eor['safi']}")
    update = message.get("update")
    if not isinstance(update, dict):
        raise BadLine("update message without 'update' or 'eor'")
    announcements: list[Announcement] = []
    withdrawn: list[PathKey] = []
    unsupported = 0
    announce = update.get("announce")
    if announce:
        if not isinstance(announce, dict):
            raise BadLine("'announce' is not an object")
        attrs = update.get("attribute") or {}
        if not isinstance(attrs, dict):
            raise BadLine("'attribute' is not an object")
        as_path = _as_path(attrs.get("as-path"))
        origin = attrs.get("origin", "igp")
        if origin not in ORIGINS:
            raise BadLine(f"unknown origin {origin!r}")
        communities = make_communities(_community(c) for c in attrs.get("community") or ())
        large = make_large_communities(_large_community(c) for c in attrs.get("large-community") or ())
        for family, by_next_hop in announce.items():
            if family not in SUPPORTED_FAMILIES:
                unsupported += nlri_count(by_next_hop)
                continue
            if not isinstance(by_next_hop, dict):
                raise BadLine(f"announce[{family!r}] is not an object")
            for next_hop_text, items in by_next_hop.items():
                next_hop = canonical_address(next_hop_text)
                if type(items) is not list:
                    raise BadLine(f"announce[{family!r}][{next_hop_text!r}] is not a list")
                attributes = _new(PathAttributes, (next_hop, peer, as_path, origin, communities, large))
                announcements.append(Announcement(attributes, *path_texts(items)))
    withdraw = update.get("withdraw")
    if withdraw:
        if not isinstance(withdraw, dict):
            raise BadLine("'withdraw' is not an object")
        for family, items in withdraw.items():
            if family not in SUPPORTED_FAMILIES:
                unsupported += nlri_count(items)
                continue
            if type(items) is not list:
                raise BadLine(f"withdraw[{family!r}] is not a list")
            withdrawn.extend(path_keys(items))
    return UpdateEvent(
        peer=peer, announcements=tuple(announcements), withdrawn_keys=tuple(withdrawn), unsupported=unsupported
    )


def _as_path(value: Any) -> tuple[int, ...]:
    """Both shapes: 4.2's flat list, 5.0's ``{"0": {"element": …, "value": [...]}}``."""
    if value is None:
        return ()
    if isinstance(value, list):
        return tuple(_flatten_asns(value))
    if isinstance(value, dict):
        path: list[int] = []
        for key in sorted(value, key=int):
            segment = value[key]
            # Confederation segments are not part of the path a peer outside the confederation
            # compares (4.2 reports them separately as ``confederation-path``).
            if str(segment.get("element", "")).startswith("confed"):
                continue
            path.extend(_flatten_asns(segment["value"]))
        return tuple(path)
    raise BadLine(f"bad as-path {value!r}")


def _flatten_asns(values: list[Any]) -> list[int]:
    result: list[int] = []
    for value in values:
        if isinstance(value, list):  # an AS_SET inside a 4.2 list
            result.extend(_flatten_asns(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            result.append(value)
        else:
            raise BadLine(f"bad AS number {value!r}")
    return result


def _community(value: Any) -> Community:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[1])
    raise BadLine(f"bad community {value!r}")


def _large_community(value: Any) -> LargeCommunity:
    if isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) for v in value):
        return (value[0], value[1], value[2])
    raise BadLine(f"bad large community {value!r}")


def _open(neighbor: Mapping[str, Any], peer: str) -> OpenEvent:
    message = neighbor.get("open")
    if not isinstance(message, dict):
        raise BadLine("open line without 'open'")
    router_id = message.get("router_id", "")
    return OpenEvent(
        peer=peer,
        router_id=str(router_id),
        asn=_optional_int(message.get("asn")),
        hold_time=_optional_int(message.get("hold_time")),
    )


def _negotiated(neighbor: Mapping[str, Any], peer: str) -> NegotiatedEvent:
    message = neighbor.get("negotiated")
    if not isinstance(message, dict):
        raise BadLine("negotiated line without 'negotiated'")
    add_path_raw = message.get("add_path")
    add_path: Mapping[str, Any] = add_path_raw if isinstance(add_path_raw, dict) else {}
    return NegotiatedEvent(
        peer=peer,
        families=tuple(str(f) for f in message.get("families") or ()),
        add_path_receive=tuple(str(f) for f in add_path.get("receive") or ()),
        hold_time=_optional_int(message.get("hold_time")),
    )


def _notification(neighbor: Mapping[str, Any], peer: str) -> NotificationEvent:
    message = neighbor.get("notification")
    if isinstance(message, dict):
        return NotificationEvent(
            peer=peer,
            code=_optional_int(message.get("code")),
            subcode=_optional_int(message.get("subcode")),
            text=str(message.get("data", "")),
        )
    return NotificationEvent(peer=peer, code=None, subcode=None, text=str(message or ""))
