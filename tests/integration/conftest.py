"""Fixtures for tests against a real kube-apiserver + etcd with Calico's CRDs.

The servers are the ones ``bgpflat lab control-plane up`` runs (``bgpflat.lab.controlplane.server``):
kube-apiserver and etcd built from the Go module proxy and cached under ``~/.cache/bgpflat/``.
One server per Calico API flavour is started lazily, the first time a test asks for it, and runs
for the whole session (about 5 s each to start).

Fixtures
--------
``kube_v1`` / ``kube_v3`` (function scope)
    A ``ControlPlane`` serving ``crd.projectcalico.org/v1`` (resp. ``projectcalico.org/v3``: native
    CRDs when the pinned release can be fetched, else CRDs derived from the v1 schemas, see
    ``bgpflat.lab.controlplane.crds``) plus the operator's ``Installation`` CRD. Useful members:

    - ``.kubeconfig``: path of an admin kubeconfig (for ``kubernetes.config``, kubectl, the CLI);
    - ``.client()``: a new ``bgpflat.adapters.kube.KubeClient`` for the admin user;
    - ``rawapi.raw_api(plane)`` / ``rawapi.official_client(plane)``: a small stdlib JSON client and
      the kubernetes package's ``ApiClient``, to look at the server apart from the code under test;
    - ``.seed_scenario(name)``: load ``labs/<name>/cluster.yaml`` (translated to the flavour),
      returns a ``SeedResult`` (``created``, ``cluster_ips``…);
    - ``.flavour`` (``"v1"``/``"v3"``), ``.server`` (``https://127.0.0.1:<port>``),
      ``.state.service_cluster_ip_range``.

    Isolation: after each test every object created since the server started is deleted
    (``bgpflat.lab.conformance.baseline``, about 0.5 s), namespaces included; each test starts from the bare
    server. Calico's objects and Nodes are cluster-scoped, so per-test namespaces would not isolate
    them. (pytest-xdist works: every worker is its own session with its own servers, ~0.5 GiB each.)

``kube`` (function scope, parametrised over ``v1`` and ``v3``)
    The same, once per flavour, for tests that must hold on both.

``kube_apiserver`` / ``kube_writes`` (function scope; the latter over ``v1``, ``v3`` and ``apiserver``)
    The ``apiserver`` flavour: the v1 CRDs with ``projectcalico.org/v3`` served by Calico's own
    aggregated API server (``bgpflat.lab.controlplane.aggregated``), which validates and defaults
    as operator-managed clusters before v3.32 do. ``kube_writes`` is for the tests of everything
    that writes Calico objects (plan, apply, rollback).

``control_plane_v1`` / ``control_plane_v3`` (session scope)
    The underlying servers, without the per-test reset (for read-only module fixtures).

``seed_scenario`` (function scope)
    ``seed_scenario(name, flavour="v1") -> SeedResult``: seeds into ``kube_<flavour>`` (and thereby
    gives the test that fixture's reset).

Service range: the servers run with the reference scenario's range
(``labs/calico-bgp/scenario.yaml``, 10.233.0.0/18), so seeded Services without a fixed cluster
IP get one inside it, as they would in that cluster. A scenario with another range gets a
ServiceCIDR for it while seeding (removed again by the reset).

Skips: a server that cannot be had (no cached binaries and no Go to build them; CRDs that the
module proxy does not serve) skips the tests that need it with the reason. With ``CI`` set, a
missing binary fails instead: CI builds everything first (``.ci/run``).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator

import pytest
from faultproxy import FaultProxy, proxy_for

from bgpflat.adapters.kube import KubeClient, Resource
from bgpflat.errors import LabError
from bgpflat.lab.conformance.baseline import Baseline
from bgpflat.lab.controlplane import aggregated
from bgpflat.lab.controlplane.binaries import ensure_binaries, ensure_calico_apiserver
from bgpflat.lab.controlplane.crds import Flavour, crds_available
from bgpflat.lab.controlplane.seed import SeedResult, load_scenario
from bgpflat.lab.controlplane.server import ControlPlane

REFERENCE_SCENARIO = "calico-bgp"


def _unavailable(reason: str, *, hard_in_ci: bool) -> None:
    if hard_in_ci and os.environ.get("CI"):
        pytest.fail(f"control plane unavailable in CI: {reason}", pytrace=False)
    pytest.skip(reason)


class _StorageView(KubeClient):
    """The server as the per-test reset sees it: behind Calico's API server every Calico object is
    stored in the crd.projectcalico.org/v1 CRDs, so it is found and deleted there, once. (Through
    projectcalico.org/v3 the same objects would be listed twice, next to a Profile the Calico API
    server makes up on every read, which has no UID and nothing to delete.)"""

    def preferred_resources(self) -> list[Resource]:
        return [r for r in super().preferred_resources() if r.api_version != aggregated.GROUP_VERSION]


def _reset_client(plane: ControlPlane) -> KubeClient:
    if plane.flavour != "apiserver":
        return plane.client()
    creds = plane.credentials
    return _StorageView.with_certificate(
        server=plane.server,
        ca_cert=str(creds.ca_cert),
        client_cert=str(creds.admin_cert),
        client_key=str(creds.admin_key),
        context="bgpflat-lab",
    )


class _Servers:
    """Session-wide registry: one server and its baseline per flavour, started on first use."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self.planes: dict[Flavour, ControlPlane] = {}
        self.baselines: dict[Flavour, Baseline] = {}
        self.failures: dict[Flavour, tuple[str, bool]] = {}
        self.dirty: dict[Flavour, bool] = {}

    def get(self, flavour: Flavour) -> ControlPlane:
        if flavour not in self.planes and flavour not in self.failures:
            self._start(flavour)
        if flavour in self.failures:
            reason, hard = self.failures[flavour]
            _unavailable(reason, hard_in_ci=hard)
        return self.planes[flavour]

    def _start(self, flavour: Flavour) -> None:
        try:
            # Progress goes to the real stderr: a cold build takes minutes and should not look hung.
            binaries = ensure_binaries(progress=lambda line: print(line, file=sys.__stderr__, flush=True))
        except LabError as exc:
            self.failures[flavour] = (f"kube-apiserver/etcd cannot be had: {exc}", True)
            return
        missing = crds_available(flavour)
        if missing is not None:
            self.failures[flavour] = (f"Calico {flavour} CRDs cannot be had: {missing}", False)
            return
        if flavour == "apiserver":
            try:
                ensure_calico_apiserver(progress=lambda line: print(line, file=sys.__stderr__, flush=True))
            except LabError as exc:
                self.failures[flavour] = (f"Calico's API server cannot be had: {exc}", True)
                return
        service_range = load_scenario(REFERENCE_SCENARIO).service_cluster_ip_range
        assert service_range, "the reference scenario must declare serviceClusterIPRange"
        plane = ControlPlane.start(
            state_dir=self._tmp.mktemp(f"control-plane-{flavour}"),
            flavour=flavour,
            service_cluster_ip_range=service_range,
            binaries=binaries,
            tied_to_caller=True,
        )
        self.planes[flavour] = plane
        with _reset_client(plane) as client:
            self.baselines[flavour] = Baseline.capture(client)

    def stop_all(self) -> None:
        for plane in self.planes.values():
            plane.stop()
        self.planes.clear()


