"""Which Calico nodes will peer with this verification peer: ``--from-snapshot`` / ``--from-cluster``.

The nodes, and the AS each connects with, are those of the route model's sessions
(``bgpflat.core.routes.sessions``, calico-facts §1.2): the peer expects exactly the sessions the
model predicts routes for. This module only turns them into ExaBGP neighbours.

``select_neighbors`` is pure: it takes already-loaded objects as dicts. ``load_objects`` reads a
YAML file (a ``kind: List`` or several documents); ``read_cluster_objects`` is the thin live read.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgpflat.core.exabgp.config import Neighbor, neighbor
from bgpflat.core.net.prefixes import canonical_address, parse_address
from bgpflat.core.routes.cluster import ClusterState, calico_version
from bgpflat.core.routes.sessions import Peerings
from bgpflat.errors import SpecError


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterPeering:
    neighbors: tuple[Neighbor, ...]
    local_as: int | None  # the asNumber the BGPPeers the nodes render expect this peer to have
    bgp_peers: tuple[str, ...]
    skipped: tuple[str, ...]  # why a selected node gave no neighbor, or a BGPPeer is dropped, for the user


# -- neighbor selection --------------------------------------------------------------------------

# The kinds the peering rule reads. Calico kinds written without an apiVersion (hand-made
# snapshots) are read as projectcalico.org/v3, as the peer always has.
_PEERING_KINDS: dict[str, str | None] = {
    "Node": None,
    "BGPPeer": "projectcalico.org/v3",
    "BGPConfiguration": "projectcalico.org/v3",
    "ClusterInformation": "projectcalico.org/v3",
}


def _peering_cluster(objects: Iterable[Mapping[str, Any]]) -> ClusterState:
    kept: list[Mapping[str, Any]] = []
    for obj in objects:
        kind = str(obj.get("kind"))
        if kind not in _PEERING_KINDS:
            continue
        default_api = _PEERING_KINDS[kind]
        kept.append({"apiVersion": default_api, **obj} if default_api and not obj.get("apiVersion") else obj)
    return ClusterState.from_objects(kept)


def select_neighbors(
    *,
    objects: Iterable[Mapping[str, Any]],
    local_addresses: Collection[str],
    peer_as: int | None = None,
) -> ClusterPeering:
    """The nodes that will open a session to one of ``local_addresses``, as ExaBGP neighbors.

    ``peer_as`` forces the neighbors' AS instead of each node's own.
    """
    cluster = _peering_cluster(objects)
    _, calico, _ = calico_version(cluster.calico_version)
    peerings = Peerings(cluster, calico)
    by_address: dict[str, Neighbor] = {}
    names: list[str] = []
    skipped: list[str] = []
    expected_as: dict[int, list[str]] = {}  # the peer's AS each rendered BGPPeer expects -> BGPPeers
    pointing_as: dict[int, list[str]] = {}  # the same for every BGPPeer pointing here
    for address in dict.fromkeys(canonical_address(a) for a in local_addresses):
        pointing = peerings.pointing_at(address)
        if not pointing:
            continue
        names.extend(p.name for p in pointing)
        for bgp_peer in pointing:
            if bgp_peer.as_number is not None:
                pointing_as.setdefault(bgp_peer.as_number, []).append(bgp_peer.name)
        sessions, notes = peerings.sessions(address)
        skipped.extend(notes)
        for session in sessions:
            if session.peer_as is not None:
                expected_as.setdefault(session.peer_as, []).append(session.bgp_peer.name)
            by_address.setdefault(
                session.address,
                neighbor(
                    session.address,
                    peer_as=peer_as if peer_as is not None else session.local_as,
                    description=session.node.name,
                ),
            )
    # With no node selected the BGPPeers still say which AS they expect this peer to run.
    local_as = expected_as or pointing_as
    if len(local_as) > 1:
        who = sorted({name for group in local_as.values() for name in group})
        raise SpecError(f"BGPPeers {', '.join(who)} expect different AS numbers here: {sorted(local_as)}")
    return ClusterPeering(
        neighbors=tuple(sorted(by_address.values(), key=lambda n: parse_address(n.address))),
        local_as=next(iter(local_as)) if local_as else None,
        bgp_peers=tuple(dict.fromkeys(names)),
        skipped=tuple(dict.fromkeys(skipped)),
    )


# -- loading -------------------------------------------------------------------------------------


def flatten_objects(documents: Iterable[Any]) -> list[dict[str, Any]]:
    """Documents -> objects, expanding ``kind: List`` (and ``*List``) items."""
    objects: list[dict[str, Any]] = []
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        if str(doc.get("kind", "")).endswith("List") and isinstance(doc.get("items"), list):
            objects.extend(flatten_objects(doc["items"]))
        else:
            objects.append(doc)
    return objects


def load_objects(path: Path) -> list[dict[str, Any]]:
    """Kubernetes/Calico objects from a YAML (or JSON) file: a ``kind: List`` or multi-document,
    read by the one loader every input goes through (bounded, errors with file and line)."""
    from bgpflat.adapters.files import load_documents

    return flatten_objects(doc.data for doc in load_documents(path))


def read_cluster_objects(*, kubeconfig: str | None = None, context: str | None = None) -> list[dict[str, Any]]:
    """Nodes, BGPPeers and BGPConfigurations (with the rest of the Calico state) from the live cluster.

    Read through the Kubernetes adapter, so kubeconfig and API failures are the same ``KubeError``
    lines every other command prints, and the Calico API is chosen by the same rule.
    """
    from bgpflat.adapters.kube import CalicoApi

    api = CalicoApi.connect(kubeconfig=kubeconfig, context=context)
    try:
        return api.read_state()
    finally:
        api.close()
