"""Which Calico nodes will peer with this verification peer: ``--from-snapshot`` / ``--from-cluster``.

A calico-node opens a BGP session to a ``BGPPeer``'s ``peerIP`` when the BGPPeer selects the node:
``spec.node`` names it, ``spec.nodeSelector`` matches its labels, or neither is set (a global peer)
(calico-facts §1.2). The node connects from its BGP address (``projectcalico.org/IPv4Address``,
the ``sourceAddress: UseNodeIP`` default) with its own AS (node annotation, else the ``default``
BGPConfiguration's ``asNumber``, else 64512), unless the BGPPeer sets ``localASNumber``.

``select_neighbors`` is pure: it takes already-loaded objects as dicts. ``load_objects`` reads a
YAML file (a ``kind: List`` or several documents); ``read_cluster_objects`` is the thin live read.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgpflat.core.calico.models import DEFAULT_AS_NUMBER, parse_as_number, parse_peer_ip
from bgpflat.core.exabgp.config import Neighbor, neighbor
from bgpflat.core.net.prefixes import canonical_address, parse_address
from bgpflat.core.net.selector import Selector, parse_selector
from bgpflat.core.routes.cluster import ANNOTATION_AS, ANNOTATION_IPV4, ANNOTATION_IPV6
from bgpflat.errors import SpecError


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterPeering:
    neighbors: tuple[Neighbor, ...]
    local_as: int | None  # the asNumber the matching BGPPeers expect this peer to have
    bgp_peers: tuple[str, ...]
    skipped: tuple[str, ...]  # why a selected node gave no neighbor, for the user


# -- neighbor selection --------------------------------------------------------------------------


def _as_number(value: Any, *, where: str) -> int:
    try:
        return parse_as_number(value)
    except SpecError as exc:
        raise SpecError(f"{where}: {exc.message}", fix=exc.fix) from None


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _node_address(node: Mapping[str, Any], version: int) -> str | None:
    annotations = _meta(node).get("annotations") or {}
    key = ANNOTATION_IPV4 if version == 4 else ANNOTATION_IPV6
    text = annotations.get(key) or (_spec(node).get("bgp") or {}).get("ipv4Address" if version == 4 else "ipv6Address")
    if not text:
        return None
    return canonical_address(str(text).partition("/")[0])


def _node_as(node: Mapping[str, Any], default_as: int) -> int:
    name = _meta(node).get("name", "?")
    annotations = _meta(node).get("annotations") or {}
    value = annotations.get(ANNOTATION_AS) or (_spec(node).get("bgp") or {}).get("asNumber")
    return default_as if value in (None, "") else _as_number(value, where=f"node {name} AS number")


def select_neighbors(
    *,
    objects: Iterable[Mapping[str, Any]],
    local_addresses: Collection[str],
    peer_as: int | None = None,
) -> ClusterPeering:
    """The nodes that will open a session to one of ``local_addresses``, as ExaBGP neighbors.

    ``peer_as`` forces the neighbors' AS instead of each node's own.
    """
    ours = {canonical_address(a) for a in local_addresses}
    peers, nodes = [], []
    default_as = DEFAULT_AS_NUMBER
    for obj in objects:
        kind = obj.get("kind")
        if kind == "BGPPeer":
            peers.append(obj)
        elif kind == "Node":
            nodes.append(obj)
        elif (
            kind == "BGPConfiguration"
            and _meta(obj).get("name") == "default"
            and _spec(obj).get("asNumber") not in (None, "")
        ):
            default_as = _as_number(_spec(obj)["asNumber"], where="BGPConfiguration default asNumber")
    by_address: dict[str, Neighbor] = {}
    names: list[str] = []
    skipped: list[str] = []
    local_as: set[int] = set()
    for peer in sorted(peers, key=lambda p: str(_meta(p).get("name", ""))):
        spec = _spec(peer)
        name = str(_meta(peer).get("name", "?"))
        if not spec.get("peerIP") or spec.get("peerSelector"):
            continue
        try:
            target = parse_peer_ip(str(spec["peerIP"])).ip
        except SpecError:
            skipped.append(f"BGPPeer {name}: peerIP {spec['peerIP']!r} is not an address")
            continue
        if target not in ours:
            continue
        names.append(name)
        if spec.get("asNumber") not in (None, ""):
            local_as.add(_as_number(spec["asNumber"], where=f"BGPPeer {name} asNumber"))
        version = parse_address(target)[0]
        selector: Selector | None = None  # parsed at first use: a peer that selects no node never fails on it
        for node in sorted(nodes, key=lambda n: str(_meta(n).get("name", ""))):
            node_name = str(_meta(node).get("name", "?"))
            if spec.get("node"):
                if spec["node"] != node_name:
                    continue
            else:
                if selector is None:
                    selector = parse_selector(str(spec.get("nodeSelector") or ""))
                if not selector.matches(_meta(node).get("labels") or {}):
                    continue
            address = _node_address(node, version)
            if address is None:
                annotation = ANNOTATION_IPV4 if version == 4 else ANNOTATION_IPV6
                skipped.append(f"node {node_name}: no IPv{version} BGP address (annotation {annotation})")
                continue
            if address in ours:
                continue  # Calico skips a peer that is the node itself
            if spec.get("localASNumber") not in (None, ""):
                node_as = _as_number(spec["localASNumber"], where=f"BGPPeer {name} localASNumber")
            else:
                node_as = _node_as(node, default_as)
            by_address.setdefault(
                address, neighbor(address, peer_as=peer_as if peer_as is not None else node_as, description=node_name)
            )
    if len(local_as) > 1:
        raise SpecError(f"BGPPeers {', '.join(names)} expect different AS numbers here: {sorted(local_as)}")
    return ClusterPeering(
        neighbors=tuple(sorted(by_address.values(), key=lambda n: parse_address(n.address))),
        local_as=next(iter(local_as)) if local_as else None,
        bgp_peers=tuple(names),
        skipped=tuple(skipped),
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
    """Kubernetes/Calico objects from a YAML (or JSON) file: a ``kind: List`` or multi-document."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", file=str(path)) from None
    try:
        return flatten_objects(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SpecError(
            f"invalid YAML: {getattr(exc, 'problem', exc)}",
            file=str(path),
            line=None if mark is None else mark.line + 1,
        ) from None


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
