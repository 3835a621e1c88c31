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

from dataclasses import dataclass
from typing import Any

from bgpflat.errors import LabError
from bgpflat.lab.controlplane.kube_rest import KubeRest

UNTOUCHED = {"events", "leases", "ipaddresses", "componentstatuses"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceType:
    base: str  # /api/v1 or /apis/<group>/<version>
    plural: str
    namespaced: bool


def _resource_types(rest: KubeRest) -> list[ResourceType]:
    bases = ["/api/v1"]
    for group in rest.must("GET", "/apis").get("groups", []):
        bases.append(f"/apis/{group['preferredVersion']['groupVersion']}")
    found: list[ResourceType] = []
    for base in bases:
        answer = rest.request("GET", base)
        if not answer.ok:  # a group that just went away (a CRD deleted by a test)
            continue
        for item in answer.body.get("resources", []):
            verbs = set(item.get("verbs") or [])
            if "/" in item["name"] or not {"list", "delete"} <= verbs or item["name"] in UNTOUCHED:
                continue
            found.append(ResourceType(base=base, plural=item["name"], namespaced=bool(item["namespaced"])))
    return found


def _objects(rest: KubeRest) -> list[tuple[ResourceType, dict[str, Any]]]:
    listed: list[tuple[ResourceType, dict[str, Any]]] = []
    for rtype in _resource_types(rest):
        answer = rest.request("GET", f"{rtype.base}/{rtype.plural}")
        if answer.ok:
            listed.extend((rtype, item) for item in answer.body.get("items", []))
    return listed


def _path(rtype: ResourceType, item: dict[str, Any]) -> str:
    meta = item["metadata"]
    if rtype.namespaced:
        return f"{rtype.base}/namespaces/{meta['namespace']}/{rtype.plural}/{meta['name']}"
    return f"{rtype.base}/{rtype.plural}/{meta['name']}"


@dataclass(frozen=True, slots=True)
class Baseline:
    """The UIDs of every object present when the baseline was taken."""

    uids: frozenset[str]

    @classmethod
    def capture(cls, rest: KubeRest) -> Baseline:
        return cls(frozenset(item["metadata"]["uid"] for _, item in _objects(rest)))

    def extra_objects(self, rest: KubeRest) -> list[tuple[ResourceType, dict[str, Any]]]:
        """Objects created since the baseline was taken."""
        return [(r, i) for r, i in _objects(rest) if i["metadata"]["uid"] not in self.uids]

    def restore(self, rest: KubeRest) -> list[str]:
        """Delete everything created since the baseline; return the paths deleted."""
        extra = self.extra_objects(rest)

        def rank(entry: tuple[ResourceType, dict[str, Any]]) -> int:
            rtype, _ = entry
            if rtype.base == "/api/v1" and rtype.plural == "namespaces":
                return 2
            return 0 if rtype.namespaced else 1

        deleted: list[str] = []
        for rtype, item in sorted(extra, key=rank):
            path = _path(rtype, item)
            if item["metadata"].get("finalizers"):
                rest.request(
                    "PATCH", path, {"metadata": {"finalizers": None}}, content_type="application/merge-patch+json"
                )
            answer = rest.request("DELETE", path)
            if not answer.ok and answer.status != 404:
                raise LabError(f"resetting the cluster: DELETE {path}: HTTP {answer.status}: {answer.message()}")
            if rtype.plural == "namespaces" and rtype.base == "/api/v1":
                self._finalize_namespace(rest, item["metadata"]["name"])
            deleted.append(path)
        return deleted

    @staticmethod
    def _finalize_namespace(rest: KubeRest, name: str) -> None:
        answer = rest.request("GET", f"/api/v1/namespaces/{name}")
        if answer.status == 404:
            return
        body = answer.body
        body.setdefault("spec", {})["finalizers"] = []
        final = rest.request("PUT", f"/api/v1/namespaces/{name}/finalize", body)
        if not final.ok and final.status != 404:
            raise LabError(
                f"resetting the cluster: finalizing namespace {name}: HTTP {final.status}: {final.message()}"
            )
