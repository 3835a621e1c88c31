"""Which cluster a plan, a backup or a snapshot belongs to, and the rule that says two are the same.

Plans carry it as ``identity`` (``to_dict``/``from_dict``: the JSON keys ``context``, ``server``,
``clusterID``…); backups and snapshots carry it in their ``bgpflat:`` header (``to_header``/
``from_header``: the kube-system UID is ``clusterUID`` there). Those key spellings live here only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# field -> (plan JSON key, backup/snapshot header key)
_KEYS = {
    "context": ("context", "context"),
    "server": ("server", "server"),
    "cluster_id": ("clusterID", "clusterUID"),
    "calico_version": ("calicoVersion", "calicoVersion"),
    "api_flavour": ("apiFlavour", "apiFlavour"),
    "api_group": ("apiGroup", "apiGroup"),
}
# The order plan files have always written them in.
_PLAN_ORDER = ("context", "server", "cluster_id", "api_group", "api_flavour", "calico_version")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterIdentity:
    """A cluster as bgpflat recognises it; "" for anything unknown."""

    context: str = ""
    server: str = ""
    cluster_id: str = ""  # the kube-system namespace UID: stable for the life of a cluster
    api_group: str = ""  # the Calico API group written through (projectcalico.org/v3, crd...)
    api_flavour: str = ""
    calico_version: str = ""
    snapshot: str = ""  # the snapshot file a plan was made from: such a plan is never applied

    def same_cluster(self, other: ClusterIdentity) -> bool:
        """The kube-system UID decides when both sides know it (a server URL can change, or be
        shared through a tunnel), the server URL otherwise."""
        if self.cluster_id and other.cluster_id:
            return self.cluster_id == other.cluster_id
        return self.server == other.server

    def describe(self) -> str:
        return f"context {self.context or '?'} at {self.server or '?'} (cluster {self.cluster_id or 'unknown UID'})"

    def to_dict(self) -> dict[str, str]:
        """The plan-file form: every key, plus ``snapshot`` for a plan made from one."""
        out = {_KEYS[name][0]: getattr(self, name) for name in _PLAN_ORDER}
        if self.snapshot:
            out["snapshot"] = self.snapshot
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterIdentity:
        values = {name: _text(data.get(keys[0])) for name, keys in _KEYS.items()}
        return cls(**values, snapshot=_text(data.get("snapshot")))

    def to_header(self) -> dict[str, str]:
        """The backup/snapshot header form."""
        return {keys[1]: getattr(self, name) for name, keys in _KEYS.items()}

    @classmethod
    def from_header(cls, header: Mapping[str, Any], *, snapshot: str = "") -> ClusterIdentity:
        return cls(**{name: _text(header.get(keys[1])) for name, keys in _KEYS.items()}, snapshot=snapshot)
