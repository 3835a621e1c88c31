"""Two applies of the same spec racing each other and a colleague who edits the same pool.

Both applies run the real plan/apply engine against the real API server at the same time, each
with its own client and backup, while a third client edits a field bgpflat owns (natOutgoing) and
adds a label, at a random moment. Whatever the interleaving, no edit may be lost: the colleague's
natOutgoing survives unless an apply *planned from it* (its plan shows the change from their
value), and their label always survives. Rounds are short (a few hundred milliseconds), so the
test runs enough of them in CI to meet the interleavings that matter.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest
from rawapi import raw_api
from test_plan_apply import SPEC

from bgpflat import workflows
from bgpflat.adapters.kube import CalicoApi
from bgpflat.cli.plan_commands import FileBackups, load_desired_files
from bgpflat.core.plan.planner import Plan
from bgpflat.errors import BgpflatError
from bgpflat.lab.controlplane.server import ControlPlane

pytestmark = pytest.mark.integration

ROUNDS = 24
POOL = "/apis/crd.projectcalico.org/v1/ippools/default-pool"


def _pool(kube: ControlPlane) -> dict[str, Any]:
    response = raw_api(kube).request("GET", POOL)
    assert response.ok, response.body
    return dict(response.body)


def _patch_pool(kube: ControlPlane, patch: dict[str, Any]) -> None:
    response = raw_api(kube).request("PATCH", POOL, patch, content_type="application/merge-patch+json")
    assert response.ok, response.body


def _race(kube: ControlPlane, desired: Any, tmp_path: Path, round_: int, delay: float) -> tuple[list[Plan], list[str]]:
    """One round: two applies and the colleague at once; the plans made and the errors reported."""
    plans: list[Plan] = []
    errors: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def apply(name: str) -> None:
        try:
            with kube.client() as client:
                api = CalicoApi(client)
                plan = workflows.plan_cluster(api, desired)
                with lock:
                    plans.append(plan)
                backups = FileBackups(str(tmp_path / name), "race")
                report = workflows.apply_plan(plan, api, backup=backups, allow_crd_v1=True)
                if report.error is not None:
                    with lock:
                        errors.append(report.error)
        except BgpflatError as exc:  # a plan gone stale before its first write is a fine outcome
            with lock:
                errors.append(str(exc))
        except BaseException as exc:  # reported by the test, with the round
            failures.append(exc)

    def colleague() -> None:
        threading.Event().wait(delay)
        _patch_pool(kube, {"metadata": {"labels": {f"edit-{round_}": "kept"}}, "spec": {"natOutgoing": False}})

    threads = [threading.Thread(target=apply, args=(n,)) for n in ("a", "b")]
    threads.append(threading.Thread(target=colleague))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, f"round {round_}: {failures!r}"
    return plans, errors


def test_racing_applies_and_a_colleague_lose_no_edit(kube_v1: ControlPlane, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    desired = load_desired_files([str(SPEC)])
    rng = random.Random(20261206)
    stopped_for_the_colleague = 0

    for round_ in range(ROUNDS):
        # The pool back to what the seed had, so that both applies have work to do this round.
        _patch_pool(kube_v1, {"spec": {"ipipMode": "Always", "natOutgoing": True}})
        plans, errors = _race(kube_v1, desired, tmp_path, round_, rng.uniform(0, 0.25))
        pool = _pool(kube_v1)
        assert pool["metadata"]["labels"][f"edit-{round_}"] == "kept", f"round {round_}: the label was lost"
        if pool["spec"].get("natOutgoing") is not False:
            # Turned back only by an apply that planned from the colleague's value.
            replanned = [
                fc
                for plan in plans
                for change in plan.changes
                for fc in change.fields
                if fc.path == "spec.natOutgoing" and fc.before is False
            ]
            assert replanned, f"round {round_}: the colleague's natOutgoing was overwritten ({errors})"
        stopped_for_the_colleague += any("edited by someone else" in e or "stale" in e for e in errors)
    # The colleague's edit did meet applies in flight, not only before or after them (9 of 24 rounds).
    assert stopped_for_the_colleague > 0
