"""Conformance with real Calico: confd-rendered BIRD against bgpflat's expected routes, cell by cell.

For every situation of ``situations.SITUATIONS`` the same sequence runs:

1. the previous cell's objects are deleted from the API server and this cell's are created;
2. Felix's part is imitated: each workload address held by a node gets its kernel ``/32`` (``/128``)
   on a ``cali*`` interface in that node's namespace (BIRD learns those with ``protocol kernel``);
3. Calico's confd (watching until its output settles, Kubernetes datastore mode) renders each
   node's BIRD files from the API server; the fork-only ``krt_tunnel`` assignments are neutralised for stock BIRD;
4. the verification peer (``bgpflat peer run``, ExaBGP) starts in the peer namespace with the AS
   the cell's BGPPeer names, passive for the whole node subnet, on each of the cell's peer
   addresses (IPv4, IPv6 or both);
5. each node's bird and bird6 load the new files (``birdc configure``) and their sessions to the peer are
   restarted so the peer sees a complete initial table ending with End-of-RIB;
6. once every expected session has sent End-of-RIB, every BGP session inside the cluster is
   Established and the learned table stayed the same over a short interval, the learned table is
   diffed (strictly: unexpected routes count) against ``expected_routes`` computed from the objects
   read back from the API server, the way ``bgpflat routes expected`` reads them.

One control plane, one set of namespaces and a bird plus a bird6 per node (calico-node runs both;
bird6 peers only where a situation gives the nodes IPv6 addresses) serve every cell; only the peer is
restarted per cell (``peer.CellPeer``: a fresh state directory makes End-of-RIB mean "this cell's
table is complete"); the BIRDs are ``birds.NodeBirds``. The situations are in ``situations``, what
they are made of in ``cases``, the verdicts in ``results``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bgpflat.adapters.kube import CalicoApi, KubeClient
from bgpflat.core.routes.advertise import expected_routes_for_peers
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.diff import diff_routes
from bgpflat.core.routes.expected import ExpectedRoutes, ModelOptions, OutsidePeer, merge_expected
from bgpflat.core.routes.table import RouteTable, address_sort_key
from bgpflat.core.routes.verdict import learned_from_json
from bgpflat.errors import BgpflatError, KubeError, LabError
from bgpflat.lab.confd import default_templates_dir, ensure_confd, render_bird_config, without_krt_tunnel
from bgpflat.lab.conformance import cases
from bgpflat.lab.conformance.baseline import Baseline
from bgpflat.lab.conformance.birds import BIRDS, NodeBirds
from bgpflat.lab.conformance.peer import CellPeer
from bgpflat.lab.conformance.results import CellResult, ConformanceReport
from bgpflat.lab.conformance.situations import SITUATIONS
from bgpflat.lab.controlplane.seed import for_flavour, seed_objects
from bgpflat.lab.controlplane.server import ControlPlane
from bgpflat.lab.fabric.netns import NetnsLab, run
from bgpflat.lab.processes import find_program
from bgpflat.workflows.routes import read_live_objects

Progress = Callable[[str], None]

LAB_NAME = "bgpflat-cf"
PEER_ROLE = "peer"
TUNNEL_INTERFACE = "tunl0"
WORKLOAD_INTERFACE = "caliwl0"  # "cali*": excluded from protocol direct, as Felix's interfaces are
# Peerings that are passive on neither side (route reflection via peerSelector in Calico v3.31)
# meet BIRD 1.6's connection collisions: both ends connect, each collision kills both attempts and
# the retry timers (5 s, jittered) line up again. Measured 4-30 s to settle, longer on a loaded
# machine; a cell that converges sooner returns sooner.
CONVERGE_TIMEOUT = 90.0
SETTLE_SECONDS = 0.6
POLL_SECONDS = 0.15
# A session to the peer that is not up this long after the restart in ``NodeBirds.load`` is restarted
# again. Up to then it takes BIRD's 5 s connect delay and a few milliseconds of handshake, but a
# BIRD that reached the new peer on the previous cell's configuration, was restarted, and came back
# while ExaBGP was still closing the first connection can sit in OpenSent for its 240 s hold time
# (seen in CI, and reproduced by refusing port 179 during the restart); a refused connection waits
# out the 120 s connect-retry time. Both are longer than CONVERGE_TIMEOUT. When a session comes up
# says nothing about routes; what it then learns is what the cell compares.
NUDGE_SECONDS = 15.0
DAEMONS = ("bird", "birdc", "bird6", "birdc6", "ss")


# -- the lab --------------------------------------------------------------------------------------


def check_prerequisites() -> None:
    """Raise ``LabError`` naming what is missing (root, BIRD, iproute2's ss)."""
    if os.geteuid() != 0:
        raise LabError("the conformance lab needs root (it creates network namespaces)")
    missing = [d for d in DAEMONS if find_program(d) is None]
    if missing:
        raise LabError(f"the conformance lab needs {', '.join(missing)} (apt-get install bird iproute2)")


class ConformanceLab:
    """Namespaces (one per node plus the peer's), bird and bird6 per node, and the control plane they read."""

    def __init__(
        self,
        netns: NetnsLab,
        plane: ControlPlane,
        *,
        confd: Path,
        templates: Path,
        nodes: Sequence[cases.BaseNode] = cases.NODES,
        calico_version: str = cases.CALICO_VERSION,
    ) -> None:
        self.netns = netns
        self.nodes = tuple(nodes)  # a namespace and a BIRD each; a cell uses some or all of them
        self.calico_version = calico_version
        self.plane = plane
        self.confd = confd
        self.templates = templates
        self._kube: KubeClient | None = None
        self.baseline = Baseline.capture(self.kube)
        self.peer = CellPeer(netns, namespace=netns.namespace_name(PEER_ROLE))
        self._created: list[tuple[str, str, str | None, str]] = []  # the current cell's objects
        self.birds = NodeBirds(netns, self.nodes)

    @property
    def kube(self) -> KubeClient:
        """The admin client of the control plane, for seeding, resetting and the model's read."""
        if self._kube is None:
            self._kube = self.plane.client()
        return self._kube

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def up(
        cls,
        *,
        plane: ControlPlane,
        state_dir: Path,
        confd: Path | None = None,
        templates_dir: Path | None = None,
        nodes: Sequence[cases.BaseNode] = cases.NODES,
        calico_version: str = cases.CALICO_VERSION,
        progress: Progress | None = None,
    ) -> ConformanceLab:
        """Build the namespaces; BIRDs start with the first cell. On failure nothing is left."""
        check_prerequisites()
        binary = confd or ensure_confd(progress=progress)
        templates = templates_dir or default_templates_dir()
        netns = NetnsLab.create(state_dir, lab=LAB_NAME)
        try:
            lab = cls(netns, plane, confd=binary, templates=templates, nodes=nodes, calico_version=calico_version)
            lab._build()
        except BaseException:
            netns.teardown()
            raise
        return lab

    def _build(self) -> None:
        lab = self.netns
        peer_ns = lab.add_netns(PEER_ROLE)
        # The peer namespace holds the node subnet's bridge, so the peer needs no router in between.
        lab.ip(
            peer_ns,
            [
                "link add br0 type bridge",
                f"addr add {cases.PEER_ADDRESS}/{cases.SUBNET_LENGTH} dev br0",
                # nodad: an address still in duplicate address detection cannot be bound to.
                f"addr add {cases.PEER_ADDRESS6}/{cases.SUBNET6_LENGTH} dev br0 nodad",
                "link set br0 up",
            ],
        )
        for index, node in enumerate(self.nodes):
            namespace = lab.attach_host(
                f"node-{node.name}",
                bridge_ns=peer_ns,
                bridge="br0",
                port=f"n{index}",
                address=node.address,
                length=cases.SUBNET_LENGTH,
                forwarding=True,
            )
            lab.ip(
                namespace,
                [
                    f"addr add {node.address6}/{cases.SUBNET6_LENGTH} dev eth0 nodad",  # see br0's
                    # A veth pair, not a dummy: the dummy module is not loadable everywhere (containers).
                    f"link add {WORKLOAD_INTERFACE} type veth peer name {WORKLOAD_INTERFACE}p",
                    f"link set {WORKLOAD_INTERFACE}p up",
                    f"link set {WORKLOAD_INTERFACE} up",
                    # Felix's IPIP device holds the node's tunnel address as a /32. BIRD's
                    # protocol direct sees only the name and the address, so a veth named
                    # tunl0 stands in where the ipip module is not available.
                    f"link add {TUNNEL_INTERFACE} type veth peer name {TUNNEL_INTERFACE}p",
                    f"link set {TUNNEL_INTERFACE}p up",
                    f"link set {TUNNEL_INTERFACE} up",
                ],
            )
            self.birds.directory(node.name).mkdir(parents=True, exist_ok=True)
        lab.state.info["nodes"] = [n.name for n in self.nodes]
        # The peers' state directories (their unix sockets) live under a short temporary path,
        # recorded for teardown, whatever the length of the lab's own state directory.
        peer_root = Path(tempfile.mkdtemp(prefix="bgpflat-cf-"))
        lab.record_path(peer_root)
        lab.state.info["peer_root"] = str(peer_root)
        lab.save()

    # -- one cell ---------------------------------------------------------------------------------
    def run_cell(self, situation: cases.Situation, progress: Progress | None = None) -> CellResult:
        say = progress or (lambda _line: None)
        started = time.monotonic()
        notes: list[str] = []
        phases: dict[str, float] = {}
        mark = started

        def lap(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            phases[name] = now - mark
            mark = now

        try:
            self.peer.stop()
            if not situation.peer_from_snapshot:
                # The peer boots (a second or two of Python and ExaBGP) while the cell is prepared.
                self.peer.start(situation)
                lap("peer")
            self._reset()
            lap("reset")
            objects = cases.build_objects(
                situation, service_range=self.plane.state.service_cluster_ip_range, calico_version=self.calico_version
            )
            self._created = [self._object_key(o) for o in objects]
            seed_objects(self.kube, objects, flavour=self.plane.flavour, scenario=situation.name)
            lap("seed")
            self._program_workloads(situation)
            calico_sessions = self._render_all(situation)
            lap("confd")
            expected, cluster_objects = self._expected(situation)
            lap("model")
            # A peer taking its neighbours from the cluster refuses to run with none: when no node
            # is to peer with it, there is no peer, nothing learned, and confd must agree.
            silent = situation.peer_from_snapshot and not expected.sessions
            if situation.peer_from_snapshot and not silent:
                self.peer.start(situation, objects=cluster_objects)
                lap("peer")
            if not silent:
                self.peer.wait_listening()
            self.birds.load()
            lap("load")
            learned, converge_notes = RouteTable(), list[str]()
            if not silent:
                learned, converge_notes = self._converge(sessions=set(expected.sessions) | set(calico_sessions))
            lap("converge")
            notes.extend(converge_notes)
            diff = diff_routes(expected=expected, learned=learned, strict=True)
            sessions_agree = set(expected.sessions) == set(calico_sessions)
            result = CellResult(
                situation=situation,
                match=diff.complies and sessions_agree and not converge_notes,
                seconds=time.monotonic() - started,
                expected_routes=len(expected.table),
                learned_routes=len(learned),
                expected_sessions=tuple(sorted(expected.sessions, key=address_sort_key)),
                calico_sessions=tuple(sorted(calico_sessions, key=address_sort_key)),
                diff=diff,
                notes=tuple(notes),
                phases=phases,
            )
        except BgpflatError as exc:
            result = CellResult(
                situation=situation, match=False, seconds=time.monotonic() - started, error=str(exc), notes=tuple(notes)
            )
        say(f"{situation.name}: {'match' if result.match else 'MISMATCH'} ({result.seconds:.1f} s)")
        return result

    def _object_key(self, obj: Mapping[str, Any]) -> tuple[str, str, str | None, str]:
        served = for_flavour(obj, self.plane.flavour)
        meta = served.get("metadata") or {}
        return (str(served["apiVersion"]), str(served["kind"]), meta.get("namespace"), str(meta["name"]))

    def _reset(self) -> None:
        """Delete what the previous cell created, newest first (a full baseline sweep costs a
        discovery of every resource type; this is a few DELETEs)."""
        for api_version, kind, namespace, name in reversed(self._created):
            try:
                self.kube.delete_object(api_version, kind, name, namespace=namespace)
            except KubeError as exc:
                raise LabError(f"resetting the cluster: {exc}") from exc
        self._created = []

    def run(self, situations: Sequence[cases.Situation], progress: Progress | None = None) -> list[CellResult]:
        results = [self.run_cell(s, progress) for s in situations]
        self.peer.stop()
        return results

    # -- steps ------------------------------------------------------------------------------------
    def _program_workloads(self, situation: cases.Situation) -> None:
        """Felix's part: a kernel /32 (/128) per local workload on a cali* interface (proto boot,
        scope link), and the tunnel address on tunl0 when the node has one."""
        by_node: dict[str, list[str]] = {}
        for workload in cases.workloads_of(situation):
            by_node.setdefault(workload.node, []).append(workload.address)
        for node in self.nodes:
            commands = [f"route flush dev {WORKLOAD_INTERFACE}", f"addr flush dev {TUNNEL_INTERFACE}"]
            commands += [
                f"route add {address}/{128 if ':' in address else 32} dev {WORKLOAD_INTERFACE}"
                + ("" if ":" in address else " scope link")
                for address in by_node.get(node.name, ())
            ]
            tunnel = situation.tunnel_addresses.get(node.name)
            if tunnel:
                commands.append(f"addr add {tunnel}/32 dev {TUNNEL_INTERFACE}")
            # A plain ``route flush`` flushes IPv4 only, and ``ip -batch`` lines take no ``-6``.
            run(["ip", "-6", "-n", self.birds.namespace(node.name), "route", "flush", "dev", WORKLOAD_INTERFACE])
            self.netns.ip(self.birds.namespace(node.name), commands)

    def _render_all(self, situation: cases.Situation) -> set[str]:
        """confd for every node of the cell (in parallel); returns the node addresses whose bird.cfg
        or bird6.cfg peers with one of the situation's peer addresses. The lab's other nodes get a
        BIRD configuration (bird and bird6) without any protocol that speaks."""
        for idle in self._idle_nodes(situation):
            directory = self.birds.directory(idle.name)
            for stale in directory.glob("*.cfg"):
                stale.unlink()
            for _, _, config in BIRDS:
                (directory / config).write_text(f"router id {idle.address};\nprotocol device {{ }}\n")
        peer_addresses = situation.peer_addresses

        def render(node: cases.BaseNode) -> set[str]:
            rendered = self.netns.state_dir / "confd" / node.name
            shutil.rmtree(rendered, ignore_errors=True)
            render_bird_config(
                kubeconfig=self.plane.kubeconfig,
                node_name=node.name,
                out_dir=rendered,
                templates_dir=self.templates,
                confd=self.confd,
            )
            without_krt_tunnel(rendered, self.birds.directory(node.name))
            found = set()
            for address in peer_addresses:
                v6 = ":" in address
                text = (self.birds.directory(node.name) / ("bird6.cfg" if v6 else "bird.cfg")).read_text()
                if f"neighbor {address} as " in text:
                    found.add(node.address6 if v6 else node.address)
            return found

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(situation.nodes)) as pool:
            return set().union(*pool.map(render, situation.nodes))

    def _idle_nodes(self, situation: cases.Situation) -> list[cases.BaseNode]:
        used = {node.name for node in situation.nodes}
        unknown = used - {node.name for node in self.nodes}
        if unknown:
            raise LabError(f"situation {situation.name} names nodes the lab has none for: {', '.join(sorted(unknown))}")
        return [node for node in self.nodes if node.name not in used]

    def _expected(self, situation: cases.Situation) -> tuple[ExpectedRoutes, list[dict[str, Any]]]:
        """``expected_routes`` from the objects as the API serves them (the ``routes expected``
        read), and those objects."""
        objects = read_live_objects(CalicoApi(self.kube))
        cluster = ClusterState.from_objects(objects)
        each = expected_routes_for_peers(
            cluster=cluster,
            peers=[OutsidePeer(address=address) for address in situation.peer_addresses],
            options=ModelOptions(add_path=situation.add_path),
        )
        return merge_expected(each), objects

    def _converge(self, *, sessions: Iterable[str]) -> tuple[RouteTable, list[str]]:
        """Wait for End-of-RIB on ``sessions``, every cluster session up, and a table that stays put."""
        from bgpflat.peer.endpoint import EndpointUnavailable, fetch

        wanted = set(sessions)
        socket_path = self.peer.state_dir() / "peer.sock"
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        nudge_at = time.monotonic() + NUDGE_SECONDS
        waiting: list[str] = []
        previous: RouteTable | None = None
        last_reason = "nothing read yet"
        table = RouteTable()
        while time.monotonic() < deadline:
            try:
                data = fetch(f"unix:{socket_path}", "/snapshot", timeout=5.0)
            except (EndpointUnavailable, BgpflatError, OSError) as exc:
                last_reason = f"peer endpoint: {exc}"
                time.sleep(POLL_SECONDS)
                continue
            state = learned_from_json(data, source="peer")
            table = state.routes
            done = {
                peer for peer, session in (state.sessions or {}).items() if session.established and session.end_of_rib
            }
            if not wanted <= done:
                if time.monotonic() >= nudge_at:  # not every poll: a birdc per node and family
                    waiting = self.birds.peer_sessions_waiting(restart=True)
                    nudge_at = time.monotonic() + NUDGE_SECONDS
                last_reason = f"End-of-RIB missing from {', '.join(sorted(wanted - done, key=address_sort_key))}"
                if waiting:
                    last_reason += "; restarted BGP sessions to the peer not Established: " + ", ".join(waiting)
                previous = None
                time.sleep(POLL_SECONDS)
                continue
            down = self.birds.sessions_down()
            if down:
                last_reason = "BGP sessions inside the cluster not Established: " + ", ".join(down)
                previous = None
                time.sleep(POLL_SECONDS)
                continue
            if previous is not None and previous == table:
                return table, []
            previous = table
            time.sleep(SETTLE_SECONDS)
        return table, [f"not converged after {CONVERGE_TIMEOUT:g} s: {last_reason}"]

    # -- teardown ---------------------------------------------------------------------------------
    def down(self) -> None:
        try:
            self.netns.teardown()
        finally:
            # The API server keeps running (it is not ours); leave it as the run found it.
            with contextlib.suppress(BgpflatError, OSError):
                self.baseline.restore(self.kube)
            if self._kube is not None:
                self._kube.close()
                self._kube = None


def run_conformance(
    *,
    plane: ControlPlane,
    state_dir: Path,
    situations: Sequence[cases.Situation] = SITUATIONS,
    progress: Progress | None = None,
    calico_version: str = cases.CALICO_VERSION,
    confd: Path | None = None,
    templates_dir: Path | None = None,
) -> ConformanceReport:
    """Build the lab on ``plane``, run ``situations``, tear the lab down; the report of every cell.

    ``calico_version`` goes into ClusterInformation (the model follows it); ``confd`` and
    ``templates_dir`` should be that release's (default: the pinned release's).
    """
    started = time.monotonic()
    roster = {node.name: node for s in situations for node in s.nodes}
    nodes = sorted(roster.values(), key=lambda n: address_sort_key(n.address))
    lab = ConformanceLab.up(
        plane=plane,
        state_dir=state_dir,
        confd=confd,
        templates_dir=templates_dir,
        nodes=nodes,
        calico_version=calico_version,
        progress=progress,
    )
    try:
        setup = time.monotonic() - started
        cells = lab.run(situations, progress)
    finally:
        lab.down()
    return ConformanceReport(
        cells=tuple(cells), seconds=time.monotonic() - started, setup_seconds=setup, calico_version=calico_version
    )
