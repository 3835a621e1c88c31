"""Learned routes against expected ones, once: the verdict of a verify run (pure).

Three outcomes, each with its own exit code: ``match`` (0), ``mismatch`` (1) and ``cannot-verify``
(2) — the last with a fixed reason (no expectations, no session, nothing learned, bad input),
because "the check could not run" must never look like "the routes are wrong" (or right). The
polling loop that waits for convergence is ``bgpflat.workflows.verify``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.diff import RouteDiff, diff_routes, mark_filtered
from bgpflat.core.routes.expected import ExpectedRoutes
from bgpflat.core.routes.table import FLAT_BATCH, Route, RouteTable, address_sort_key
from bgpflat.errors import SpecError

FORMAT_VERSION = 1

MATCH = "match"
MISMATCH = "mismatch"
CANNOT_VERIFY = "cannot-verify"
EXIT_CODES = {MATCH: 0, MISMATCH: 1, CANNOT_VERIFY: 2}

# Reasons for cannot-verify (fixed codes, reported in JSON, JUnit and the step summary).
NO_EXPECTATIONS = "no-expectations"
NO_SESSION = "no-session"
NOTHING_LEARNED = "nothing-learned"
BAD_INPUT = "bad-input"

ESTABLISHED_STATES = frozenset({"up", "established"})

NOTHING_LEARNED_MESSAGE = "the verification peer has learned no route"


def no_expectations_message(expected: ExpectedRoutes) -> str:
    """Why nothing is expected: no node peers with the address (a typo in it, or no BGPPeer)."""
    return "no Calico node peers with " + expected.peer.address


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionState:
    """What the verification peer knows about one session (keyed by the node's address)."""

    peer: str
    state: str
    end_of_rib: bool = False

    @property
    def established(self) -> bool:
        return self.state.lower() in ESTABLISHED_STATES


@dataclass(frozen=True, slots=True, kw_only=True)
class LearnedState:
    """Learned routes, and session states when the source has them (a plain route file has not)."""

    routes: RouteTable
    sessions: Mapping[str, SessionState] | None = None
    source: str = ""
    # What the nodes sent, when the routes are what a router kept (BMP post-policy): missing
    # routes found here are reported as filtered by ``router``.
    sent: RouteTable | None = None
    router: str = ""
    # The source keeps one path per session and prefix: a BMP feed without path identifiers
    # (FRR's, for one) holds only the last path a node sent for a prefix over an ADD-PATH session.
    single_path: bool = False
    # The routes are one router's Loc-RIB (BMP): its best path per prefix across all sessions.
    best_path_only: bool = False


def one_path_each(expected: RouteTable, learned: RouteTable) -> RouteTable:
    """``expected`` as a source that keeps one path per session and prefix can show it.

    Where several paths are expected and the one learned path is among them, that path alone is
    expected; elsewhere every expected path stays (so a missing or wrong path is still reported).
    """
    kept: list[Route] = []
    for (session, prefix), paths in expected.grouped().items():
        seen = learned.paths(session, prefix) if len(paths) > 1 else []
        if len(seen) == 1:
            found = seen[0]._replace(path_id=None)
            same = [p for p in paths if p._replace(path_id=None) == found]
            if same:
                kept.append(same[0])
                continue
        kept.extend(paths)
    return RouteTable(kept)


def best_path_each(expected: RouteTable, learned: RouteTable) -> RouteTable:
    """``expected`` as a router's Loc-RIB can show it: one best path per prefix, whichever node sent it.

    Where a learned path of a prefix is one of the expected paths (same node, same attributes),
    those alone are expected; elsewhere every expected path of the prefix stays, so a prefix the
    router has no path for, or a best path that no node was expected to send, is still reported.
    """
    seen: dict[Prefix, set[Route]] = {}
    for route in learned:
        seen.setdefault(route.prefix, set()).add(route._replace(path_id=None))
    wanted: dict[Prefix, list[Route]] = {}
    for route in expected:
        wanted.setdefault(route.prefix, []).append(route)
    kept: list[Route] = []
    for prefix, paths in wanted.items():
        best = seen.get(prefix, set())
        chosen = [p for p in paths if p._replace(path_id=None) in best]
        kept.extend(chosen or paths)
    return RouteTable(kept)


# The fields of a learned route: ``Route.to_dict``'s, what the BMP station adds to each, and what
# `routes expected -o json` adds (its table, given as learned routes, is a dry run of verify).
LEARNED_FIELDS = frozenset(
    {"prefix", "next_hop", "session", "as_path", "origin", "communities", "large_communities", "path_id"}
    | {"router", "peer", "policy"}
    | {"node", "reasons", "explanation"}
)


# Records as a streaming reader hands them over: a batch as decoded fast, and a function that gives
# the same batch exactly as ``json.loads`` decodes it and within the bounds of every input. The fast
# decoding may differ only in what no flat record holds (an integer beyond 64 bits read as a float),
# so it is used only for batches ``RouteTable.add_flat_records`` takes whole.
RecordBatch = tuple[list[Any], Callable[[], list[Any]]]


def routes_from_records(records: Iterable[Any], *, source: str) -> RouteTable:
    """The routes of a learned-route file; a bad record is an error naming the file and the record.

    A field bgpflat does not know (``nexthop`` for ``next_hop``) or a route without its session is
    bad input, not a route that fails to match: the check could not run as written.
    """
    iterator = iter(records)
    batches = iter(lambda: list(islice(iterator, FLAT_BATCH)), [])
    return routes_from_batches(map(_exact_already, batches), source=source)


def _exact_already(batch: list[Any]) -> RecordBatch:
    return batch, lambda: batch


def routes_from_batches(batches: Iterable[RecordBatch], *, source: str) -> RouteTable:
    """``routes_from_records`` for records read in batches (``RecordBatch``)."""
    table = RouteTable()
    shared: dict[Any, Any] = {}
    index = 0
    try:
        for fast, exact in batches:
            if not table.add_flat_records(fast, shared):
                for record in exact():
                    _check_record(record, index)
                    table.add_record(record, shared, where=f"routes[{index}]")
                    index += 1
                continue
            index += len(fast)
    except SpecError as exc:
        raise SpecError(exc.message, file=source, path=exc.path, fix=exc.fix) from None
    return table


def _check_record(record: Any, index: int) -> None:
    if isinstance(record, Mapping):
        known = LEARNED_FIELDS
        if not record.keys() <= known:
            name = sorted(str(key) for key in record.keys() - known)[0]
            close = difflib.get_close_matches(name, sorted(known), n=1)
            raise SpecError(
                f"unknown field {name!r}",
                path=f"routes[{index}].{name}",
                fix=f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(sorted(known))}",
            )
        if "prefix" in record and not record.get("session"):  # no prefix: from_dict says so
            raise SpecError(
                "a route without its session",
                path=f"routes[{index}].session",
                fix="each learned route names the session (the node's address) it came from, "
                "as `bgpflat peer routes -o json` writes it",
            )


