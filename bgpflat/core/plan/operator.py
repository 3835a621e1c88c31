"""Operator-managed pools: change ``Installation.spec.calicoNetwork.ipPools[]``, not the IPPool.

The tigera-operator reconciles the pools it manages back to its ``Installation`` (calico-facts §2.5),
so an IPPool edit would be reverted. bgpflat maps the pool fields the Installation can carry
(encapsulation, natOutgoing, nodeSelector, disableBGPExport) and refuses, with an ``error`` finding,
what it cannot map. Internal to ``bgpflat.core.plan.planner``.
"""

from __future__ import annotations

import copy
from typing import Any

from bgpflat.core.calico import ENCAPSULATIONS, IPPool, normalize_spec_value
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.plan.builder import PlanBuilder, encapsulation_notes, noop, owned_spec
from bgpflat.core.plan.model import OPERATOR_API, Action, FieldChange, ResourceChange
from bgpflat.core.state.checks import OPERATOR_MANAGED_POOL, OPERATOR_UNMAPPABLE, Finding
from bgpflat.core.state.model import ObservedInstallation, ObservedResource
from bgpflat.errors import SpecError

# IPPool fields the operator's Installation can carry (calico-facts §2.5, §5.1).
OPERATOR_FIELDS = ("ipipMode", "vxlanMode", "natOutgoing", "nodeSelector", "disableBGPExport")


def installation_entry(installation: ObservedInstallation, pool: IPPool) -> int | None:
    for index, entry in enumerate(installation.ip_pools):
        cidr = entry.get("cidr")
        try:
            same_cidr = isinstance(cidr, str) and Prefix.parse(cidr, strict=False) == pool.cidr
        except SpecError:
            same_cidr = False
        if same_cidr or entry.get("name") == pool.name:
            return index
    return None


def plan_operator_pool(builder: PlanBuilder, resource: IPPool, observed: ObservedResource) -> None:
    desired_spec = owned_spec(resource)
    observed_spec = observed.spec
    changed = [
        key
        for key in desired_spec
        if normalize_spec_value("IPPool", key, observed_spec.get(key), spec=observed_spec)
        != normalize_spec_value("IPPool", key, desired_spec[key], spec=desired_spec)
    ]
    if not changed:
        builder.unchanged.append(noop(observed))
        return
    subject = observed.key
    unmappable = [k for k in changed if k not in OPERATOR_FIELDS]
    installation = builder.observed.installation
    entry_index = None if installation is None else installation_entry(installation, resource)
    ipip = normalize_spec_value("IPPool", "ipipMode", desired_spec.get("ipipMode", observed_spec.get("ipipMode")))
    vxlan = normalize_spec_value("IPPool", "vxlanMode", desired_spec.get("vxlanMode", observed_spec.get("vxlanMode")))
    encapsulation = ENCAPSULATIONS.get((ipip, vxlan))
    reason = None
    if unmappable:
        reason = f"the Installation has no field for {', '.join('spec.' + k for k in sorted(unmappable))}"
    elif installation is None:
        reason = "no operator.tigera.io/v1 Installation was found"
    elif entry_index is None:
        reason = f"the Installation lists no ipPools entry with cidr {resource.cidr}"
    elif encapsulation is None:
        reason = f"ipipMode {ipip} with vxlanMode {vxlan} has no Installation encapsulation"
    if reason is not None or installation is None or entry_index is None or encapsulation is None:
        builder.findings.append(
            Finding(
                code=OPERATOR_UNMAPPABLE,
                severity="error",
                message=f"{subject} is managed by the tigera-operator and {reason}; bgpflat will not edit it "
                "directly because the operator reverts such edits",
                fix="change Installation.spec.calicoNetwork.ipPools yourself (kubectl edit installation default), "
                "or remove these fields from the spec",
                subjects=(subject,),
            )
        )
        builder.unchanged.append(noop(observed))
        return
    pools = builder.installation_pools.setdefault(
        installation.name, [copy.deepcopy(dict(p)) for p in installation.ip_pools]
    )
    entry = pools[entry_index]
    base = f"spec.calicoNetwork.ipPools[{entry_index}]"
    updates: dict[str, Any] = {}
    if "natOutgoing" in changed:
        updates["natOutgoing"] = "Enabled" if desired_spec.get("natOutgoing") else "Disabled"
    if "nodeSelector" in changed:
        updates["nodeSelector"] = desired_spec.get("nodeSelector") or "all()"
    if "disableBGPExport" in changed:
        updates["disableBGPExport"] = bool(desired_spec.get("disableBGPExport"))
    before_encapsulation = str(entry.get("encapsulation") or "IPIP")
    steps: list[tuple[str, dict[str, Any]]] = []
    if encapsulation != before_encapsulation:
        if builder.multi_subnet and before_encapsulation in ("IPIP", "VXLAN") and encapsulation == "None":
            steps.append(("pools", {**updates, "encapsulation": before_encapsulation + "CrossSubnet"}))
            steps.append(("pools-final", {"encapsulation": "None"}))
        else:
            steps.append(("pools", {**updates, "encapsulation": encapsulation}))
    elif updates:
        steps.append(("pools", updates))
    for stage, values in steps:
        fields = tuple(
            FieldChange(path=f"{base}.{k}", before=copy.deepcopy(entry.get(k)), after=v)
            for k, v in sorted(values.items())
        )
        entry.update(values)
        builder.add(
            ResourceChange(
                action=Action.UPDATE,
                api_version=OPERATOR_API,
                kind="Installation",
                name=installation.name,
                stage=stage,
                fields=fields,
                patch={"spec": {"calicoNetwork": {"ipPools": copy.deepcopy(pools)}}},
                resource_version=installation.resource_version,
                note=f"for operator-managed {subject}",
            )
        )
    merged = IPPool(
        name=resource.name,
        cidr=resource.cidr,
        block_size=resource.block_size,
        ipip_mode=str(ipip),
        vxlan_mode=str(vxlan),
        nat_outgoing=resource.nat_outgoing,
        disabled=resource.disabled,
        disable_bgp_export=resource.disable_bgp_export,
        node_selector=resource.node_selector,
        allowed_uses=resource.allowed_uses,
        labels=resource.labels,
    )
    builder.final[subject] = merged
    builder.findings.append(
        Finding(
            code=OPERATOR_MANAGED_POOL,
            severity="info",
            message=f"{subject} is managed by the tigera-operator: the change goes to "
            f"Installation/{installation.name} spec.calicoNetwork.ipPools[{entry_index}]",
            subjects=(subject, f"Installation/{installation.name}"),
        )
    )
    encapsulation_notes(
        builder, subject, turned_off=before_encapsulation != "None" and encapsulation == "None", staged=len(steps) > 1
    )
