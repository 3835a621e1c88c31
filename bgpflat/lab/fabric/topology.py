"""What a scenario's lab is made of: ``topology.yaml`` read into data, and the objects it is built from.

``labs/<scenario>/topology.yaml`` says how the networks are built (node segments switched and
routed by the ToR, the office LAN, where the verification peer sits); the cluster's objects say
what lives on them (Nodes and their addresses, pods from IPAM allocations, Services and
EndpointSlices). The lab reads them from its API server (``follower.api_source``);
``file_source`` reads a scenario's ``cluster.yaml`` the same way, cluster IPs allocated as the API
server would, for seeding a server with them.

The office side is what bgpflat renders for it (``bgpflat.core.office``), from the scenario's
``bgpflat.yaml`` laid over the objects: in ``mode: bgp`` the ToR runs the FRR config of ``render
tor`` and the office resolver the dnsmasq lines of ``render dns``, from ``up`` on; in ``mode:
static-nat`` (scenario C) the edge router speaks no BGP and ``lab check`` installs the static
routes, NAT and DNS (``bgpflat.lab.fabric.office``). Office hosts outside the cluster (``office.hosts``)
serve HTTP for ``bgpflat external`` to name.

Nothing here starts anything; the running lab is ``bgpflat.lab.fabric.flatlab.FlatLab``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bgpflat.adapters import files
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.office.dns import DEFAULT_SEARCH, DnsOptions, render_dns
from bgpflat.core.office.intent import OfficeIntent, build_intent
from bgpflat.core.state.load import load_desired
from bgpflat.core.state.model import ObservedState
from bgpflat.errors import BgpflatError, LabError
from bgpflat.lab.fabric import services

Objects = Sequence[Mapping[str, Any]]
ObjectSource = Callable[[], Objects]

TOPOLOGY_FILE = "topology.yaml"
SPEC_FILE = "bgpflat.yaml"
# How the office reaches the cluster: the ToR peers with the nodes (scenario D), or the office
# edge router has static routes to a forwarding node that masquerades (scenario C, no BGP).
MODE_BGP = "bgp"
MODE_STATIC_NAT = "static-nat"
# Built as ``bgp``; ``lab check`` runs a gated encapsulation change with probes instead.
MODE_MIGRATION = "migration"
# Scenario B: an OpenVPN server on the forwarding node; its hosts and check are bgpflat.lab.setups.openvpn.
MODE_OPENVPN = "openvpn"
# Scenario A: an edge node with NAT or plain routing, CoreDNS on it, DHCP in the office
# (bgpflat.lab.setups.edge_node builds and checks what only that setup has).
MODE_EDGE_NODE = "edge-node"
MODES = (MODE_BGP, MODE_STATIC_NAT, MODE_MIGRATION, MODE_OPENVPN, MODE_EDGE_NODE)
BGP_MODES = (MODE_BGP, MODE_MIGRATION)


# -- topology data ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    name: str
    network: str
    router: str  # the ToR's address on the segment
    gateway: str  # the nodes' default gateway (held by the ToR as a second address)

    def contains(self, address: str) -> bool:
        return Prefix.parse(self.network, strict=False).contains(Prefix.host(address))

    @property
    def length(self) -> int:
        return Prefix.parse(self.network, strict=False).length


@dataclass(frozen=True, slots=True, kw_only=True)
class Office:
    network: str
    router: str
    developer: str
    resolver: str
    search_domain: str
    dhcp: bool = False  # the developer host gets address and resolver from a DHCP server, not from the lab

    @property
    def length(self) -> int:
        return Prefix.parse(self.network, strict=False).length


@dataclass(frozen=True, slots=True, kw_only=True)
class OutsideHost:
    """A host on the office LAN outside the cluster (scenario E), serving HTTP on ``ports``."""

    name: str
    address: str
    ports: tuple[int, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Verifier:
    segment: str
    address: str
    asn: int
    # ``bmpPort``: bgpflat's BMP station listens on the verifier's address at this port and the
    # FRR ToR streams its Adj-RIB-In to it (None: no station, the ToR is configured without BMP).
    bmp_port: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    name: str
    directory: Path
    segments: tuple[Segment, ...]
    tor_hostname: str
    tor_asn: int
    tor_router_id: str
    office: Office
    verifier: Verifier | None
    cluster_domain: str
    service_range: str | None
    nodes: tuple[str, ...] | None  # None: every Node with an address on a segment
    mode: str = MODE_BGP
    forwarding_node: str | None = None  # static-nat: the node the office routes through
    dns_forward: str | None = None  # where the office resolver sends the cluster domain (default: kube-dns)
    outside_hosts: tuple[OutsideHost, ...] = ()
    # Names outside the cluster that the cluster DNS answers itself (``clusterDnsAnswers``): what
    # the cluster's own upstream, a cloud resolver, would say, where the office's says otherwise.
    cluster_dns_answers: tuple[tuple[str, str], ...] = ()

    @property
    def spec_file(self) -> Path:
        """The scenario's flat spec: what the office side is rendered from."""
        return self.directory / SPEC_FILE

    def segment_for(self, address: str) -> Segment:
        for segment in self.segments:
            if segment.contains(address):
                return segment
        raise LabError(f"{address} is on none of the lab's segments ({', '.join(s.network for s in self.segments)})")

    def segment(self, name: str) -> Segment:
        for segment in self.segments:
            if segment.name == name:
                return segment
        raise LabError(f"no segment {name!r} in {self.directory / TOPOLOGY_FILE}")