def learned_from_json(data: Any, *, source: str, routes: RouteTable | None = None) -> LearnedState:
    """Accept ``{"routes": [...], "sessions": [...]}`` (peer snapshot / ``peer routes -o json``),
    ``{"routes": [...]}`` or a bare list of ``Route.to_dict()`` records.

    ``routes``: the records already read into a table (``routes_from_records``) by a reader that
    streams them; ``data`` then holds the rest of the file, the list itself left empty.
    """
    if isinstance(data, list):
        records, sessions_data = data, None
    elif isinstance(data, Mapping) and isinstance(data.get("routes"), list):
        records, sessions_data = data["routes"], data.get("sessions")
    else:
        raise SpecError(
            "not a learned-route file",
            file=source,
            fix='give {"routes": [...]} as `bgpflat peer routes -o json` prints it, or a list of routes',
        )
    table = routes if routes is not None else routes_from_records(records, source=source)
    sessions: dict[str, SessionState] | None = None
    if isinstance(sessions_data, list):
        sessions = {}
        for item in sessions_data:
            if not isinstance(item, Mapping) or not item.get("peer"):
                raise SpecError("a session entry has no peer address", file=source, path="sessions")
            peer = str(item["peer"])
            sessions[peer] = SessionState(
                peer=peer,
                state=str(item.get("state") or ""),
                end_of_rib=bool(item.get("eor_complete", item.get("end_of_rib", False))),
            )
    return LearnedState(routes=table, sessions=sessions, source=source)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyResult:
    """The outcome of one ``verify`` run."""

    status: str
    reason: str
    message: str
    expected: ExpectedRoutes
    diff: RouteDiff | None = None
    learned: LearnedState | None = None
    converged: bool = False
    attempts: int = 1
    elapsed: float = 0.0
    sessions_down: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def all_notes(self) -> tuple[str, ...]:
        """The run's notes, then the model's (why a node has no session, an assumed peer AS): what a
        person reads under the verdict, and what JSON and the step summary carry alike."""
        return tuple(dict.fromkeys((*self.notes, *self.expected.notes)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "peer": self.expected.peer.address,
            "calico_version": self.expected.calico_version,
            "converged": self.converged,
            "attempts": self.attempts,
            "elapsed_seconds": round(self.elapsed, 3),
            "sessions_down": list(self.sessions_down),
            "notes": list(self.all_notes),
            "source": self.learned.source if self.learned is not None else "",
            "diff": self.diff.to_dict() if self.diff is not None else None,
            "compliance": self.diff.compliance() if self.diff is not None else None,
        }


def evaluate(*, expected: ExpectedRoutes, learned: LearnedState, strict: bool = False) -> tuple[VerifyResult, bool]:
    """One comparison; returns the result and whether End-of-RIB was seen on every live session."""

    def make(**fields: Any) -> VerifyResult:
        return VerifyResult(expected=expected, learned=learned, **fields)

    if not expected.sessions:
        return make(status=CANNOT_VERIFY, reason=NO_EXPECTATIONS, message=no_expectations_message(expected)), False
    sessions_down: tuple[str, ...] = ()
    end_of_rib = False
    if learned.sessions is not None:
        wanted = sorted(expected.sessions, key=address_sort_key)
        up = [s for s in wanted if s in learned.sessions and learned.sessions[s].established]
        sessions_down = tuple(s for s in wanted if s not in up)
        end_of_rib = bool(up) and all(learned.sessions[s].end_of_rib for s in up)
        if not up:
            return make(
                status=CANNOT_VERIFY,
                reason=NO_SESSION,
                sessions_down=sessions_down,
                message=f"no BGP session is established from the {len(wanted)} expected node(s)",
            ), False
    if not learned.routes:
        return make(
            status=CANNOT_VERIFY,
            reason=NOTHING_LEARNED,
            sessions_down=sessions_down,
            message=NOTHING_LEARNED_MESSAGE,
        ), end_of_rib
    if learned.single_path:
        expected = dataclasses.replace(expected, table=one_path_each(expected.table, learned.routes))
    if learned.best_path_only:
        expected = dataclasses.replace(expected, table=best_path_each(expected.table, learned.routes))
    diff = diff_routes(expected=expected, learned=learned.routes, strict=strict)
    if learned.sent is not None:
        diff = mark_filtered(diff, sent=learned.sent, router=learned.router)
    counts = diff.counts()
    # An expected session that is not up fails even if (stale, graceful-restart) routes remain.
    status = MATCH if diff.complies and not sessions_down else MISMATCH
    message = (
        f"{counts['present']} present, {counts['missing']} missing, {counts['mismatched']} mismatched, "
        f"{counts['unexpected']} unexpected"
    )
    if sessions_down:
        message += f"; {len(sessions_down)} expected session(s) not established"
    return make(status=status, reason="", message=message, diff=diff, sessions_down=sessions_down), end_of_rib


def fingerprint_of(result: VerifyResult) -> tuple[Any, ...]:
    diff = result.diff
    if diff is None:
        return (result.status, result.reason, result.sessions_down)
    return (
        result.status,
        len(diff.present),
        tuple((f.category, f.codes, f.session, f.prefix) for f in diff.findings),
        result.sessions_down,
    )
