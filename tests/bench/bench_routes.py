"""Benchmark: expected-route computation and route diff at scale, against a naive reference.

Run: ``python tests/bench/bench_routes.py`` (not collected by pytest; prints figures, asserts
only that the fast and the naive model agree).

Cluster: 5,000 nodes × 4 /26 blocks, a pod in every block, 5,000 borrowed /32s, 2,000
LoadBalancer Services with ``externalTrafficPolicy: Local`` (endpoints on two nodes each),
50 racks of 100 nodes, each rack peering with its own eBGP ToR (50 BGPPeers with a
nodeSelector). The node-to-node mesh is off, as it is in any cluster of this size (a 5,000-node
full mesh is 12.5 million BGP sessions); one extra figure shows a single node re-exporting the
whole cluster over a mesh.

Goals: all 50 peers' expected routes ≤ 0.5 s; a 1,000,000 vs 1,000,000 route diff ≤ 1 s.
"""

from __future__ import annotations

import gc
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netaddr

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bgpflat.core.net.prefixes import Prefix, format_address
from bgpflat.core.routes.advertise import AdvertisementModel
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.diff import diff_routes
from bgpflat.core.routes.expected import ExpectedRoutes, ModelOptions, OutsidePeer
from bgpflat.core.routes.table import Route, RouteTable

NODES, BLOCKS_PER_NODE, RACK, SERVICES = 5000, 4, 100, 2000
POOL = Prefix.parse("10.128.0.0/10")
V1, V3 = "crd.projectcalico.org/v1", "projectcalico.org/v3"


def node_ip(i: int) -> str:
    return f"172.16.{i // 250}.{i % 250 + 1}"


def block(i: int, j: int) -> Prefix:
    return Prefix(4, POOL.value + (i * BLOCKS_PER_NODE + j) * 64, 26)


def cluster_objects(nodes: int = NODES, services: int = SERVICES) -> list[dict[str, Any]]:
    """The benchmark cluster (module docstring); ``bench_cli`` draws smaller and larger ones."""
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": V1,
            "kind": "ClusterInformation",
            "metadata": {"name": "default"},
            "spec": {"calicoVersion": "v3.32.0"},
        },
        {
            "apiVersion": V3,
            "kind": "IPPool",
            "metadata": {"name": "pods"},
            "spec": {"cidr": str(POOL), "blockSize": 26, "nodeSelector": "all()"},
        },
        {
            "apiVersion": V3,
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {
                "asNumber": 64512,
                "nodeToNodeMeshEnabled": False,
                "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
                "serviceLoadBalancerIPs": [{"cidr": "192.168.0.0/16"}],
            },
        },
    ]
    for r in range(nodes // RACK):
        objects.append(
            {
                "apiVersion": V3,
                "kind": "BGPPeer",
                "metadata": {"name": f"tor-{r}"},
                "spec": {"peerIP": f"172.31.0.{r + 1}", "asNumber": 65000 + r, "nodeSelector": f"rack == 'r{r}'"},
            }
        )
    for i in range(nodes):
        name = f"node-{i}"
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": {"rack": f"r{i // RACK}"},
                    "annotations": {"projectcalico.org/IPv4Address": f"{node_ip(i)}/16"},
                },
            }
        )
        for j in range(BLOCKS_PER_NODE):
            cidr = str(block(i, j))
            objects.append(
                {
                    "apiVersion": V1,
                    "kind": "BlockAffinity",
                    "metadata": {"name": f"{name}-{j}"},
                    "spec": {"cidr": cidr, "node": name, "state": "confirmed", "deleted": "false", "type": "host"},
                }
            )
            allocations: list[int | None] = [None] * 64
            attributes = [
                {
                    "handle_id": f"k8s-pod-network.{name}-{j}",
                    "secondary": {"namespace": "default", "node": name, "pod": f"p-{i}-{j}"},
                }
            ]
            allocations[5] = 0
            if j == 0:  # one address of this block is used by a pod on the next node: borrowed
                allocations[10] = 1
                holder = f"node-{(i + nodes - 1) % nodes}"
                attributes.append(
                    {
                        "handle_id": f"k8s-pod-network.b-{i}",
                        "secondary": {"namespace": "default", "node": holder, "pod": f"b-{i}"},
                    }
                )
            objects.append(
                {
                    "apiVersion": V1,
                    "kind": "IPAMBlock",
                    "metadata": {"name": cidr.replace("/", "-")},
                    "spec": {
                        "cidr": cidr,
                        "affinity": f"host:{name}",
                        "allocations": allocations,
                        "attributes": attributes,
                    },
                }
            )
    for k in range(services):
        name = f"svc-{k}"
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "type": "LoadBalancer",
                    "clusterIP": f"10.96.{k // 250}.{k % 250 + 1}",
                    "externalTrafficPolicy": "Local",
                },
                "status": {"loadBalancer": {"ingress": [{"ip": f"192.168.{k // 250}.{k % 250 + 1}"}]}},
            }
        )
        endpoints = [
            {"addresses": [f"10.128.0.{n}"], "nodeName": f"node-{(k * 7 + n) % nodes}", "conditions": {"ready": True}}
            for n in (0, 1)
        ]
        objects.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-x",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": name},
                },
                "endpoints": endpoints,
            }
        )
    return objects


