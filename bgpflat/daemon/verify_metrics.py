"""``verify --watch``'s Prometheus metrics: the last result, per outside peer, session and node.

The route gauges hold the last comparison (a cannot-verify run has none: its series go away and
``bgpflat_verify_status`` says why). ``bgpflat_verify_last_success_timestamp_seconds`` is the last
time the routes matched, the number to alert on when it falls behind.
"""

from __future__ import annotations

import threading

from bgpflat.core.routes.verdict import CANNOT_VERIFY, EXIT_CODES, MATCH, VerifyResult
from bgpflat.daemon.metrics import COUNTER, GAUGE, Family

STATUSES = tuple(EXIT_CODES)  # match, mismatch, cannot-verify


class VerifyMetrics:
    """What the last runs found; ``record`` from the loop, ``families`` from the scrape thread."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self._lock = threading.Lock()
        self._last: VerifyResult | None = None
        self._last_run = 0.0
        self._last_success = 0.0
        self._runs = dict.fromkeys(STATUSES, 0)

    def record(self, result: VerifyResult, *, now: float) -> None:
        with self._lock:
            self._last = result
            self._last_run = now
            self._runs[result.status] += 1
            if result.status == MATCH:
                self._last_success = now

    def families(self) -> list[Family]:
        with self._lock:
            last, runs = self._last, dict(self._runs)
            last_run, last_success = self._last_run, self._last_success
        peer = self.peer
        labels = ("peer", "session", "node")
        expected = Family("bgpflat_verify_expected_routes", GAUGE, "Routes expected per session", labels)
        missing = Family("bgpflat_verify_missing_routes", GAUGE, "Expected routes the peer did not learn", labels)
        unexpected = Family("bgpflat_verify_unexpected_routes", GAUGE, "Learned routes nobody expects", labels)
        mismatched = Family(
            "bgpflat_verify_mismatched_routes",
            GAUGE,
            "Routes learned with another next hop, AS path or communities",
            labels,
        )
        status = Family("bgpflat_verify_status", GAUGE, "1 for the outcome of the last run", ("peer", "status"))
        down = Family("bgpflat_verify_sessions_down", GAUGE, "Expected sessions not established", ("peer",))
        total = Family("bgpflat_verify_runs", COUNTER, "Verify runs, by outcome", ("peer", "status"))
        last_run_family = Family("bgpflat_verify_last_run_timestamp_seconds", GAUGE, "When verify last ran", ("peer",))
        success = Family(
            "bgpflat_verify_last_success_timestamp_seconds",
            GAUGE,
            "When the learned routes last matched the expected ones (0: never)",
            ("peer",),
        )
        if last is not None:
            for name in STATUSES:
                status.add(1.0 if name == last.status else 0.0, peer, name)
            down.add(float(len(last.sessions_down)), peer)
            if last.status != CANNOT_VERIFY and last.diff is not None:
                for summary in last.diff.summaries:
                    where = (peer, summary.session, summary.node)
                    expected.add(float(summary.expected), *where)
                    missing.add(float(summary.missing), *where)
                    unexpected.add(float(summary.unexpected), *where)
                    mismatched.add(float(summary.mismatched), *where)
            last_run_family.add(last_run, peer)
        for name, count in runs.items():
            total.add(float(count), peer, name)
        success.add(last_success, peer)
        return [expected, missing, unexpected, mismatched, status, down, total, last_run_family, success]
