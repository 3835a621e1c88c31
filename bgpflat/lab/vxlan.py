"""Calico's VXLAN data plane as Felix programs it, for the lab's nodes.

The kernel here has ``vxlan`` but no ``ipip``, so VXLAN is the encapsulation whose on/off the lab
can really show. Per node, what Felix's VXLAN manager keeps (felix/dataplane/linux/vxlan_mgr.go,
route_mgr.go), from the objects alone:

* a ``vxlan.calico`` device (VNI 4096, UDP 4789, no learning) on the node's uplink, with the VTEP
  address and MAC of the node's ``projectcalico.org/IPv4VXLANTunnelAddr`` and
  ``projectcalico.org/VXLANTunnelMACAddr`` annotations;
* for every other node with a VTEP: a permanent neighbour entry (its VTEP address → its MAC) and
  an FDB entry (its MAC → its node address);
* for every block affine to another node whose pool has ``vxlanMode`` Always, or CrossSubnet with
  that node in another subnet: ``<block> via <its VTEP> dev vxlan.calico onlink``; with
  CrossSubnet and the node in the same subnet: ``<block> via <its address> dev <uplink>``.

Pools with ``vxlanMode: Never`` are not Felix's: confd's ``calico_kernel_programming`` filter lets
BIRD program their routes (and rejects VXLAN pools' routes, which is why Felix must). Borrowed
addresses (a pod's /32 in another node's block) get no route of their own here.

One deliberate difference: Felix writes its routes with protocol ``boot`` (``DeviceRouteProtocol``
3), which BIRD's kernel protocol (``learn``) imports as alien routes and, with ADD-PATH, exports
to eBGP peers as extra paths (next hop the remote VTEP under ``keepOriginalNextHop``) —
``reject_tunnel_routes`` keeps them off the mesh only. bgpflat's route model does not predict
those paths yet, so the lab writes its routes with protocol ``kernel``, which BIRD never imports:
the packets take Felix's paths, and BGP carries what the model knows. The protocol also marks the
routes this module owns, so that the ones no longer wanted can be found and removed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bgpflat.core.calico.node import ANNOTATION_IPV4
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.errors import SpecError

DEVICE = "vxlan.calico"
VNI = 4096  # Felix's VXLANVNI default
PORT = 4789  # Felix's VXLANPort default
MTU = 1450  # 1500 minus VXLAN's 50 bytes of headers
PROTOCOL = "kernel"  # see the module docstring: never imported by BIRD; marks the routes owned here
ANNOTATION_VTEP = "projectcalico.org/IPv4VXLANTunnelAddr"
ANNOTATION_VTEP_MAC = "projectcalico.org/VXLANTunnelMACAddr"
VIA_VXLAN, VIA_UPLINK = "vxlan", "direct"


@dataclass(frozen=True, slots=True, kw_only=True)
class Vtep:
    node: str
    address: str  # the node's address (outer source/destination of the VXLAN packets)
    subnet: Prefix | None
    tunnel: str  # the VTEP address on vxlan.calico
    mac: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeVxlan:
    """What Felix keeps on one node: its device, the remote VTEPs, and block routes."""

    device: Vtep | None
    remotes: tuple[Vtep, ...]
    routes: Mapping[str, tuple[str, str]]  # block CIDR -> (VIA_VXLAN, VTEP) | (VIA_UPLINK, node address)


def vteps(objects: Iterable[Mapping[str, Any]]) -> dict[str, Vtep]:
    """Nodes with an IPv4 address and both VXLAN annotations, by name."""
    found: dict[str, Vtep] = {}
    for obj in objects:
        if obj.get("kind") != "Node":
            continue
        metadata = obj.get("metadata") or {}
        annotations = metadata.get("annotations") or {}
        address, tunnel, mac = (annotations.get(k) for k in (ANNOTATION_IPV4, ANNOTATION_VTEP, ANNOTATION_VTEP_MAC))
        if not (address and tunnel and mac):
            continue
        try:
            subnet = Prefix.parse(str(address), strict=False) if "/" in str(address) else None
        except SpecError:
            subnet = None
        name = str(metadata.get("name"))
        found[name] = Vtep(
            node=name, address=str(address).split("/")[0], subnet=subnet, tunnel=str(tunnel), mac=str(mac).lower()
        )
    return found


def node_vxlan(objects: Sequence[Mapping[str, Any]], node: str) -> NodeVxlan:
    """What Felix programs on ``node`` for the cluster in ``objects``."""
    cluster = ClusterState.from_objects(objects)
    by_node = vteps(objects)
    local = by_node.get(node)
    remotes = tuple(v for name, v in sorted(by_node.items()) if name != node)
    pools = [p for p in cluster.pools if p.cidr.version == 4 and p.vxlan_mode in ("Always", "CrossSubnet")]
    routes: dict[str, tuple[str, str]] = {}
    for block in cluster.blocks:
        owner = (block.affinity or "").removeprefix("host:")
        if not block.affinity or not block.affinity.startswith("host:") or owner == node:
            continue
        pool = next((p for p in pools if p.cidr.contains(block.cidr)), None)
        remote = by_node.get(owner)
        if pool is None or remote is None:
            continue  # BIRD's, or a node without a VTEP (Felix waits for it)
        same_subnet = (
            local is not None and local.subnet is not None and local.subnet.contains(Prefix.host(remote.address))
        )
        if pool.vxlan_mode == "CrossSubnet" and same_subnet:
            routes[str(block.cidr)] = (VIA_UPLINK, remote.address)
        else:
            routes[str(block.cidr)] = (VIA_VXLAN, remote.tunnel)
    return NodeVxlan(device=local, remotes=remotes, routes=routes)


def device_commands(device: Vtep, uplink: str) -> list[str]:
    """``ip -batch`` lines that create ``vxlan.calico`` as Felix configures it."""
    return [
        f"link add {DEVICE} type vxlan id {VNI} local {device.address} dev {uplink} dstport {PORT} nolearning",
        f"link set {DEVICE} address {device.mac} mtu {MTU}",
        f"addr add {device.tunnel}/32 dev {DEVICE}",
        f"link set {DEVICE} up",
    ]


def neighbour_commands(remotes: Sequence[Vtep]) -> list[str]:
    return [f"neigh replace {r.tunnel} lladdr {r.mac} dev {DEVICE} nud permanent" for r in remotes]


def fdb_argvs(remotes: Sequence[Vtep]) -> list[list[str]]:
    """``bridge`` commands: each remote MAC is reached at its node's address."""
    return [["bridge", "fdb", "replace", r.mac, "dev", DEVICE, "dst", r.address, "self", "permanent"] for r in remotes]


def route_commands(wanted: Mapping[str, tuple[str, str]], present: Iterable[str], uplink: str) -> list[str]:
    """``ip -batch`` lines that turn the routes ``present`` (``PROTOCOL``) into ``wanted``."""
    lines = []
    for cidr, (how, via) in sorted(wanted.items()):
        if how == VIA_VXLAN:
            lines.append(f"route replace {cidr} via {via} dev {DEVICE} onlink proto {PROTOCOL}")
        else:
            lines.append(f"route replace {cidr} via {via} dev {uplink} proto {PROTOCOL}")
    lines += [f"route del {cidr} proto {PROTOCOL}" for cidr in sorted(set(present) - set(wanted))]
    return lines


def present_routes(ip_json: str) -> list[str]:
    """The destinations of ``ip -j route show proto kernel`` that are not on-link subnets."""
    try:
        routes = json.loads(ip_json or "[]")
    except ValueError:
        return []
    # The kernel's own subnet routes share the protocol; only routes with a gateway are ours.
    return [str(r.get("dst")) for r in routes if isinstance(r, Mapping) and r.get("dst") and r.get("gateway")]