@pytest.fixture(scope="session")
def _control_planes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Servers]:
    servers = _Servers(tmp_path_factory)
    yield servers
    servers.stop_all()


@pytest.fixture(scope="session")
def control_plane_v1(_control_planes: _Servers) -> ControlPlane:
    return _control_planes.get("v1")


@pytest.fixture(scope="session")
def control_plane_v3(_control_planes: _Servers) -> ControlPlane:
    return _control_planes.get("v3")


def _isolated(servers: _Servers, flavour: Flavour) -> Iterator[ControlPlane]:
    plane = servers.get(flavour)
    baseline = servers.baselines[flavour]
    if servers.dirty.get(flavour):
        # The previous test's reset did not finish; clean up now rather than fail every later test.
        with _reset_client(plane) as client:
            leftovers = baseline.restore(client)
        warnings.warn(f"the {flavour} server held {len(leftovers)} objects from an earlier test", stacklevel=1)
    servers.dirty[flavour] = True
    yield plane
    with _reset_client(plane) as client:
        baseline.restore(client)
    servers.dirty[flavour] = False


@pytest.fixture
def kube_v1(_control_planes: _Servers) -> Iterator[ControlPlane]:
    yield from _isolated(_control_planes, "v1")


@pytest.fixture
def kube_v3(_control_planes: _Servers) -> Iterator[ControlPlane]:
    yield from _isolated(_control_planes, "v3")


@pytest.fixture(params=["v1", "v3"])
def kube(request: pytest.FixtureRequest, _control_planes: _Servers) -> Iterator[ControlPlane]:
    yield from _isolated(_control_planes, request.param)


@pytest.fixture
def kube_apiserver(_control_planes: _Servers) -> Iterator[ControlPlane]:
    yield from _isolated(_control_planes, "apiserver")


@pytest.fixture(params=["v1", "v3", "apiserver"])
def kube_writes(request: pytest.FixtureRequest, _control_planes: _Servers) -> Iterator[ControlPlane]:
    """Each flavour a cluster may serve Calico's objects in, Calico's own API server included."""
    yield from _isolated(_control_planes, request.param)


@pytest.fixture(scope="session")
def control_plane_apiserver(_control_planes: _Servers) -> ControlPlane:
    return _control_planes.get("apiserver")


@pytest.fixture
def seed_scenario(request: pytest.FixtureRequest) -> Callable[..., SeedResult]:
    def seed(name: str, flavour: Flavour = "v1") -> SeedResult:
        plane: ControlPlane = request.getfixturevalue(f"kube_{flavour}")
        return plane.seed_scenario(name)

    return seed


@pytest.fixture
def proxy(kube_v1: ControlPlane) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's v1 server (``faultproxy``), stopped after the test."""
    creds = kube_v1.credentials
    fault_proxy = proxy_for(
        server=kube_v1.server, ca_cert=creds.ca_cert, client_cert=creds.admin_cert, client_key=creds.admin_key
    )
    yield fault_proxy
    fault_proxy.stop()
