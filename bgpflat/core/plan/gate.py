"""What the route gate of a staged apply decides: when a stage turns encapsulation off, and which
routes must be learned before it may.

Turning IPIP/VXLAN off is the step that black-holes pod traffic when the network outside the
cluster does not yet carry the pod blocks (projectcalico/calico#3672, #4022). Once a pool runs
without encapsulation, a packet for a pod leaves its node unencapsulated towards the address the
outside router learned for the pod's block, so before that stage every node's blocks of the pool
must be learned with a next hop that delivers them: the node itself, or a node in the owning
node's own subnet (it forwards to the owner directly, as a packet between nodes of one subnet
needs no tunnel; a next hop in another subnet would send the packet back to the router).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bgpflat.core.calico import parse_path
from bgpflat.core.net.prefixes import Prefix, parse_address
from bgpflat.core.plan.model import Action, ResourceChange, Stage
from bgpflat.core.routes.advertise import AdvertisementModel
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.diff import MISSING, RouteDiff
from bgpflat.core.routes.expected import ModelOptions
from bgpflat.core.routes.table import RouteTable
from bgpflat.errors import SpecError

_MODES = ("spec.ipipMode", "spec.vxlanMode")


def encapsulation_turned_off(stage: Stage) -> list[str]:
    """Names of the pools whose IPIP or VXLAN mode this stage sets to Never (from anything else),
    directly or through the tigera-operator's Installation."""
    names = []
    for change in stage.changes:
        if change.action is not Action.UPDATE:
            continue
        if change.kind == "Installation":
            names.extend(_operator_pools_turned_off(change))
            continue
        if change.kind != "IPPool":
            continue
        for fc in change.fields:
            if fc.path in _MODES and fc.after in ("Never", None) and fc.before not in ("Never", None):
                names.append(change.name)
                break
    return names


def _operator_pools_turned_off(change: ResourceChange) -> list[str]:
    """Pools of an operator-managed cluster whose ``encapsulation`` entry this change sets to None
    (the operator writes the IPPool of the same name from it)."""
    pools = ((change.patch or {}).get("spec") or {}).get("calicoNetwork", {}).get("ipPools") or []
    names = []
    for fc in change.fields:
        parts = parse_path(fc.path)
        if parts[-1:] != ("encapsulation",) or len(parts) < 2 or not isinstance(parts[-2], int):
            continue
        if fc.after == "None" and fc.before not in ("None", None) and parts[-2] < len(pools):
            names.append(str(pools[parts[-2]].get("name") or ""))
    return [n for n in names if n]


def undelivered_blocks(cluster: ClusterState, pools: Iterable[str], learned: RouteTable) -> dict[str, list[str]]:
    """Node -> its blocks of ``pools`` that no learned route delivers (see the module docstring)."""
    wanted = {p.name: p.cidr for p in cluster.pools if p.name in set(pools)}
    if not wanted:
        return {}
    model = AdvertisementModel(cluster, ModelOptions())
    hops: dict[Prefix, set[str]] = {}
    for route in learned:
        hops.setdefault(route.prefix, set()).add(route.next_hop)
    missing: dict[str, list[str]] = {}
    for name, node in cluster.nodes.items():
        address = node.ipv4_address
        network = node.ipv4_network
        for block in model.confirmed_blocks(name):
            if block.version != 4 or not any(cidr.contains(block) for cidr in wanted.values()):
                continue
            learned_hops = hops.get(block, set())
            if address in learned_hops:
                continue
            if network is not None and any(_inside(hop, network) for hop in learned_hops):
                continue
            missing.setdefault(name, []).append(str(block))
    return dict(sorted(missing.items()))


def _inside(address: str, network: Prefix) -> bool:
    try:
        version, value = parse_address(address)
    except SpecError:  # a next hop the peer reported unparsable delivers nothing
        return False
    return network.contains_address(version, value)


def missing_by_node(diff: RouteDiff) -> dict[str, list[str]]:
    """Node -> the routes it should have sent and did not, or sent with other attributes."""
    out: dict[str, list[str]] = {}
    for finding in diff.findings:
        if not diff.fails(finding) or finding.prefix is None:
            continue
        label = finding.node or finding.session
        text = str(finding.prefix)
        if finding.category != MISSING:
            text += f" ({', '.join(finding.codes)})"
        out.setdefault(label, []).append(text)
    return dict(sorted(out.items()))


def grouped_lines(groups: Mapping[str, Sequence[str]], *, limit: int = 20) -> list[str]:
    """``node-3: 10.233.110.0/24, …`` lines, at most ``limit`` prefixes per node."""
    lines = []
    for node, prefixes in groups.items():
        shown = ", ".join(prefixes[:limit])
        more = f" and {len(prefixes) - limit} more" if len(prefixes) > limit else ""
        lines.append(f"  {node}: {shown}{more}")
    return lines
