"""The verify use case: learned routes against expected ones, waiting for convergence.

The learned table comes from a ``LearnedSource`` (a Protocol: the CLI passes one that reads the
verification peer's state or a JSON file), so this module does no file or peer I/O itself; the
comparison itself is ``bgpflat.core.routes.verdict.evaluate``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Protocol

from bgpflat.core.routes.expected import ExpectedRoutes, OutsidePeer
from bgpflat.core.routes.table import RouteTable
from bgpflat.core.routes.verdict import (
    BAD_INPUT,
    CANNOT_VERIFY,
    MATCH,
    LearnedState,
    VerifyResult,
    evaluate,
    fingerprint_of,
)
from bgpflat.errors import BgpflatError


class LearnedSource(Protocol):
    """Anything that can be read, repeatedly, for the current learned table."""

    def read(self) -> LearnedState: ...


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
            fingerprint = fingerprint_of(result)
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


class WatchedCluster(Protocol):
    """The cluster's objects, kept current (``bgpflat.adapters.kube.watch.ClusterWatch``)."""

    @property
    def generation(self) -> int: ...

    def objects(self) -> list[dict[str, Any]]: ...


def watch_verify(
    *,
    cluster: WatchedCluster,
    peer: OutsidePeer,
    expected_of: Callable[[list[dict[str, Any]]], ExpectedRoutes],
    source: LearnedSource,
    strict: bool,
    wait: Callable[[], bool],
    on_result: Callable[[VerifyResult], None],
) -> None:
    """Verify, then ``wait()`` (True: stop), again and again.

    The expected routes are computed again only when the cluster changed since the last run: the
    learned side is read every time, the cluster's objects are the watch's local copy. A cluster
    state the model refuses (a bad object) makes that run cannot-verify, not the end of watching.
    """
    generation: int | None = None
    expected: ExpectedRoutes | None = None
    error = ""
    while True:
        current = cluster.generation
        if current != generation:
            generation = current
            try:
                expected, error = expected_of(cluster.objects()), ""
            except BgpflatError as exc:
                expected, error = None, str(exc)
        if expected is None:
            on_result(_unreadable_cluster(peer, f"the cluster's state: {error}"))
        else:
            on_result(verify(expected=expected, source=source, strict=strict))
        if wait():
            return


def _unreadable_cluster(peer: OutsidePeer, message: str) -> VerifyResult:
    nothing = ExpectedRoutes(peer=peer, table=RouteTable(()), reasons={}, sessions={}, calico_version="")
    return VerifyResult(status=CANNOT_VERIFY, reason=BAD_INPUT, message=message, expected=nothing)
