"""Expected vs learned routes: missing, unexpected, mismatched — per session and per node.

Comparison unit: one (session, prefix). Both sides are reduced to the *set* of distinct paths,
where a path is (next hop, AS path, communities, large communities) — path IDs and duplicate
paths are ignored. With ADD-PATH, BIRD sends the same route twice on one session (the node's own
service-range static and the copy it learned over the mesh, both rewritten to next hop self) —
observed with BIRD 1.6 and Calico's template, not confirmed for Calico's BIRD fork (calico-facts
§7) — so comparing sets keeps the verdict independent of that count. Differences in the *number*
of identical paths are not findings; ``ExpectedRoutes.why(route)`` lists one reason per path.

Every finding has a fixed reason code (SuzieQ's ``assertReason``) next to its sentence, and the
whole diff has a NAPALM-style compliance view (``complies``, ``present``, ``missing``, ``extra``).
A mismatch is a value, never an exception.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import compress, repeat
from operator import eq, itemgetter, not_
from typing import Any

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.expected import ExpectedRoutes, SessionExpectation
from bgpflat.core.routes.table import Route, RouteTable, address_sort_key

# Reason codes. They are part of the JSON output and of JUnit test names: never rename one.
ROUTE_MISSING = "route-missing"
ROUTE_UNEXPECTED = "route-unexpected"
NEXT_HOP_MISMATCH = "next-hop-mismatch"
AS_PATH_MISMATCH = "as-path-mismatch"
COMMUNITIES_MISMATCH = "communities-mismatch"
LARGE_COMMUNITIES_MISMATCH = "large-communities-mismatch"
ORIGIN_MISMATCH = "origin-mismatch"
PATHS_MISMATCH = "paths-mismatch"
SESSION_NOTHING_LEARNED = "session-nothing-learned"
SESSION_UNEXPECTED = "session-unexpected"
# A missing route that the node did send the router (BMP pre-policy) but the router did not keep.
FILTERED_BY_ROUTER = "filtered-by-router"

MISSING = "missing"
UNEXPECTED = "unexpected"
MISMATCHED = "mismatched"
SESSION = "session"

# (index in Route, reason code, words) for the attributes a mismatch can be about.
_FIELDS = (
    (1, NEXT_HOP_MISMATCH, "next hop"),
    (3, AS_PATH_MISMATCH, "AS path"),
    (5, COMMUNITIES_MISMATCH, "communities"),
    (6, LARGE_COMMUNITIES_MISMATCH, "large communities"),
)
_SIGNATURE = itemgetter(1, 3, 5, 6)
_FIRST = itemgetter(0)
_SIGNATURE_WITH_ORIGIN = itemgetter(1, 3, 5, 6, 4)
# Stands for "no paths learned" where a path list is expected. Its signature is made of NaN, which
# equals nothing, so it never compares equal to a real path's signature.
_ABSENT: list[Any] = [(float("nan"),) * 7]


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One difference. ``codes`` lists every attribute that differs; ``code`` is the first."""

    category: str
    codes: tuple[str, ...]
    session: str
    node: str = ""
    prefix: Prefix | None = None
    expected: tuple[Route, ...] = ()
    learned: tuple[Route, ...] = ()
    router: str = ""  # with FILTERED_BY_ROUTER: the router that refused the route

    @property
    def code(self) -> str:
        return self.codes[0]

    def sort_key(self) -> tuple[Any, ...]:
        prefix = self.prefix if self.prefix is not None else Prefix(0, -1, 0)
        return (address_sort_key(self.session), prefix, self.category, self.codes)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSummary:
    session: str
    node: str
    expected: int  # expected (session, prefix) entries
    learned: int  # learned (session, prefix) entries
    present: int
    missing: int
    unexpected: int
    mismatched: int

    @property
    def complies(self) -> bool:
        return self.missing == 0 and self.mismatched == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "node": self.node,
            "expected": self.expected,
            "learned": self.learned,
            "present": self.present,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": self.mismatched,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDiff:
    """The result of ``diff_routes``. ``strict`` makes unexpected routes fail too."""

    findings: tuple[Finding, ...]
    present: tuple[tuple[str, Prefix], ...]
    summaries: tuple[SessionSummary, ...]
    expected_count: int
    learned_count: int
    strict: bool = False
    expected_routes: ExpectedRoutes | None = field(default=None, repr=False, compare=False)

    # -- verdict --------------------------------------------------------------------------------

    @property
    def missing(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.category == MISSING)

    @property
    def unexpected(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.category == UNEXPECTED)

    @property
    def mismatched(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.category == MISMATCHED)

    @property
    def session_findings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.category == SESSION)

    def fails(self, finding: Finding) -> bool:
        """Missing and mismatched routes always fail; unexpected ones only in strict mode."""
        if finding.category in (MISSING, MISMATCHED):
            return True
        if finding.category == UNEXPECTED:
            return self.strict
        return finding.code == SESSION_NOTHING_LEARNED or self.strict

    @property
    def complies(self) -> bool:
        return not any(self.fails(f) for f in self.findings)

    def __bool__(self) -> bool:
        """True when there is any difference at all (strict or not)."""
        return bool(self.findings)

    def counts(self) -> dict[str, int]:
        counter = Counter(f.category for f in self.findings)
        return {
            "present": len(self.present),
            "missing": counter[MISSING],
            "unexpected": counter[UNEXPECTED],
            "mismatched": counter[MISMATCHED],
            "session": counter[SESSION],
        }

    def reason_counts(self) -> dict[str, int]:
        counter: Counter[str] = Counter()
        for finding in self.findings:
            counter.update(finding.codes)
        return dict(sorted(counter.items()))

    def by_node(self) -> dict[str, list[SessionSummary]]:
        """Session summaries grouped by node name (unknown sessions under their address)."""
        out: dict[str, list[SessionSummary]] = {}
        for summary in self.summaries:
            out.setdefault(summary.node or summary.session, []).append(summary)
        return dict(sorted(out.items()))

    # -- words ----------------------------------------------------------------------------------

    def explain(self, finding: Finding) -> str:
        """The finding as a sentence, with why the route was expected when that is known."""
        where = f"via {finding.session}" + (f" ({finding.node})" if finding.node else "")
        if finding.category == SESSION:
            if finding.code == SESSION_NOTHING_LEARNED:
                return f"session {where}: nothing learned, {len(finding.expected)} routes expected"
            return f"session {where}: {len(finding.learned)} routes learned, no session expected"
        prefix = str(finding.prefix)
        if finding.category == MISSING and finding.code == FILTERED_BY_ROUTER:
            return (
                f"{prefix} filtered by router {finding.router} {where}: the node sent it, the router's "
                f"import policy did not keep it — {self._why(finding.expected)}"
            )
        if finding.category == MISSING:
            return f"{prefix} missing {where}: {self._why(finding.expected)}"
        if finding.category == UNEXPECTED:
            hops = ", ".join(sorted({r.next_hop for r in finding.learned}, key=address_sort_key))
            return f"{prefix} unexpected {where} (next hop {hops}): not advertised by Calico's export rules"
        parts = []
        for index, code, words in _FIELDS:
            if code in finding.codes:
                want = _values(finding.expected, index)
                got = _values(finding.learned, index)
                parts.append(f"{words} expected {want}, learned {got}")
        if ORIGIN_MISMATCH in finding.codes:
            parts.append(f"origin expected {_values(finding.expected, 4)}, learned {_values(finding.learned, 4)}")
        if not parts:
            parts.append(f"paths expected {_paths(finding.expected)}, learned {_paths(finding.learned)}")
        return f"{prefix} mismatched {where}: {'; '.join(parts)} — {self._why(finding.expected)}"

    def _why(self, routes: Iterable[Route]) -> str:
        if self.expected_routes is None:
            return "expected"
        texts = []
        for route in routes:
            text = self.expected_routes.explain(route)
            if text not in texts:
                texts.append(text)
        return "; ".join(texts) if texts else "expected"

    # -- machine views --------------------------------------------------------------------------

    def compliance(self) -> dict[str, Any]:
        """NAPALM validate's shape: ``complies`` and per-session ``present``/``missing``/``extra``."""
        sessions: dict[str, dict[str, Any]] = {}

        def entry(session: str) -> dict[str, Any]:
            found = sessions.get(session)
            if found is None:
                found = sessions[session] = {"present": [], "missing": [], "extra": [], "mismatched": []}
            return found

        # A few thousand distinct prefixes across hundreds of thousands of present routes: each
        # prefix's text is made once.
        texts: dict[Prefix, str] = {}
        for session, prefix in self.present:
            text = texts.get(prefix)
            if text is None:
                text = texts[prefix] = str(prefix)
            entry(session)["present"].append(text)
        for finding in self.findings:
            if finding.prefix is None:
                continue
            bucket = {MISSING: "missing", UNEXPECTED: "extra", MISMATCHED: "mismatched"}[finding.category]
            entry(finding.session)[bucket].append(str(finding.prefix))
        for summary in self.summaries:
            entry(summary.session)
        ordered = {}
        for session in sorted(sessions, key=address_sort_key):
            data = sessions[session]
            data["complies"] = not data["missing"] and not data["mismatched"] and (not self.strict or not data["extra"])
            ordered[session] = data
        return {"complies": self.complies, "strict": self.strict, "sessions": ordered}

    def to_dict(self, *, include_present: bool = False) -> dict[str, Any]:
        findings = []
        for finding in self.findings:
            findings.append(
                {
                    "category": finding.category,
                    "code": finding.code,
                    "codes": list(finding.codes),
                    "session": finding.session,
                    "node": finding.node,
                    "prefix": None if finding.prefix is None else str(finding.prefix),
                    "expected": [r.to_dict() for r in finding.expected] if finding.prefix is not None else [],
                    "learned": [r.to_dict() for r in finding.learned] if finding.prefix is not None else [],
                    "fails": self.fails(finding),
                    "explanation": self.explain(finding),
                    **({"router": finding.router} if finding.router else {}),
                }
            )
        data: dict[str, Any] = {
            "complies": self.complies,
            "strict": self.strict,
            "expected_routes": self.expected_count,
            "learned_routes": self.learned_count,
            "counts": self.counts(),
            "reasons": self.reason_counts(),
            "sessions": [s.to_dict() for s in self.summaries],
            "findings": findings,
        }
        if include_present:
            data["present"] = [{"session": s, "prefix": str(p)} for s, p in self.present]
        return data


