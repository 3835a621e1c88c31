"""The verify use case: learned routes against expected ones, waiting for convergence.

The learned table comes from a ``LearnedSource`` (a Protocol: the CLI passes one that reads the
verification peer's state or a JSON file), so this module does no file or peer I/O itself. Three
outcomes, each with its own exit code: ``match`` (0), ``mismatch`` (1) and ``cannot-verify`` (2)
— the last with a fixed reason (no expectations, no session, nothing learned, bad input), because
"the check could not run" must never look like "the routes are wrong" (or right).

``assert_routes`` is the library form for tests: it raises ``RouteAssertionError`` whose message is
the readable diff, or only warns in ``soft`` mode.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bgpflat.core.expected import ExpectedRoutes
from bgpflat.core.routediff import RouteDiff, diff_routes
from bgpflat.core.routes import Route, RouteTable, address_sort_key
from bgpflat.errors import BgpflatError, SpecError
from bgpflat.reports import diff_text

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


class LearnedSource(Protocol):
    """Anything that can be read, repeatedly, for the current learned table."""

    def read(self) -> LearnedState: ...


def learned_from_json(data: Any, *, source: str) -> LearnedState:
    """Accept ``{"routes": [...], "sessions": [...]}`` (peer snapshot / ``peer routes -o json``),
    ``{"routes": [...]}`` or a bare list of ``Route.to_dict()`` records."""
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
    try:
        table = RouteTable.from_records(records)
    except SpecError as exc:
        raise SpecError(exc.message, file=source, path=exc.path, fix=exc.fix) from None
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
            "notes": list(self.notes),
            "source": self.learned.source if self.learned is not None else "",
            "diff": self.diff.to_dict() if self.diff is not None else None,
            "compliance": self.diff.compliance() if self.diff is not None else None,
        }


def evaluate(*, expected: ExpectedRoutes, learned: LearnedState, strict: bool = False) -> tuple[VerifyResult, bool]:
    """One comparison; returns the result and whether End-of-RIB was seen on every live session."""

    def make(**fields: Any) -> VerifyResult:
        return VerifyResult(expected=expected, learned=learned, **fields)

    if not expected.sessions:
        return make(
            status=CANNOT_VERIFY, reason=NO_EXPECTATIONS, message="no Calico node peers with " + expected.peer.address
        ), False
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
            message="the verification peer has learned no route",
        ), end_of_rib
    diff = diff_routes(expected=expected, learned=learned.routes, strict=strict)
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


def _fingerprint(result: VerifyResult) -> tuple[Any, ...]:
    diff = result.diff
    if diff is None:
        return (result.status, result.reason, result.sessions_down)
    return (
        result.status,
        len(diff.present),
        tuple((f.category, f.codes, f.session, f.prefix) for f in diff.findings),
        result.sessions_down,
    )


def verify(
    *,
    expected: ExpectedRoutes,
    source: LearnedSource,
    wait: bool = False,
    timeout: float = 120.0,
    interval: float = 2.0,
    settle: float = 10.0,
    strict: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_poll: Callable[[VerifyResult], None] | None = None,
) -> VerifyResult:
    """Compare once, or with ``wait`` poll until converged.

    Converged means End-of-RIB seen on every established expected session (when the source
    reports sessions) and then either a match, or the same diff for ``settle`` seconds. The
    settle time matters: a node sends End-of-RIB for what it has when the session comes up, and
    the routes it learns over the mesh a moment later can still be on their way. At the timeout
    the last result is returned, marked not converged.
    """
    started = clock()
    attempts = 0
    previous: tuple[Any, ...] | None = None
    stable_since = started
    while True:
        attempts += 1
        try:
            learned = source.read()
        except BgpflatError as exc:
            result = VerifyResult(status=CANNOT_VERIFY, reason=BAD_INPUT, message=str(exc), expected=expected)
            end_of_rib, fingerprint = False, None
        else:
            result, end_of_rib = evaluate(expected=expected, learned=learned, strict=strict)
            fingerprint = _fingerprint(result)
        now = clock()
        if fingerprint != previous or not (end_of_rib or result.learned is None or result.learned.sessions is None):
            stable_since = now
        has_sessions = result.learned is not None and result.learned.sessions is not None
        eor_ok = fingerprint is not None and (end_of_rib or not has_sessions)
        converged = eor_ok and (result.status == MATCH or now - stable_since >= settle)
        elapsed = now - started
        result = _with(result, converged=converged, attempts=attempts, elapsed=elapsed)
        if on_poll is not None:
            on_poll(result)
        if not wait or converged:
            return result
        if elapsed >= timeout:
            note = f"not converged after {timeout:g} s"
            if has_sessions and not end_of_rib:
                note += " (End-of-RIB not seen on every session)"
            return _with(result, notes=(*result.notes, note))
        previous = fingerprint
        sleep(max(0.0, min(interval, timeout - elapsed)))


def _with(result: VerifyResult, **changes: Any) -> VerifyResult:
    return dataclasses.replace(result, **changes)


# --- library asserts -----------------------------------------------------------------------------


class RouteAssertionError(AssertionError):
    """Raised by ``assert_routes``; the message is the readable route diff."""

    def __init__(self, message: str, diff: RouteDiff | None) -> None:
        super().__init__(message)
        self.diff = diff


class RouteAssertionWarning(UserWarning):
    """``assert_routes(soft=True)`` warns with this instead of raising."""


def as_table(routes: RouteTable | Iterable[Route | Mapping[str, Any]]) -> RouteTable:
    if isinstance(routes, RouteTable):
        return routes
    items = list(routes)
    if all(isinstance(item, Route) for item in items):
        return RouteTable(item for item in items if isinstance(item, Route))
    return RouteTable.from_records(item for item in items if isinstance(item, Mapping))


def assert_routes(
    *,
    expected: ExpectedRoutes | RouteTable | Iterable[Route | Mapping[str, Any]],
    learned: RouteTable | Iterable[Route | Mapping[str, Any]],
    strict: bool = False,
    soft: bool = False,
    limit: int = 50,
    stacklevel: int = 2,
) -> RouteDiff:
    """Fail (or warn, with ``soft``) unless ``learned`` complies with ``expected``; returns the diff.

    ``stacklevel`` points the soft-mode warning at the caller's line (wrappers add one).
    """
    __tracebackhide__ = True
    wanted = expected if isinstance(expected, ExpectedRoutes) else as_table(expected)
    diff = diff_routes(expected=wanted, learned=as_table(learned), strict=strict)
    if diff.complies:
        return diff
    text = diff_text(diff, limit=limit)
    if soft:
        warnings.warn(RouteAssertionWarning(text), stacklevel=stacklevel)
        return diff
    raise RouteAssertionError(text, diff)
