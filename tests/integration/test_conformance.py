"""The conformance matrix: Calico's own confd configures BIRD, the verification peer learns, the model agrees.

One session control plane (``kube_v1``), one set of namespaces with a bird and a bird6 per node for
the whole matrix; per situation the API server is re-seeded, confd re-renders, BIRD reloads and a
fresh ``bgpflat peer run`` collects the routes. Set ``BGPFLAT_CONFORMANCE=name,name`` to run only
some situations (and no random ones). A few random situations run on top, from a fresh seed each
time (printed; a differing one is written as a snapshot to replay). Calico releases besides the
pinned one run when their confd is cached. Times are printed, never asserted (the matrix's speed
is the benchmark's business, not a verdict on conformance).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path

import pytest

from bgpflat.errors import LabError
from bgpflat.lab.conformance import cases, generator, releases
from bgpflat.lab.conformance.matrix import ConformanceLab, check_prerequisites
from bgpflat.lab.conformance.releases import ReleaseConfd
from bgpflat.lab.conformance.results import CellResult
from bgpflat.lab.conformance.situations import SITUATIONS, situation
from bgpflat.lab.controlplane.server import ControlPlane
from bgpflat.lab.fabric.netns import netns_exists

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

# Situations drawn from a fresh seed on top of the fixed matrix (BGPFLAT_CONFORMANCE_SEED repeats a run).
RANDOM_COUNT = 3


def _chosen() -> list[cases.Situation]:
    wanted = [n.strip() for n in os.environ.get("BGPFLAT_CONFORMANCE", "").split(",") if n.strip()]
    return [situation(n) for n in wanted] if wanted else list(SITUATIONS)


def _confd() -> ReleaseConfd:
    try:
        build = releases.confd_for(
            releases.PINNED, build=True, progress=lambda line: print(line, file=sys.__stderr__, flush=True)
        )
        assert build is not None
        return build
    except LabError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"confd unavailable in CI: {exc}", pytrace=False)
        pytest.skip(f"confd cannot be built here: {exc}")


def _run_matrix(
    plane: ControlPlane, state_dir: Path, situations: list[cases.Situation], build: ReleaseConfd
) -> tuple[list[CellResult], float]:
    try:
        check_prerequisites()
    except LabError as exc:
        pytest.skip(str(exc))
    started = time.monotonic()
    roster = {node.name: node for s in situations for node in s.nodes}
    lab = ConformanceLab.up(
        plane=plane,
        state_dir=state_dir,
        confd=build.confd,
        templates_dir=build.templates,
        nodes=sorted(roster.values(), key=lambda n: n.address),
        calico_version=build.version,
    )
    namespaces = list(lab.netns.state.namespaces)
    try:
        results = lab.run(situations, progress=lambda line: print(line, file=sys.__stderr__, flush=True))
    finally:
        lab.down()
    assert not any(netns_exists(n) for n in namespaces), "teardown left namespaces behind"
    return results, time.monotonic() - started


def _failures(results: list[CellResult], seed: int, keep: Path) -> str:
    """Each cell that differs, in a line; a generated one is written where it can be replayed from."""
    lines = []
    for result in results:
        if result.match:
            continue
        where = ""
        if not result.situation.base_cluster:
            path = keep / f"{result.situation.name}.json"
            path.write_text(json.dumps(generator.snapshot(result.situation, seed=seed)))
            where = f" [seed {seed}; replay: bgpflat lab conformance --situation-file {path}]"
        lines.append(f"{result.situation.name}{where}: " + "; ".join((list(result.notes) + result.findings)[:6]))
    return "\n".join(lines)


def test_every_situation_matches_confd_configured_bird(
    kube_v1: ControlPlane, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fixed matrix, and a few situations drawn from a fresh seed (printed), on the pinned release."""
    build = _confd()
    fixed = _chosen()
    seed = int(os.environ.get("BGPFLAT_CONFORMANCE_SEED") or secrets.randbelow(2**31))
    drawn = generator.generate(seed, RANDOM_COUNT) if not os.environ.get("BGPFLAT_CONFORMANCE") else []
    with capsys.disabled():  # in the CI log whether the run passes or not
        print(f"\nrandom situations: --random {len(drawn)} --seed {seed}", flush=True)
    results, elapsed = _run_matrix(kube_v1, tmp_path / "lab", fixed + drawn, build)

    failures = _failures(results, seed, tmp_path)
    assert not failures, failures
    assert all(r.learned_routes > 0 for r in results if r.situation.base_cluster)
    matrix = sum(r.seconds for r in results if r.situation.base_cluster)
    with capsys.disabled():
        print(f"\n{len(results)} situations match in {elapsed:.0f} s (the fixed matrix {matrix:.0f} s)", flush=True)


@pytest.mark.parametrize("version", releases.cached_releases() or [pytest.param(None, marks=pytest.mark.skip)])
def test_the_fixed_matrix_matches_on_every_cached_release(
    version: str | None, kube_v1: ControlPlane, tmp_path: Path
) -> None:
    """Releases besides the pinned one run when their confd is already built (CI builds only the pinned one)."""
    assert version is not None
    build = releases.confd_for(version, build=False)
    assert build is not None
    results, _ = _run_matrix(kube_v1, tmp_path / "lab", _chosen(), build)
    failures = _failures(results, 0, tmp_path)
    assert not failures, f"Calico {version}:\n{failures}"