def mark_filtered(diff: RouteDiff, *, sent: RouteTable, router: str) -> RouteDiff:
    """Missing routes that are in ``sent`` (what each node sent ``router``: its pre-policy
    Adj-RIB-In) were refused by the router, not lost on the way: they get ``FILTERED_BY_ROUTER``."""
    keys = set(sent.keys())
    findings = tuple(
        replace(finding, codes=(FILTERED_BY_ROUTER,), router=router)
        if finding.category == MISSING and (finding.session, finding.prefix) in keys
        else finding
        for finding in diff.findings
    )
    return replace(diff, findings=findings)


def _values(routes: Iterable[Route], index: int) -> str:
    values = sorted({_show(route[index]) for route in routes})
    if not values:
        return "nothing"
    return values[0] if len(values) == 1 else "{" + ", ".join(values) + "}"


def _show(value: object) -> str:
    if isinstance(value, tuple):
        if not value:
            return "[]"
        if isinstance(value[0], tuple):
            return " ".join(":".join(str(part) for part in item) for item in value)
        return "[" + " ".join(str(v) for v in value) + "]"
    return str(value) if value != "" else "(none)"


def _paths(routes: Iterable[Route]) -> str:
    return "{" + ", ".join(sorted(f"{r.next_hop} {_show(r.as_path)}" for r in routes)) + "}"


