"""The conformance matrix: Calico's own confd configures BIRD, the verification peer learns, the model agrees.

One session control plane (``kube_v1``), one set of namespaces with a bird and a bird6 per node for
the whole matrix; per situation the API server is re-seeded, confd re-renders, BIRD reloads and a fresh
``bgpflat peer run`` collects the routes. The whole matrix takes a few minutes; set
``BGPFLAT_CONFORMANCE=name,name`` to run only some situations.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from bgpflat.errors import LabError
from bgpflat.lab.confd import default_templates_dir, ensure_confd
from bgpflat.lab.conformance import cases
from bgpflat.lab.conformance.matrix import ConformanceLab, check_prerequisites
from bgpflat.lab.conformance.situations import SITUATIONS, situation
from bgpflat.lab.controlplane.server import ControlPlane
from bgpflat.lab.fabric.netns import netns_exists

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

# Four to eight minutes on two busy cores (46 situations, IPv6 ones included; a route-reflector
# cell alone can wait a minute out of BIRD's connection collisions); the bound only
# catches a run that waits out timeouts.
MATRIX_BUDGET_SECONDS = 600.0


def _chosen() -> list[cases.Situation]:
    wanted = [n.strip() for n in os.environ.get("BGPFLAT_CONFORMANCE", "").split(",") if n.strip()]
    return [situation(n) for n in wanted] if wanted else list(SITUATIONS)


def _confd() -> tuple[Path, Path]:
    try:
        return ensure_confd(progress=lambda line: print(line, file=sys.__stderr__, flush=True)), default_templates_dir()
    except LabError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"confd unavailable in CI: {exc}", pytrace=False)
        pytest.skip(f"confd cannot be built here: {exc}")


def test_every_situation_matches_confd_configured_bird(kube_v1: ControlPlane, tmp_path: Path) -> None:
    try:
        check_prerequisites()
    except LabError as exc:
        pytest.skip(str(exc))
    confd, templates = _confd()
    situations = _chosen()
    started = time.monotonic()
    lab = ConformanceLab.up(plane=kube_v1, state_dir=tmp_path / "lab", confd=confd, templates_dir=templates)
    namespaces = list(lab.netns.state.namespaces)
    try:
        results = lab.run(situations, progress=lambda line: print(line, file=sys.__stderr__, flush=True))
    finally:
        lab.down()
    elapsed = time.monotonic() - started

    assert not any(netns_exists(n) for n in namespaces), "teardown left namespaces behind"
    failures = {r.situation.name: r.findings + list(r.notes) for r in results if not r.match}
    assert not failures, "\n".join(f"{name}: " + "; ".join(lines[:6]) for name, lines in failures.items())
    assert all(r.learned_routes > 0 for r in results)
    print(f"\n{len(results)} situations match in {elapsed:.0f} s")
    if len(situations) == len(SITUATIONS):
        assert elapsed < MATRIX_BUDGET_SECONDS, f"the matrix took {elapsed:.0f} s"
