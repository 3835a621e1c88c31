"""Route assertions for tests and CI scripts: ``assert_routes`` raises ``RouteAssertionError``
whose message is the readable diff, or only warns in ``soft`` mode."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from bgpflat.core.routes.diff import RouteDiff, diff_routes
from bgpflat.core.routes.expected import ExpectedRoutes
from bgpflat.core.routes.table import Route, RouteTable
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
