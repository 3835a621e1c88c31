"""What a snapshot file may hold, checked object by object as it is read (pure).

A snapshot is often written or edited by hand (a CI fixture, a cluster described before it
exists), so it gets the checks of ``-f``: a Calico BGP object is validated as a manifest is (enum
values, unknown fields, types), a kind bgpflat does not read is named rather than skipped, and an
object given twice is refused rather than one of them silently winning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bgpflat.core.calico import CalicoRelease, check_manifest
from bgpflat.errors import SpecError

# What `bgpflat snapshot` writes (adapters.kube ``read_everything``) and nothing else: every kind
# the route model and the planner read.
SNAPSHOT_KINDS = frozenset(
    {
        "Installation",
        "ClusterInformation",
        "BGPConfiguration",
        "IPPool",
        "BGPPeer",
        "BGPFilter",
        "Node",
        "IPAMBlock",
        "BlockAffinity",
        "IPAMConfig",
        "IPAMConfiguration",
        "Service",
        "EndpointSlice",
        "Endpoints",
    }
)
_VALIDATED_KINDS = frozenset({"BGPConfiguration", "IPPool", "BGPPeer", "BGPFilter"})
# The v3 API (what the snapshot command writes); crd.projectcalico.org/v1 objects are stored data,
# read leniently as the live cluster serves them.
_V3_GROUP = "projectcalico.org/"

ObjectKey = tuple[str, str, str, str]


def object_key(obj: Mapping[str, Any]) -> ObjectKey:
    """(apiVersion, kind, namespace, name): a v1 Node and its projectcalico.org/v3 copy differ."""
    metadata = obj.get("metadata")
    meta = metadata if isinstance(metadata, Mapping) else {}
    return (str(obj.get("apiVersion")), str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


def check_snapshot_object(obj: Mapping[str, Any], *, release: CalicoRelease | None = None) -> None:
    """Raise ``SpecError`` (with the field's path) if ``obj`` is nothing a snapshot holds or a
    Calico BGP object that ``-f`` would refuse."""
    kind = obj.get("kind")
    if kind not in SNAPSHOT_KINDS:
        raise SpecError(
            f"a {kind} is nothing bgpflat reads from a snapshot",
            path="kind",
            fix=f"a snapshot holds {', '.join(sorted(SNAPSHOT_KINDS))}; make one with `bgpflat snapshot -o FILE`",
        )
    if kind in _VALIDATED_KINDS and str(obj.get("apiVersion") or "").startswith(_V3_GROUP):
        check_manifest(obj, release=release)
