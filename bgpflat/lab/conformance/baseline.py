"""Put a shared API server back to the state it had right after start-up.

Calico's objects (IPPool, BGPPeer, BGPConfiguration, IPAM blocks…) and Nodes are cluster-scoped,
so a namespace per test isolates nothing that matters here, and a fresh etcd prefix means a fresh
kube-apiserver per test (seconds each). Instead a ``Baseline`` records the UID of every object the
server holds after start-up; ``restore`` deletes every object created since, of every resource
type discovery lists, in an order that works without kube-controller-manager:

* namespaced objects first, then cluster-scoped ones, then namespaces;
* finalizers are cleared first, since no controller runs that would remove them;
* a deleted namespace is finalized directly (the namespace controller is not running either).

Objects the server manages itself are left alone (events, leases, and the IPAddress objects it
allocates and frees with Services). A ServiceCIDR added by seeding goes, after the Services in it
(nothing holds it: its finalizer would come from kube-controller-manager). Changes to objects that
existed at start-up (say, a patched ``default`` namespace) are not undone.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from bgpflat.adapters.kube import KubeClient, Resource
from bgpflat.errors import KubeError, KubeNotFound, LabError

UNTOUCHED = {"events", "leases", "ipaddresses", "componentstatuses"}


def _resource_types(kube: KubeClient) -> list[Resource]:
    return [r for r in kube.preferred_resources() if {"list", "delete"} <= r.verbs and r.plural not in UNTOUCHED]


def _objects(kube: KubeClient) -> list[tuple[Resource, dict[str, Any]]]:
    listed: list[tuple[Resource, dict[str, Any]]] = []
    for rtype in _resource_types(kube):
        try:
            items = kube.list_kind(rtype.api_version, rtype.kind, rtype.plural)
            listed.extend((rtype, item) for item in items)
        except KubeError:
            continue  # a type that just went away (a CRD deleted by a test), or cannot be listed
    return listed


def _describe(rtype: Resource, item: dict[str, Any]) -> str:
    meta = item["metadata"]
    where = f"{meta['namespace']}/{meta['name']}" if rtype.namespaced else meta["name"]
    return f"{rtype.api_version} {rtype.kind} {where}"


def _is_namespace(rtype: Resource) -> bool:
    return rtype.api_version == "v1" and rtype.kind == "Namespace"


@dataclass(frozen=True, slots=True)
class Baseline:
    """The UIDs of every object present when the baseline was taken."""

    uids: frozenset[str]

    @classmethod
    def capture(cls, kube: KubeClient) -> Baseline:
        return cls(frozenset(item["metadata"]["uid"] for _, item in _objects(kube)))

    def extra_objects(self, kube: KubeClient) -> list[tuple[Resource, dict[str, Any]]]:
        """Objects created since the baseline was taken."""
        return [(r, i) for r, i in _objects(kube) if i["metadata"]["uid"] not in self.uids]

    def restore(self, kube: KubeClient) -> list[str]:
        """Delete everything created since the baseline; return what was deleted, one line each."""
        extra = self.extra_objects(kube)

        def rank(entry: tuple[Resource, dict[str, Any]]) -> int:
            rtype, _ = entry
            if _is_namespace(rtype):
                return 2
            return 0 if rtype.namespaced else 1

        deleted: list[str] = []
        for rtype, item in sorted(extra, key=rank):
            meta = item["metadata"]
            namespace = meta.get("namespace") if rtype.namespaced else None
            if meta.get("finalizers"):
                # Best effort: if this fails, the DELETE below says why the object stays.
                with contextlib.suppress(KubeError):
                    kube.clear_finalizers(rtype.api_version, rtype.kind, meta["name"], namespace=namespace)
            try:
                kube.delete_object(rtype.api_version, rtype.kind, meta["name"], namespace=namespace)
                if _is_namespace(rtype):
                    kube.finalize_namespace(meta["name"])
            except KubeNotFound:
                pass  # gone meanwhile (its namespace went first, or a test deleted it)
            except KubeError as exc:
                raise LabError(f"resetting the cluster: {exc}") from exc
            deleted.append(_describe(rtype, item))
        return deleted
