"""The verification peer's Adj-RIB-In: one table per BGP session, fed by ExaBGP events.

Paths are keyed by (prefix, path-id) inside a session, so ADD-PATH paths for one prefix stay apart
and the same prefix from fifty nodes stays fifty entries (exabgp-lab-notes §5, parser notes).

A path is stored under its path-id, then its canonical prefix text, as a reference to the
attributes it shares with the rest of its UPDATE; ``Route`` objects (and ``(text, path-id)`` keys)
are built only when the table is read. Taking in a table dump is then a few dict updates per
UPDATE instead of work per route, and a stored path costs one dict entry: 1M paths from one route
source take ~110 MiB, where a key tuple per path and a set of prefix texts took ~240 MiB.

Session states as a user sees them:

* ``idle``: configured, nothing heard yet;
* ``connecting``: ExaBGP is trying. ExaBGP in active mode reports a ``connected``/``down`` pair
  every 1–2 s while the neighbor is absent; all of that is one ``connecting`` state, with a
  counter, instead of a stream of flaps;
* ``up``: established;
* ``down``: the session was up and went down; its routes are gone.

Staleness: when the speaker itself is lost (ExaBGP died and is being restarted) the routes are
kept but marked stale, like a graceful-restart helper would; when the session is up again, the
peer re-sends its table and End-of-RIB for a family sweeps whatever was not re-sent.

Time never comes from a clock here: callers pass ``now`` so that the core stays pure.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from itertools import islice
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
    family_of_key,
    routes_of,
)
from bgpflat.core.exabgp.nlri import PathKey
from bgpflat.core.net.prefixes import parse_address
from bgpflat.core.routes.table import Route, RouteTable

IDLE = "idle"
CONNECTING = "connecting"
UP = "up"
DOWN = "down"


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """Something a person watching the peer would want to hear about (also the event log's lines)."""

    kind: str
    peer: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind, "peer": self.peer, **self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionView:
    """A read-only picture of one session, for status output and snapshots."""

    peer: str
    local: str
    peer_as: int | None
    local_as: int | None
    router_id: str
    state: str
    since: float | None
    up_since: float | None
    reason: str
    paths: int
    prefixes: int
    families: tuple[str, ...]
    eor: tuple[tuple[str, float], ...]
    stale: bool
    stale_paths: int
    connect_attempts: int
    updates: int
    announced: int
    withdrawn: int
    unknown_withdraws: int

    @property
    def eor_complete(self) -> bool:
        """End-of-RIB seen for every negotiated family (or at least one, if none were reported)."""
        return _eor_complete(self.families, [family for family, _ in self.eor])

    def to_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "local": self.local,
            "peer_as": self.peer_as,
            "local_as": self.local_as,
            "router_id": self.router_id,
            "state": self.state,
            "since": self.since,
            "up_since": self.up_since,
            "reason": self.reason,
            "paths": self.paths,
            "prefixes": self.prefixes,
            "families": list(self.families),
            "eor": {family: at for family, at in self.eor},
            "eor_complete": self.eor_complete,
            "stale": self.stale,
            "stale_paths": self.stale_paths,
            "connect_attempts": self.connect_attempts,
            "updates": self.updates,
            "announced": self.announced,
            "withdrawn": self.withdrawn,
            "unknown_withdraws": self.unknown_withdraws,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionView:
        return cls(
            peer=str(data["peer"]),
            local=str(data.get("local", "")),
            peer_as=data.get("peer_as"),
            local_as=data.get("local_as"),
            router_id=str(data.get("router_id", "")),
            state=str(data.get("state", IDLE)),
            since=data.get("since"),
            up_since=data.get("up_since"),
            reason=str(data.get("reason", "")),
            paths=int(data.get("paths", 0)),
            prefixes=int(data.get("prefixes", 0)),
            families=tuple(data.get("families") or ()),
            eor=tuple(sorted((str(k), float(v)) for k, v in (data.get("eor") or {}).items())),
            stale=bool(data.get("stale", False)),
            stale_paths=int(data.get("stale_paths", 0)),
            connect_attempts=int(data.get("connect_attempts", 0)),
            updates=int(data.get("updates", 0)),
            announced=int(data.get("announced", 0)),
            withdrawn=int(data.get("withdrawn", 0)),
            unknown_withdraws=int(data.get("unknown_withdraws", 0)),
        )


def _eor_complete(families: tuple[str, ...], seen: Collection[str]) -> bool:
    if families:
        return set(seen).issuperset(families)
    return bool(seen)


class _Session:
    __slots__ = (
        "announced",
        "connect_attempts",
        "eor",
        "families",
        "local",
        "local_as",
        "paths",
        "peer",
        "peer_as",
        "prefix_counted",
        "prefix_texts",
        "reason",
        "router_id",
        "since",
        "stale_families",
        "stale_keys",
        "state",
        "unknown_withdraws",
        "up_since",
        "updates",
        "withdrawn",
    )

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.local = ""
        self.peer_as: int | None = None
        self.local_as: int | None = None
        self.router_id = ""
        self.state = IDLE
        self.since: float | None = None
        self.up_since: float | None = None
        self.reason = ""
        # path-id -> prefix text -> the attributes shared with the path's UPDATE. No group is
        # ever empty. A session without ADD-PATH, or whose peer has one route source, has one.
        self.paths: dict[int | None, dict[str, PathAttributes]] = {}
        # The distinct prefixes over several path-ids (status output), folded in when asked for:
        # with one path-id they are simply its texts. A dict keeps insertion order and
        # re-announcing a path does not move it, so until a path is removed the paths not yet
        # counted are exactly those after the first ``prefix_counted[path_id]`` of each group:
        # status polled during a table dump costs the new paths, not the whole table.
        # None: recount.
        self.prefix_texts: set[str] | None = None
        self.prefix_counted: dict[int | None, int] = {}
        self.families: tuple[str, ...] = ()
        self.eor: dict[str, float] = {}
        self.stale_keys: set[PathKey] = set()
        self.stale_families: set[str] = set()
        self.connect_attempts = 0
        self.updates = 0
        self.announced = 0
        self.withdrawn = 0
        self.unknown_withdraws = 0

    def set_state(self, state: str, now: float) -> None:
        if state != self.state:
            self.state = state
            self.since = now

    @property
    def path_count(self) -> int:
        return sum(map(len, self.paths.values()))

    def items(self) -> Iterator[tuple[PathKey, PathAttributes]]:
        for path_id, group in self.paths.items():
            for text, attributes in group.items():
                yield (text, path_id), attributes

    def _prefix_texts(self) -> Collection[str]:
        """The distinct prefix texts held (a live view: read it before the table changes)."""
        groups = self.paths
        if len(groups) <= 1:
            self.prefix_texts = None
            return next(iter(groups.values())).keys() if groups else ()
        texts = self.prefix_texts
        if texts is None:
            texts = self.prefix_texts = set()
            self.prefix_counted = {}
        counted = self.prefix_counted
        for path_id, group in groups.items():
            done = counted.get(path_id, 0)
            if done < len(group):
                texts.update(islice(group, done, None))
                counted[path_id] = len(group)
        return texts

    def prefixes(self) -> int:
        return len(self._prefix_texts())

    def family_prefixes(self) -> dict[str, int]:
        """Distinct prefixes per family (the metrics' view; ``prefixes`` is their sum)."""
        counts: dict[str, int] = {}
        for text in self._prefix_texts():
            family = family_of_key(text)
            counts[family] = counts.get(family, 0) + 1
        return counts

    def flush(self) -> int:
        count = self.path_count
        self.paths = {}
        self.prefix_texts = None
        self.stale_keys = set()
        self.stale_families = set()
        self.eor = {}
        return count

    def mark_stale(self) -> None:
        self.stale_keys = {key for key, _ in self.items()}
        self.stale_families = {family_of_key(text) for text, _ in self.stale_keys}
        self.eor = {}

    def add(self, announcement: Announcement) -> None:
        texts, path_ids = announcement.texts, announcement.path_ids
        if not texts:
            return
        first = path_ids[0]
        if path_ids.count(first) == len(path_ids):
            group = self.paths.get(first)
            if group is None:
                group = self.paths[first] = {}
            # Both calls run in C; a re-announced path simply gets the new attributes.
            group.update(dict.fromkeys(texts, announcement.attributes))
        else:
            attributes = announcement.attributes
            for text, path_id in zip(texts, path_ids, strict=True):
                self.paths.setdefault(path_id, {})[text] = attributes

    def remove(self, key: PathKey) -> bool:
        text, path_id = key
        group = self.paths.get(path_id)
        if group is None or group.pop(text, None) is None:
            return False
        if not group:
            del self.paths[path_id]
        self.prefix_texts = None
        return True

    def view(self) -> SessionView:
        return SessionView(
            peer=self.peer,
            local=self.local,
            peer_as=self.peer_as,
            local_as=self.local_as,
            router_id=self.router_id,
            state=self.state,
            since=self.since,
            up_since=self.up_since if self.state == UP else None,
            reason=self.reason,
            paths=self.path_count,
            prefixes=self.prefixes(),
            families=self.families,
            eor=tuple(sorted(self.eor.items())),
            stale=bool(self.stale_families),
            stale_paths=len(self.stale_keys),
            connect_attempts=self.connect_attempts,
            updates=self.updates,
            announced=self.announced,
            withdrawn=self.withdrawn,
            unknown_withdraws=self.unknown_withdraws,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RibCounters:
    malformed: int
    ignored: int
    unsupported: int
    last_malformed: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "malformed": self.malformed,
            "ignored": self.ignored,
            "unsupported": self.unsupported,
            "last_malformed": self.last_malformed,
        }


class Rib:
    """Adj-RIB-In for every session of the verification peer."""

    __slots__ = ("_ignored", "_last_malformed", "_malformed", "_sessions", "_unsupported")

    def __init__(self) -> None:
        self._sessions: dict[str, _Session] = {}
        self._malformed = 0
        self._ignored = 0
        self._unsupported = 0
        self._last_malformed = ""

    def expect(self, peer: str, *, peer_as: int | None = None, now: float) -> None:
        """Register a configured neighbor so that status lists it before it says anything."""
        session = self._session(peer, now)
        if peer_as is not None and session.peer_as is None:
            session.peer_as = peer_as

    def _session(self, peer: str, now: float) -> _Session:
        session = self._sessions.get(peer)
        if session is None:
            session = self._sessions[peer] = _Session(peer)
            session.since = now
        return session

    def apply(self, event: PeerEvent, *, now: float) -> Notice | None:
        """Apply one event; returns a notice when something worth telling a person happened."""
        if isinstance(event, UpdateEvent):
            self._update(event, now)
            return None
        if isinstance(event, SessionStateEvent):
            return self._state(event, now)
        if isinstance(event, EndOfRibEvent):
            return self._eor(event, now)
        if isinstance(event, MalformedEvent):
            self._malformed += 1
            self._last_malformed = f"{event.reason}: {event.line}"
            return None
        if isinstance(event, IgnoredEvent):
            self._ignored += 1
            return None
        if isinstance(event, OpenEvent):
            self._session(event.peer, now).router_id = event.router_id
            return None
        if isinstance(event, NegotiatedEvent):
            self._session(event.peer, now).families = tuple(sorted(event.families))
            return None
        if isinstance(event, NotificationEvent):
            if event.peer is None:
                return Notice(kind="speaker-shutdown", peer=None, detail={"text": event.text})
            session = self._session(event.peer, now)
            session.reason = f"notification ({event.code},{event.subcode}) {event.text}".rstrip()
            return Notice(kind="notification", peer=event.peer, detail={"code": event.code, "subcode": event.subcode})
        return None  # pragma: no cover - the union is exhausted above

    def _update(self, event: UpdateEvent, now: float) -> None:
        session = self._session(event.peer, now)
        session.updates += 1
        self._unsupported += event.unsupported
        for announcement in event.announcements:
            session.add(announcement)
            if session.stale_keys:
                session.stale_keys.difference_update(announcement.keys)
            session.announced += len(announcement.texts)
        for key in event.withdrawn_keys:
            # BIRD 1.6 answers a route refresh with withdraws for routes it never announced;
            # those are counted, not errors.
            if not session.remove(key):
                session.unknown_withdraws += 1
            else:
                session.withdrawn += 1
                session.stale_keys.discard(key)

    def _state(self, event: SessionStateEvent, now: float) -> Notice | None:
        session = self._session(event.peer, now)
        if event.local:
            session.local = event.local
        if event.peer_as is not None:
            session.peer_as = event.peer_as
        if event.local_as is not None:
            session.local_as = event.local_as
        previous = session.state
        if event.state == "up":
            session.set_state(UP, now)
            session.up_since = now
            session.reason = ""
            # Routes still held here came from an earlier connection: keep them until the peer
            # has re-sent its table (End-of-RIB), then sweep what it did not re-send.
            if session.paths and not session.stale_families:
                session.mark_stale()
            session.eor = {}
            return Notice(kind="up", peer=event.peer, detail={"stale_paths": len(session.stale_keys)})
        if event.state == "connected":
            if previous == UP:
                return None
            if previous != CONNECTING:
                session.families = ()
            session.connect_attempts += 1
            session.set_state(CONNECTING, now)
            return Notice(kind="connecting", peer=event.peer) if previous != CONNECTING else None
        if event.state == "down":
            session.reason = event.reason
            flushed = session.flush()
            session.families = ()
            if previous == UP or flushed:
                session.set_state(DOWN, now)
                return Notice(kind="down", peer=event.peer, detail={"reason": event.reason, "flushed": flushed})
            # A down while still trying is part of the same connecting state.
            session.set_state(CONNECTING if previous == CONNECTING else DOWN, now)
            return None
        return None

    def _eor(self, event: EndOfRibEvent, now: float) -> Notice:
        session = self._session(event.peer, now)
        session.eor[event.family] = now
        swept = 0
        if event.family in session.stale_families:
            keep: set[PathKey] = set()
            for key in session.stale_keys:
                if family_of_key(key[0]) == event.family:
                    session.remove(key)
                    swept += 1
                else:
                    keep.add(key)
            session.stale_keys = keep
            session.stale_families.discard(event.family)
        return Notice(
            kind="eor",
            peer=event.peer,
            detail={"family": event.family, "paths": session.path_count, "swept": swept},
        )

    def speaker_lost(self, *, now: float, reason: str) -> list[Notice]:
        """ExaBGP is gone: every session is down, but its routes are kept, stale, until EOR."""
        notices = []
        for session in self._sessions.values():
            if session.state == UP:
                notices.append(
                    Notice(
                        kind="down",
                        peer=session.peer,
                        detail={"reason": reason, "flushed": 0, "stale": session.path_count},
                    )
                )
            if session.paths and not session.stale_families:
                session.mark_stale()
            session.reason = reason
            session.families = ()
            session.set_state(DOWN if session.state == UP else session.state, now)
        return notices

    def all_down(self, *, now: float, reason: str) -> list[Notice]:
        """The peer is stopping: every session is down and holds nothing (no resync will come)."""
        notices = []
        for session in self._sessions.values():
            was_up = session.state == UP
            flushed = session.flush()
            if was_up or flushed:
                notices.append(Notice(kind="down", peer=session.peer, detail={"reason": reason, "flushed": flushed}))
                session.reason = reason
            session.families = ()
            session.set_state(DOWN if was_up or flushed else session.state, now)
        return notices

    def receiving_table(self, *, now: float, within: float) -> bool:
        """Whether a session came up less than ``within`` seconds ago and has not sent End-of-RIB
        yet: its table dump is under way (a peer that never sends End-of-RIB counts only so long)."""
        return any(
            s.state == UP
            and s.up_since is not None
            and now - s.up_since < within
            and not _eor_complete(s.families, s.eor)
            for s in self._sessions.values()
        )

    def sessions(self) -> list[SessionView]:
        return [self._sessions[p].view() for p in sorted(self._sessions, key=parse_address)]

    def session(self, peer: str) -> SessionView | None:
        found = self._sessions.get(peer)
        return None if found is None else found.view()

    def routes(self) -> Iterator[Route]:
        """Every path as a ``Route`` (built on the fly; the table must not change meanwhile)."""
        for session in self._sessions.values():
            yield from routes_of(session.items())

    def path_items(self) -> list[tuple[PathKey, PathAttributes]]:
        """A copy of every (path key, attributes) pair: cheap to take under a lock, read later."""
        return [item for session in self._sessions.values() for item in session.items()]

    def table(self) -> RouteTable:
        return RouteTable(self.routes())

    def path_count(self) -> int:
        return sum(s.path_count for s in self._sessions.values())

    def family_prefixes(self) -> dict[str, dict[str, int]]:
        """Session -> family -> distinct prefixes held."""
        return {peer: session.family_prefixes() for peer, session in self._sessions.items()}

    def counters(self) -> RibCounters:
        return RibCounters(
            malformed=self._malformed,
            ignored=self._ignored,
            unsupported=self._unsupported,
            last_malformed=self._last_malformed,
        )
