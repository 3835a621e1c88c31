"""Route assertions for tests and CI scripts: ``assert_routes`` raises ``RouteAssertionError``
whose message is the readable diff, or only warns in ``soft`` mode."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from bgpflat.core.routes.diff import RouteDiff, diff_routes
from bgpflat.core.routes.expected import ExpectedRoutes
from bgpflat.core.routes.table import Route, RouteTable
from bgpflat.core.routes.verdict import (
    NO_EXPECTATIONS,
    NOTHING_LEARNED,
    NOTHING_LEARNED_MESSAGE,
    no_expectations_message,
)
from bgpflat.views.reports import diff_text


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


def cannot_verify(expected: ExpectedRoutes | RouteTable, learned: RouteTable) -> str | None:
    """Why a comparison would prove nothing (``bgpflat verify`` exits 2 for these), or None.

    Nothing expected (a peer address no node peers with, an empty table) or nothing learned would
    "comply" vacuously: a CI check that can no longer fail.
    """
    if isinstance(expected, ExpectedRoutes):
        if not expected.sessions:
            return f"could not verify ({NO_EXPECTATIONS}): {no_expectations_message(expected)}"
    elif not expected:
        return f"could not verify ({NO_EXPECTATIONS}): the expected table is empty"
    if not learned:
        return f"could not verify ({NOTHING_LEARNED}): {NOTHING_LEARNED_MESSAGE}"
    return None


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

    Nothing expected or nothing learned fails too (``cannot_verify``), naming why.

    ``stacklevel`` points the soft-mode warning at the caller's line (wrappers add one).
    """
    __tracebackhide__ = True
    wanted = expected if isinstance(expected, ExpectedRoutes) else as_table(expected)
    table = as_table(learned)
    diff = diff_routes(expected=wanted, learned=table, strict=strict)
    text = cannot_verify(wanted, table)
    if text is None and diff.complies:
        return diff
    text = text or diff_text(diff, limit=limit)
    if soft:
        warnings.warn(RouteAssertionWarning(text), stacklevel=stacklevel)
        return diff
    raise RouteAssertionError(text, diff)