def diff_routes(
    *,
    expected: ExpectedRoutes | RouteTable,
    learned: RouteTable,
    strict: bool = False,
    compare_origin: bool = False,
    sessions: Iterable[str] | None = None,
) -> RouteDiff:
    """Compare ``learned`` against ``expected`` per (session, prefix); see the module docstring.

    ``sessions`` lists the sessions that must exist even if they expect no route (taken from an
    ``ExpectedRoutes`` automatically). ``compare_origin`` adds the ORIGIN attribute to the paths.
    """
    if isinstance(expected, ExpectedRoutes):
        info: ExpectedRoutes | None = expected
        table = expected.table
        session_info: Mapping[str, SessionExpectation] = expected.sessions
    else:
        info, table, session_info = None, expected, {}
    signature = _SIGNATURE_WITH_ORIGIN if compare_origin else _SIGNATURE
    want = table.grouped()
    got = learned.grouped()

    def node_of(session: str) -> str:
        found = session_info.get(session)
        return found.node if found is not None else ""

    # With a million keys a side the diff is bound by memory access, not by the interpreter: each
    # probe of the other table is a cache miss. So every key is probed exactly once, and the
    # million-step passes run as map/compress pipelines in C. Popping the expected keys out of a
    # copy of the learned table finds the learned path lists and leaves exactly the unexpected keys
    # behind, which saves a second probing pass over the learned keys.
    unmatched = dict(got)
    learned_paths = list(map(unmatched.pop, want, repeat(_ABSENT)))
    leftover = [(key, have) for key, have in unmatched.items() if have]
    expected_count = sum(map(len, want.values()))
    learned_count = sum(map(len, got.values()))
    same: list[bool] | None = None
    if expected_count == len(want) and learned_count == len(got) and len(leftover) == len(unmatched):
        # One path per key on both sides (no ADD-PATH duplicates): compare the two signatures in C.
        # Equal counts could still hide an empty path list (which a RouteTable never holds) next to
        # a two-path one; _FIRST raises on the empty one, and the general comparison takes over.
        try:
            same = list(map(eq, map(signature, map(_FIRST, want.values())), map(signature, map(_FIRST, learned_paths))))
        except IndexError:
            same = None
    if same is None:
        same = list(map(_same_paths, want.values(), learned_paths, repeat(signature)))
    differing = list(compress(zip(want, want.values(), learned_paths, strict=True), map(not_, same)))
    learned_per_session = Counter(map(_FIRST, unmatched))
    # Drop the million-entry temporaries (and build the million-key ``present`` only at the end):
    # every garbage collection that the findings set off would otherwise walk them all. ``same``
    # holds only bools, which a collection passes over cheaply.
    del learned_paths, unmatched

    findings: list[Finding] = []
    absent: Counter[str] = Counter()  # expected keys the learned table does not hold at all
    for key, wanted, have in differing:
        if have is _ABSENT:
            absent[key[0]] += 1
        if have is _ABSENT or not have:
            findings.append(
                Finding(
                    category=MISSING,
                    codes=(ROUTE_MISSING,),
                    session=key[0],
                    node=node_of(key[0]),
                    prefix=key[1],
                    expected=_distinct(wanted, signature),
                )
            )
        else:
            findings.append(_mismatch(key, wanted, have, signature, node_of(key[0]), compare_origin))
    for key, have in leftover:
        findings.append(
            Finding(
                category=UNEXPECTED,
                codes=(ROUTE_UNEXPECTED,),
                session=key[0],
                node=node_of(key[0]),
                prefix=key[1],
                learned=_distinct(have, signature),
            )
        )

    # Per-session key counts: one count over the expected keys; the learned ones follow from it
    # (every expected key the learned table holds, plus the unexpected keys).
    expected_per_session = Counter(map(_FIRST, want))
    for session, count in expected_per_session.items():
        if count > absent[session]:
            learned_per_session[session] += count - absent[session]
    expected_sessions = set(session_info) | set(sessions or ()) | set(expected_per_session)

    silent = [s for s in expected_sessions if expected_per_session[s] and not learned_per_session[s]]
    expected_of = _routes_of_sessions(want, silent)
    for session in sorted(silent, key=address_sort_key):
        findings.append(
            Finding(
                category=SESSION,
                codes=(SESSION_NOTHING_LEARNED,),
                session=session,
                node=node_of(session),
                expected=tuple(expected_of[session]),
            )
        )
    strangers = [s for s in learned_per_session if s not in expected_sessions]
    learned_of = _routes_of_sessions(got, strangers)
    for session in strangers:
        findings.append(
            Finding(
                category=SESSION,
                codes=(SESSION_UNEXPECTED,),
                session=session,
                learned=tuple(learned_of[session]),
            )
        )

    findings.sort(key=Finding.sort_key)
    present = tuple(compress(want, same))
    summaries = _summaries(
        expected_sessions | set(learned_per_session),
        findings,
        expected_per_session,
        learned_per_session,
        node_of,
    )
    return RouteDiff(
        findings=tuple(findings),
        present=present,
        summaries=summaries,
        expected_count=expected_count,
        learned_count=learned_count,
        strict=strict,
        expected_routes=info,
    )