PEERS = [OutsidePeer(address=f"172.31.0.{r + 1}") for r in range(NODES // RACK)]


def fast(cluster: ClusterState) -> list[ExpectedRoutes]:
    model = AdvertisementModel(cluster, ModelOptions())
    return [model.expected_routes(peer) for peer in PEERS]


def as_set(results: list[ExpectedRoutes]) -> set[tuple[str, str, str]]:
    return {(route.session, str(route.prefix), route.next_hop) for result in results for route in result.table}


def naive(cluster: ClusterState) -> set[tuple[str, str, str]]:
    """The model's algorithm on this cluster with netaddr objects instead of integer tuples.

    Same steps and same data structures as ``AdvertisementModel``: one dict per prefix length to
    find the block that holds an address, each selected node's candidates (confirmed blocks,
    service ranges, borrowed workload /32s, service /32s), Calico's export filter, and for every
    peer route records with a reason each, in a table grouped by (session, prefix). What differs
    is only the representation, so the ratio measures what the integer-tuple prefixes buy.
    """
    network = netaddr.IPNetwork

    def index(items: list[tuple[netaddr.IPNetwork, Any]]) -> list[tuple[int, dict[netaddr.IPNetwork, Any]]]:
        levels: dict[int, dict[netaddr.IPNetwork, Any]] = {}
        for net, value in items:
            levels.setdefault(net.prefixlen, {}).setdefault(net, value)
        return sorted(levels.items(), key=lambda level: -level[0])

    def longest(levels: list[tuple[int, dict[netaddr.IPNetwork, Any]]], net: netaddr.IPNetwork) -> Any:
        for length, table in levels:
            if length <= net.prefixlen:
                found = table.get(network((net.value, length)).cidr)
                if found is not None:
                    return found
        return None

    config = cluster.bgp_configuration
    assert config is not None
    pools = index([(network(str(p.cidr)), p.name) for p in cluster.pools])
    no_export = index([(network(str(p.cidr)), p.name) for p in cluster.pools if p.disable_bgp_export])
    range_nets = [network(str(p)) for p in (*config.service_cluster_ips, *config.service_load_balancer_ips)]
    ranges = index([(net, True) for net in range_nets])
    balancer = index([(network(str(p)), True) for p in config.service_load_balancer_ips])
    blocks: dict[str, list[netaddr.IPNetwork]] = {}
    owner_items = []
    for affinity in cluster.affinities:
        net = network(str(affinity.cidr))
        blocks.setdefault(affinity.node, []).append(net)
        owner_items.append((net, (net, affinity.node)))
    owners = index(owner_items)
    workloads: dict[str, list[tuple[netaddr.IPNetwork, str]]] = {}
    for allocation in cluster.allocations:
        workloads.setdefault(allocation.node, []).append((network(str(allocation.address)), allocation.owner))
    local: dict[str, list[tuple[netaddr.IPNetwork, str]]] = {}
    for service in cluster.services:
        ips = [network(f"{service.cluster_ip}/32")]
        ips += [network(f"{ip}/32") for ip in service.ingress_ips if longest(balancer, network(f"{ip}/32"))]
        for ref in cluster.slice_endpoints.get(service.key, ()):
            if ref.ready is not False:
                local.setdefault(ref.node, []).extend((ip, service.key) for ip in ips)
    range_ok = [net for net in range_nets if longest(owners, net) is None and longest(no_export, net) is None]

    def own_block(name: str, net: netaddr.IPNetwork) -> netaddr.IPNetwork | None:
        found = longest(owners, net)
        return found[0] if found is not None and found[1] == name else None

    def export(name: str, net: netaddr.IPNetwork, hosts: set[netaddr.IPNetwork]) -> bool:
        if longest(no_export, net) is not None:
            return False
        block = own_block(name, net)
        if block is not None:
            return bool(block == net)
        if longest(ranges, net) is not None or net in hosts:
            return True
        return longest(pools, net) is not None

    out: set[tuple[str, str, str]] = set()
    for peer in PEERS:
        target = netaddr.IPAddress(peer.address)
        bgp_peer = next(p for p in cluster.peers if p.peer_ip and netaddr.IPAddress(p.peer_ip) == target)
        assert bgp_peer.as_number is not None
        key, _, value = (bgp_peer.node_selector or "").partition(" == ")
        reasons: dict[tuple[Any, ...], list[tuple[str, str, str, str]]] = {}
        table: dict[tuple[str, netaddr.IPNetwork], list[tuple[Any, ...]]] = {}
        for name in sorted(cluster.nodes):
            node = cluster.nodes[name]
            if node.labels.get(key) != value.strip("'"):
                continue
            address = str(netaddr.IPAddress(str(node.ipv4_address)))
            local_as = cluster.node_as(node)
            as_path = (local_as,) if local_as != bgp_peer.as_number else ()
            statics = local.get(name, [])
            hosts = {net for net, _ in statics}
            accepted = [
                (net, ("block", name, "local", "")) for net in blocks.get(name, []) if longest(no_export, net) is None
            ]
            accepted += [(net, ("service-range", name, "local", "")) for net in range_ok]
            candidates = [
                (net, ("borrowed", name, "local", f"workload {owner}"))
                for net, owner in workloads.get(name, [])
                if own_block(name, net) is None
            ]
            candidates += [(net, ("service-local", name, "local", service)) for net, service in statics]
            accepted += [(net, why) for net, why in candidates if export(name, net, hosts)]
            for net, why in accepted:
                route = (net, address, address, as_path, "igp", (), ())
                reasons.setdefault(route, []).append(why)
                table.setdefault((address, net), []).append(route)
        out.update((session, str(net), route[1]) for (session, net), paths in table.items() for route in paths)
    return out


def containment(cluster: ClusterState) -> None:
    """The core question of the model — which block holds this address — asked for the same
    addresses both ways, the same number of times: per-length dict lookups (``PrefixIndex``, every
    allocation) vs pairwise netaddr containment (a sample: every block against each address)."""
    addresses = [a.address for a in cluster.allocations]
    index_time, found = timed(lambda: _owners(cluster, addresses), repeat=3)
    blocks = [(netaddr.IPNetwork(str(a.cidr)), a.node) for a in cluster.affinities]
    sample = addresses[:: max(1, len(addresses) // 100)]
    sample_index_time, sample_found = timed(lambda: _owners(cluster, sample), repeat=3)

    def pairwise() -> list[str | None]:
        return [next((node for net, node in blocks if netaddr.IPAddress(p.value) in net), None) for p in sample]

    pairwise_time, naive_found = timed(pairwise, repeat=3)
    assert naive_found == sample_found
    print(
        f"owner block among {len(blocks)} blocks: {index_time * 1000:.0f} ms for all {len(addresses)} addresses "
        f"with PrefixIndex; for the same {len(sample)} addresses, best of 3 each: PrefixIndex "
        f"{sample_index_time * 1000:.2f} ms, pairwise netaddr {pairwise_time * 1000:.0f} ms — "
        f"{pairwise_time / max(sample_index_time, 1e-9):.0f}×"
    )
    assert len(found) == len(addresses)


def _owners(cluster: ClusterState, addresses: list[Prefix]) -> list[str | None]:
    from bgpflat.core.net.prefix_index import PrefixIndex

    index = PrefixIndex((a.cidr, a.node) for a in cluster.affinities)
    out: list[str | None] = []
    for address in addresses:
        hit = index.longest(address)
        out.append(None if hit is None else hit[1])
    return out


def timed(function: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best CPU time of ``repeat`` runs: the machine is shared, and wall time would mostly measure
    the other processes (the wall time of the best run is printed by ``main`` where it matters)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.process_time()
        result = function()
        best = min(best, time.process_time() - start)
    return best, result


def peak_mib(function: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def diff_tables(*, spread: bool) -> tuple[RouteTable, RouteTable]:
    """1,000 sessions × 1,000 prefixes; learned has path IDs and 1,000 each of missing, extra and
    wrong-next-hop routes — one of each per session (``spread``) or all on 10 sessions."""
    expected: list[Route] = []
    learned: list[Route] = []
    base = Prefix.parse("10.0.0.0/8").value
    per_session = 1 if spread else 100
    gc.disable()  # millions of new tuples would otherwise trigger ever longer full collections
    try:
        for s in range(1000):
            session = format_address(4, (172 << 24) | (20 << 16) | s)
            broken = spread or s % 100 == 0
            for k in range(1000):
                prefix = Prefix(4, base + (s * 1000 + k) * 256, 24)
                expected.append(Route(prefix, session, session, (64512,)))
                if broken and k >= 1000 - per_session:
                    continue  # missing
                wrong = broken and 1000 - 2 * per_session <= k < 1000 - per_session
                learned.append(Route(prefix, "10.255.255.1" if wrong else session, session, (64512,), path_id=1))
            for k in range(per_session if broken else 0):
                extra = Prefix(4, base + (s * 1000 + 999 - k) * 256 + 128, 25)
                learned.append(Route(extra, session, session, (64512,), path_id=1))
        return RouteTable(expected), RouteTable(learned)
    finally:
        gc.enable()


def diff_figure(*, spread: bool) -> None:
    t0 = time.perf_counter()
    expected, learned = diff_tables(spread=spread)
    built = time.perf_counter() - t0
    gc.freeze()
    diff_time, diff = timed(lambda: diff_routes(expected=expected, learned=learned), repeat=3)
    counts = diff.counts()
    where = "one of each on every session" if spread else "all on 10 of the 1,000 sessions"
    print(
        f"diff {len(expected)} × {len(learned)} routes, differences {where}: {diff_time * 1000:.0f} ms — "
        f"{counts['present']} present, {counts['missing']} missing, {counts['mismatched']} mismatched, "
        f"{counts['unexpected']} unexpected  [goal ≤ 1000 ms] (tables built in {built:.1f} s)"
    )
    if spread:
        diff_peak = peak_mib(lambda: diff_routes(expected=expected, learned=learned))
        print(f"peak traced memory during the diff (beyond the two tables): {diff_peak:.0f} MiB")
    gc.unfreeze()


def calibration() -> float:
    """CPU seconds for a bare 10-million-step Python loop: divide the figures below by it to compare
    runs on machines of different speed or load (≈0.35 s on an idle 3 GHz core with CPython 3.11)."""
    start = time.process_time()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.process_time() - start


def main() -> None:
    print(
        f"machine: 10M-step Python loop takes {calibration():.2f} s CPU "
        f"(load average {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())})"
    )
    t0 = time.perf_counter()
    objects = cluster_objects()
    generate = time.perf_counter() - t0
    load_time, cluster = timed(lambda: ClusterState.from_objects(objects), repeat=1)
    print(
        f"cluster: {NODES} nodes, {len(cluster.affinities)} blocks, "
        f"{len(cluster.allocations)} allocations, "
        f"{len(cluster.services)} services, {len(cluster.peers)} BGPPeers "
        f"(generated in {generate:.2f} s, ClusterState.from_objects {load_time:.2f} s)"
    )

    plain_time, _ = timed(lambda: fast(cluster))
    # The CLI freezes the loaded cluster state out of the garbage collector's sight (gc.freeze):
    # otherwise every collection walks the hundreds of thousands of objects the state is made of.
    gc.freeze()
    # Both sides best of the same number of runs: a best-of-5 against a single run flatters the fast side.
    fast_time, fast_results = timed(lambda: fast(cluster), repeat=3)
    fast_routes = as_set(fast_results)
    one_time, _ = timed(lambda: AdvertisementModel(cluster, ModelOptions()).expected_routes(PEERS[0]))
    naive_time, naive_routes = timed(lambda: naive(cluster), repeat=3)
    assert fast_routes == naive_routes, (len(fast_routes), len(naive_routes))
    borrowed = sum(1 for _, p, _ in fast_routes if POOL.contains(Prefix.parse(p)) and p.endswith("/32"))
    print(
        f"expected routes, all 50 peers: {fast_time * 1000:.0f} ms for {len(fast_routes)} routes "
        f"({borrowed} borrowed /32s)  [goal ≤ 500 ms]; {plain_time * 1000:.0f} ms without gc.freeze()"
    )
    print(f"expected routes, one peer (incl. indexing the cluster): {one_time * 1000:.0f} ms")
    print(
        f"naive netaddr reference: {naive_time * 1000:.0f} ms (best of 3, as the fast figure) — same routes; "
        f"ratio naive/fast {naive_time / fast_time:.1f}×"
    )
    print(f"peak traced memory, all 50 peers: {peak_mib(lambda: fast(cluster)):.0f} MiB")
    containment(cluster)

    mesh_objects = [dict(o) for o in objects]
    for obj in mesh_objects:
        if obj["kind"] == "BGPConfiguration":
            obj["spec"] = {**obj["spec"], "nodeToNodeMeshEnabled": True}
    mesh_objects.append(
        {
            "apiVersion": V3,
            "kind": "BGPPeer",
            "metadata": {"name": "edge"},
            "spec": {"peerIP": "172.31.1.1", "asNumber": 65100, "node": "node-0"},
        }
    )
    mesh_cluster = ClusterState.from_objects(mesh_objects)
    one_node = OutsidePeer(address="172.31.1.1")
    mesh_time, mesh_result = timed(
        lambda: AdvertisementModel(mesh_cluster, ModelOptions()).expected_routes(one_node), repeat=1
    )
    print(
        f"mesh on, one node re-exporting the whole cluster to an eBGP peer: {mesh_time * 1000:.0f} ms for "
        f"{len(mesh_result.table)} routes"
    )

    for spread in (True, False):
        diff_figure(spread=spread)
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
