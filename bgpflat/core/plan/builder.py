"""The working state of ``make_plan`` and the helpers shared by its parts (objects, operator pools).

Internal to ``bgpflat.core.plan.planner``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bgpflat.core.calico import (
    API_V3,
    SPEC_FIELDS,
    WritableResource,
    to_manifest,
)
from bgpflat.core.plan.model import Action, FieldChange, ResourceChange
from bgpflat.core.state.checks import ENCAP_MTU, ENCAP_STAGED_CROSS_SUBNET, Finding
from bgpflat.core.state.model import ObservedResource, ObservedState

KIND_ORDER = {"BGPConfiguration": 0, "BGPPeer": 1, "IPPool": 2, "Installation": 3}
SERVICE_FIELDS = ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs", "serviceLoadBalancerAggregation")
# Fields that cannot be set together: owning one means clearing the other.
PARTNERS: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("BGPPeer", "node"): ("nodeSelector",),
    ("BGPPeer", "nodeSelector"): ("node",),
    ("BGPPeer", "peerIP"): ("peerSelector",),
    ("BGPPeer", "peerSelector"): ("peerIP", "asNumber"),
    ("BGPPeer", "nextHopMode"): ("keepOriginalNextHop",),
    ("IPPool", "ipipMode"): ("ipip",),
    ("IPPool", "natOutgoing"): ("nat-outgoing",),
}


@dataclass(slots=True)
class PlanBuilder:
    observed: ObservedState
    multi_subnet: bool
    changes: list[ResourceChange] = field(default_factory=list)
    unchanged: list[ResourceChange] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    final: dict[str, WritableResource] = field(default_factory=dict)
    final_before: dict[str, WritableResource] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)
    # Installation ipPools as this plan leaves them after each stage (the list is patched whole).
    installation_pools: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, change: ResourceChange) -> None:
        chained = change.key in self.written and change.action is not Action.CREATE
        self.written.add(change.key)
        self.changes.append(
            ResourceChange(
                action=change.action,
                api_version=change.api_version,
                kind=change.kind,
                name=change.name,
                stage=change.stage,
                fields=change.fields,
                patch=change.patch,
                manifest=change.manifest,
                resource_version=change.resource_version,
                chained=chained or change.chained,
                note=change.note,
            )
        )


def owned_spec(resource: WritableResource) -> dict[str, Any]:
    """Owned spec fields with their desired JSON (None = remove the field)."""
    spec = dict(to_manifest(resource)["spec"])
    for key in resource.explicit:
        spec.setdefault(key, None)
    for key in list(spec):
        for partner in PARTNERS.get((resource.kind, key), ()):
            if partner not in resource.explicit and spec.get(key) is not None:
                spec.setdefault(partner, None)
    return spec


def noop(observed: ObservedResource) -> ResourceChange:
    return ResourceChange(
        action=Action.NO_OP,
        api_version=str(observed.manifest.get("apiVersion") or API_V3),
        kind=observed.kind,
        name=observed.name,
        resource_version=observed.resource_version,
    )


def field_order(kind: str) -> Any:

    order = {key: index for index, key in enumerate(SPEC_FIELDS[kind])}
    return lambda key: (order.get(key, len(order)), key)


def update_change(
    resource: WritableResource | ObservedResource,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    *,
    stage: str,
    rv: str | None,
    note: str | None = None,
) -> ResourceChange:
    kind = resource.kind
    fields = tuple(
        FieldChange(path=f"spec.{k}", before=copy.deepcopy(before.get(k)), after=copy.deepcopy(after[k]))
        for k in sorted(after, key=field_order(kind))
    )
    return ResourceChange(
        action=Action.UPDATE,
        api_version=API_V3,
        kind=kind,
        name=resource.name,
        stage=stage,
        fields=fields,
        patch={"spec": copy.deepcopy(dict(after))},
        resource_version=rv,
        note=note,
    )


def encapsulation_notes(builder: PlanBuilder, subject: str, *, turned_off: bool, staged: bool) -> None:
    if staged:
        builder.findings.append(
            Finding(
                code=ENCAP_STAGED_CROSS_SUBNET,
                severity="warning",
                message=(
                    f"{subject}: the nodes span several subnets, so encapsulation goes Always -> CrossSubnet "
                    "(stage pools) and only then -> Never (stage pools-final); after Never, traffic between "
                    "subnets relies on the routers having the pod routes"
                ),
                fix="verify the peers' routes and cross-subnet pod traffic after the pools stage before the final step",
                subjects=(subject,),
            )
        )
    if turned_off:
        builder.findings.append(
            Finding(
                code=ENCAP_MTU,
                severity="info",
                message=(
                    f"{subject}: existing pods keep the smaller tunnel MTU until they are recreated, and Felix "
                    "restarts once no encapsulated pool is left"
                ),
                fix="roll the workloads after the change to get the full MTU",
                subjects=(subject,),
            )
        )