def _same_paths(wanted: list[Route], have: list[Route], signature: itemgetter[Any]) -> bool:
    """Whether both sides hold the same set of distinct paths (false when nothing is learned)."""
    if not have:
        return False
    if len(wanted) == 1 and len(have) == 1:
        return bool(signature(wanted[0]) == signature(have[0]))
    return {signature(r) for r in wanted} == {signature(r) for r in have}


def _routes_of_sessions(
    grouped: Mapping[tuple[str, Prefix], list[Route]], sessions: Iterable[str]
) -> dict[str, list[Route]]:
    """The routes of each of ``sessions`` in table order, in one pass over the table."""
    out: dict[str, list[Route]] = {session: [] for session in sessions}
    if out:
        for (session, _), paths in grouped.items():
            found = out.get(session)
            if found is not None:
                found.extend(paths)
    return out


def _distinct(routes: list[Route], signature: itemgetter[Any]) -> tuple[Route, ...]:
    seen: dict[Any, Route] = {}
    for route in routes:
        seen.setdefault(signature(route), route._replace(path_id=None))
    return tuple(sorted(seen.values(), key=lambda r: (address_sort_key(r.next_hop), r.as_path, r.communities)))


def _mismatch(
    key: tuple[str, Prefix],
    wanted: list[Route],
    have: list[Route],
    signature: itemgetter[Any],
    node: str,
    compare_origin: bool,
) -> Finding:
    want_set = {signature(r) for r in wanted}
    have_set = {signature(r) for r in have}
    only_want = [r for r in _distinct(wanted, signature) if signature(r) not in have_set]
    only_have = [r for r in _distinct(have, signature) if signature(r) not in want_set]
    codes = []
    fields = [*_FIELDS, (4, ORIGIN_MISMATCH, "origin")] if compare_origin else list(_FIELDS)
    for index, code, _ in fields:
        if {r[index] for r in only_want} != {r[index] for r in only_have}:
            codes.append(code)
    if not codes:
        codes.append(PATHS_MISMATCH)
    return Finding(
        category=MISMATCHED,
        codes=tuple(codes),
        session=key[0],
        node=node,
        prefix=key[1],
        expected=_distinct(wanted, signature),
        learned=_distinct(have, signature),
    )


def _summaries(
    sessions: set[str],
    findings: list[Finding],
    expected_per_session: Counter[str],
    learned_per_session: Counter[str],
    node_of: Any,
) -> tuple[SessionSummary, ...]:
    per_category: dict[str, Counter[str]] = {MISSING: Counter(), UNEXPECTED: Counter(), MISMATCHED: Counter()}
    for finding in findings:
        if finding.category in per_category:
            per_category[finding.category][finding.session] += 1
    # Every expected key is present, missing or mismatched: no need to count the present ones.
    return tuple(
        SessionSummary(
            session=session,
            node=node_of(session),
            expected=expected_per_session[session],
            learned=learned_per_session[session],
            present=expected_per_session[session] - per_category[MISSING][session] - per_category[MISMATCHED][session],
            missing=per_category[MISSING][session],
            unexpected=per_category[UNEXPECTED][session],
            mismatched=per_category[MISMATCHED][session],
        )
        for session in sorted(sessions, key=address_sort_key)
    )