def _required(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data or data[key] in (None, ""):
        raise LabError(f"{where}: missing {key!r}")
    return data[key]


def load_topology(directory: Path) -> Topology:
    """``topology.yaml`` of a scenario directory, with defaults from its ``scenario.yaml``."""
    path = directory / TOPOLOGY_FILE
    try:
        data = yaml.safe_load(path.read_text()) or {}
        scenario = (
            yaml.safe_load((directory / "scenario.yaml").read_text()) if (directory / "scenario.yaml").is_file() else {}
        )
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"cannot read {path}: {exc}") from exc
    scenario = scenario or {}
    where = str(path)
    segments = tuple(
        Segment(
            name=str(_required(s, "name", where)),
            network=str(_required(s, "network", where)),
            router=str(_required(s, "router", where)),
            gateway=str(s.get("gateway") or s["router"]),
        )
        for s in data.get("segments") or ()
    )
    if not segments:
        raise LabError(f"{where}: no segments")
    office_data = _required(data, "office", where)
    scenario_office = scenario.get("office") or {}
    office = Office(
        network=str(office_data.get("network") or scenario_office.get("network")),
        router=str(_required(office_data, "router", where)),
        developer=str(_required(office_data, "developer", where)),
        resolver=str(_required(office_data, "resolver", where)),
        search_domain=str(office_data.get("searchDomain") or scenario_office.get("searchDomain") or ""),
        dhcp=bool(office_data.get("dhcp")),
    )
    tor_data = _required(data, "tor", where)
    verifier_data = data.get("verifier")
    verifier = (
        Verifier(
            segment=str(verifier_data.get("segment") or segments[0].name),
            address=str(_required(verifier_data, "address", where)),
            asn=int(verifier_data.get("asNumber") or 65000),
            bmp_port=int(verifier_data["bmpPort"]) if verifier_data.get("bmpPort") else None,
        )
        if verifier_data
        else None
    )
    nodes = data.get("nodes")
    mode = str(data.get("mode") or MODE_BGP)
    if mode not in MODES:
        raise LabError(f"{where}: mode {mode!r} is not one of {', '.join(MODES)}")
    forwarding = data.get("forwardingNode")
    if mode in (MODE_STATIC_NAT, MODE_OPENVPN, MODE_EDGE_NODE) and not forwarding:
        raise LabError(f"{where}: mode {mode} needs forwardingNode (the node the office routes through)")
    hosts = tuple(
        OutsideHost(
            name=str(_required(h, "name", where)),
            address=str(_required(h, "address", where)),
            ports=tuple(int(p) for p in h.get("ports") or (80,)),
        )
        for h in office_data.get("hosts") or ()
    )
    return Topology(
        name=str(data.get("name") or scenario.get("name") or directory.name),
        directory=directory,
        segments=segments,
        tor_hostname=str(tor_data.get("hostname") or "tor"),
        tor_asn=int(_required(tor_data, "asNumber", where)),
        tor_router_id=str(tor_data.get("routerId") or segments[0].router),
        office=office,
        verifier=verifier,
        cluster_domain=str(data.get("clusterDomain") or services.DEFAULT_DOMAIN),
        service_range=str(scenario.get("serviceClusterIPRange") or "") or None,
        nodes=tuple(str(n) for n in nodes) if nodes else None,
        mode=mode,
        forwarding_node=str(forwarding) if forwarding else None,
        dns_forward=str(office_data.get("dnsForward") or "") or None,
        outside_hosts=hosts,
        cluster_dns_answers=tuple(sorted((str(k), str(v)) for k, v in (data.get("clusterDnsAnswers") or {}).items())),
    )


def file_source(directory: Path, *, service_range: str | None = None) -> ObjectSource:
    """Objects from ``<directory>/cluster.yaml``, with cluster IPs allocated as an API server would."""

    def load() -> Objects:
        path = directory / "cluster.yaml"
        try:
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        except (OSError, yaml.YAMLError) as exc:
            raise LabError(f"cannot read {path}: {exc}") from exc
        objects: list[Mapping[str, Any]] = []
        for doc in documents:
            objects.extend(doc.get("items") or [] if str(doc.get("kind", "")).endswith("List") else [doc])
        return services.allocate_cluster_ips(objects, service_range) if service_range else objects

    return load


def office_intent(topology: Topology, objects: Objects) -> OfficeIntent:
    """What ``bgpflat render`` sees: the scenario's flat spec laid over ``objects`` (the state after apply)."""
    try:
        desired = load_desired(files.load_documents(topology.spec_file)) if topology.spec_file.is_file() else None
        return build_intent(
            desired=desired,
            observed=ObservedState.from_objects(list(objects)),
            objects=objects,
            forwarding_node=topology.forwarding_node,
        )
    except BgpflatError as exc:
        raise LabError(f"cannot render the office side from {topology.spec_file}: {exc}") from exc


def office_dns_conf(topology: Topology, intent: OfficeIntent, *, target: Sequence[str] = ()) -> str:
    """The office resolver's dnsmasq lines, as ``bgpflat render dns --dnsmasq`` prints them."""
    options = DnsOptions(
        target=tuple(target),
        search_domain=topology.office.search_domain or DEFAULT_SEARCH,
        listen=topology.office.resolver,
    )
    try:
        return render_dns(intent, fmt="dnsmasq", options=options)
    except BgpflatError as exc:
        raise LabError(f"cannot render the office resolver's config: {exc}") from exc
