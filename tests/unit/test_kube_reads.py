"""Lists read at once (``adapters.kube.reads``): handed out in order, failing as one after another
would, and the garbage collector paused only while they decode."""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable

import pytest

from bgpflat.adapters.collector import collector_paused
from bgpflat.adapters.kube.reads import in_order
from bgpflat.errors import KubeForbidden, KubeUnavailable


def test_results_come_in_the_order_asked_and_the_reads_overlap() -> None:
    # Each task waits for all the others to start: the read can only finish if they run together.
    together = threading.Barrier(4, timeout=10)
    finished: list[int] = []

    def task(n: int) -> Callable[[], int]:
        def run() -> int:
            together.wait()
            finished.append(n)
            return n

        return run

    assert list(in_order([task(n) for n in range(4)], threads=4)) == [0, 1, 2, 3]
    assert sorted(finished) == [0, 1, 2, 3]


def test_the_error_raised_is_the_one_a_read_in_order_would_have_met_first() -> None:
    # The third list fails at once, the second only after it: the user is told about the second,
    # as when the lists were read one after another, and what came before it is handed out.
    third_failed = threading.Event()

    def first() -> str:
        return "ippools"

    def second() -> str:
        assert third_failed.wait(10)
        raise KubeForbidden("list bgppeers: forbidden (fix: ask a cluster admin for RBAC on this resource)")

    def third() -> str:
        third_failed.set()
        raise KubeUnavailable("list nodes: cannot reach the API server")

    handed_out: list[str] = []
    with pytest.raises(KubeForbidden, match="list bgppeers"):
        for result in in_order([first, second, third], threads=3):
            handed_out.append(result)
    assert handed_out == ["ippools"]


def test_the_collector_is_paused_while_any_read_decodes_and_restored_after_the_last() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer read is still decoding
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off() -> None:
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
