"""Plans: what ``apply`` will change, in which order, and what could go wrong.

``make_plan(*, desired, observed, prune=False)`` compares the desired Calico objects with the
observed ones **over the fields bgpflat owns** and returns a ``Plan``:

* Ownership. For an object bgpflat writes, it owns the spec fields the desired manifest sets
  (an explicit ``null`` included: it removes the field), plus their mutually exclusive partners
  (``node``/``nodeSelector``, ``peerIP``/``peerSelector``…), which it clears. Every other field,
  unknown fields of newer Calico releases, labels, annotations and status are left as observed:
  updates are JSON merge patches (RFC 7386) that name only owned fields.
* Values compare as Calico acts on them (``normalize_spec_value``): a missing ``ipipMode`` equals
  ``Never``, ``"1.10"`` equals ``65546``, so a second plan right after ``apply`` is empty.
* Creates carry the full ``projectcalico.org/v3`` manifest, labelled
  ``app.kubernetes.io/managed-by: bgpflat``. Deletes happen only with ``prune=True`` and only for
  objects carrying that label (never ``BGPConfiguration/default``).
* Stages, in order (calico-facts §5.4): ``bgp-configuration`` (only when the spec sets something
  there: confd falls back to AS 64512 and the mesh without one, so an empty ``default`` would be a
  change nobody asked for, and ``--detailed-exitcode`` could never say "no changes") → ``peers``
  → ``service-advertisement`` → ``pools`` (encapsulation last) →
  ``pools-final`` (second step of an Always → Never change staged through CrossSubnet when the
  nodes span several subnets) → ``mesh`` (turning the mesh off) → ``prune``. An object written in
  more than one stage has ``chained=True`` on its later changes: send them with the
  resourceVersion the previous write returned, not the observed one.
* Operator-managed pools (label ``app.kubernetes.io/managed-by=tigera-operator``) are changed
  through ``Installation.spec.calicoNetwork.ipPools[]`` (the operator reverts direct edits); a change
  that cannot be expressed there becomes an ``error`` finding.
* Findings: the address-plan checks and risk findings of ``checks``; ``error`` findings block
  ``apply`` (``Plan.ensure_applicable``).

The plan serialises to JSON (``format_version``) deterministically and renders as terraform-like
text with ``render_plan_text`` (no colour; ``bgpflat.render`` adds it).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from bgpflat.core.calico import (
    API_V3,
    MANAGED_BY_BGPFLAT,
    MANAGED_BY_LABEL,
    MANAGED_BY_OPERATOR,
    BGPConfiguration,
    BGPPeer,
    IPPool,
    Manifest,
    WritableResource,
    has_unreadable_v1_metadata,
    normalize_spec_value,
    parse_resource,
    release_for,
    to_manifest,
    validate,
)
from bgpflat.core.plan.builder import (
    KIND_ORDER,
    SERVICE_FIELDS,
    PlanBuilder,
    encapsulation_notes,
    field_order,
    noop,
    owned_spec,
    update_change,
)
from bgpflat.core.plan.identity import ClusterIdentity
from bgpflat.core.plan.model import (
    ACTIONS,
    EXTERNAL_STAGES,
    FORMAT_VERSION,
    OPERATOR_API,
    STAGES,
    Action,
    FieldChange,
    Plan,
    ResourceChange,
    Stage,
    Summary,
    object_key,
    split_key,
)
from bgpflat.core.plan.operator import plan_operator_pool
from bgpflat.core.plan.text import changes_for, render_plan_text
from bgpflat.core.state.checks import (
    AS_NUMBER_CHANGE,
    NOT_IN_SPEC,
    POOL_DELETION,
    PRODUCTION_CLUSTER,
    UNREADABLE_CALICO_METADATA,
    Finding,
    address_ranges,
    check_address_plan,
    node_subnets,
    risk_findings,
    sort_findings,
)
from bgpflat.core.state.model import DesiredState, ObservedResource, ObservedState, resource_key
from bgpflat.errors import SpecError

VALIDATION_RULES = "validation-rules"
CALICO_ACCEPTS = "calico-accepts"

__all__ = [
    "ACTIONS",
    "EXTERNAL_STAGES",
    "FORMAT_VERSION",
    "OPERATOR_API",
    "STAGES",
    "Action",
    "ClusterIdentity",
    "FieldChange",
    "Plan",
    "ResourceChange",
    "Stage",
    "Summary",
    "changes_for",
    "make_plan",
    "object_key",
    "render_plan_text",
    "split_key",
]


def make_plan(*, desired: DesiredState, observed: ObservedState, prune: bool = False) -> Plan:
    """Compare ``desired`` with ``observed`` over the fields bgpflat owns; see the module docstring."""
    subnets = node_subnets(observed.nodes)
    multi_subnet = len(subnets) > 1 or (not subnets and len(desired.networks.nodes) > 1)
    builder = PlanBuilder(observed=observed, multi_subnet=multi_subnet)
    for item in observed.resources:
        if item.kind in KIND_ORDER:
            try:
                model = item.model()
            except SpecError:
                continue
            if isinstance(model, IPPool | BGPPeer | BGPConfiguration):
                builder.final[item.key] = model
                builder.final_before[item.key] = model

    desired_keys = {resource_key(r.kind, r.name) for r in desired.resources}
    ordered = sorted(desired.resources, key=lambda r: (KIND_ORDER[r.kind], r.name))
    new_peers: list[str] = []
    for resource in ordered:
        before = len(builder.changes)
        _plan_resource(builder, resource)
        if isinstance(resource, BGPPeer) and len(builder.changes) > before:
            new_peers.append(resource.name)

    _plan_deletions(builder, desired_keys=desired_keys, prune=prune)
    for observed_resource in observed.resources:
        if has_unreadable_v1_metadata(observed_resource.manifest):
            builder.findings.append(
                Finding(
                    code=UNREADABLE_CALICO_METADATA,
                    severity="warning",
                    message=f"{observed_resource.key}: its projectcalico.org/metadata annotation is not the JSON "
                    "Calico writes there (labels and annotations mapping strings to strings), so its labels and "
                    "annotations were read without it",
                    fix="fix or remove the annotation (kubectl annotate ... projectcalico.org/metadata-)",
                    subjects=(observed_resource.key,),
                )
            )

    config = builder.final.get(resource_key("BGPConfiguration", "default"))
    config_model = config if isinstance(config, BGPConfiguration) else None
    observed_config = observed.get("BGPConfiguration", "default")
    mesh_before = True
    if observed_config is not None:
        mesh_before = (
            normalize_spec_value(
                "BGPConfiguration", "nodeToNodeMeshEnabled", observed_config.spec.get("nodeToNodeMeshEnabled")
            )
            is not False
        )
    as_before = normalize_spec_value(
        "BGPConfiguration", "asNumber", None if observed_config is None else observed_config.spec.get("asNumber")
    )
    as_after = 64512 if config_model is None else config_model.effective_as_number
    if as_before != as_after and observed.nodes:
        builder.findings.append(
            Finding(
                code=AS_NUMBER_CHANGE,
                severity="warning",
                message=f"the cluster AS changes from {as_before} to {as_after}: every node restarts its BGP "
                "sessions (mesh included), so routes flap while they re-establish",
                fix="apply in a maintenance window, or keep the AS the cluster already uses",
                subjects=("BGPConfiguration/default",),
            )
        )
    pools = [m for m in builder.final.values() if isinstance(m, IPPool)]
    peers = [m for m in builder.final.values() if isinstance(m, BGPPeer)]
    findings = list(builder.findings)
    findings += risk_findings(
        pools=sorted(pools, key=lambda p: p.name),
        peers=sorted(peers, key=lambda p: p.name),
        config=config_model,
        nodes=observed.nodes,
        filters=observed.filters(),
        mesh_before=mesh_before,
        new_peers=tuple(new_peers),
    )
    findings += check_address_plan(_address_plan(desired, observed, pools, config_model))
    findings += _release_findings(desired, observed)
    if desired.cluster is not None and (desired.cluster.environment or "").lower() in ("prod", "production"):
        findings.append(
            Finding(
                code=PRODUCTION_CLUSTER,
                severity="warning",
                message=f"the spec marks cluster {desired.cluster.name or ''} as production".replace("  ", " "),
                fix="flatten only development and test clusters; separate environments by namespace",
            )
        )

    stages = _stages(builder.changes)
    # BGPFilters too: the findings read them, so one changed or added since makes a saved plan stale.
    observed_versions = {
        r.key: r.resource_version for r in observed.resources if r.kind in KIND_ORDER or r.kind == "BGPFilter"
    }
    if observed.installation is not None:
        observed_versions[resource_key("Installation", observed.installation.name)] = (
            observed.installation.resource_version
        )
    cluster: dict[str, str | None] = {}
    if desired.cluster is not None:
        cluster = {
            "name": desired.cluster.name,
            "context": desired.cluster.context,
            "environment": desired.cluster.environment,
        }
    return Plan(
        stages=stages,
        unchanged=tuple(sorted(builder.unchanged, key=lambda c: (KIND_ORDER.get(c.kind, 9), c.name))),
        findings=sort_findings(findings),
        observed_versions=observed_versions,
        observed_nodes={node.name: node.as_checked for node in observed.nodes},
        identity=ClusterIdentity.from_dict(observed.identity),
        cluster=cluster,
        prune=prune,
    )


def _stages(changes: Sequence[ResourceChange]) -> tuple[Stage, ...]:
    by_stage: dict[str, list[ResourceChange]] = {}
    for change in changes:
        by_stage.setdefault(change.stage, []).append(change)
    out = []
    for name, title in STAGES:
        items = by_stage.get(name)
        if not items:
            continue
        # Stable within a stage: creates of `default` first, then by kind and name.
        items.sort(key=lambda c: (KIND_ORDER.get(c.kind, 9), c.name != "default", c.name))
        out.append(Stage(name=name, title=title, changes=tuple(items)))
    return tuple(out)


def _plan_resource(builder: PlanBuilder, resource: WritableResource) -> None:
    observed = builder.observed.get(resource.kind, resource.name)
    if observed is None:
        _plan_create(builder, resource)
        return
    if isinstance(resource, IPPool) and observed.managed_by == MANAGED_BY_OPERATOR:
        plan_operator_pool(builder, resource, observed)
        return
    desired_spec = owned_spec(resource)
    observed_spec = observed.spec
    fields: list[FieldChange] = []
    for key in sorted(desired_spec, key=field_order(resource.kind)):
        before = observed_spec.get(key)
        after = desired_spec[key]
        if normalize_spec_value(resource.kind, key, before, spec=observed_spec) == normalize_spec_value(
            resource.kind, key, after, spec=desired_spec
        ):
            continue
        fields.append(FieldChange(path=f"spec.{key}", before=copy.deepcopy(before), after=copy.deepcopy(after)))
    if not fields:
        builder.unchanged.append(noop(observed))
        return
    merged = _merged_model(resource, observed, fields)
    builder.final[observed.key] = merged
    old = builder.final_before.get(observed.key)
    turned_off = isinstance(old, IPPool) and isinstance(merged, IPPool) and old.encapsulated and not merged.encapsulated
    _split_update(builder, resource, observed, fields, turned_off=turned_off)


def _release_findings(desired: DesiredState, observed: ObservedState) -> list[Finding]:
    """The desired objects against the rules of the Calico release the cluster runs, and which rules.

    Loading checked them against the newest release bgpflat knows; the cluster's own release may
    lack a field (refused here) or accept what bgpflat finds odd (a warning finding).
    """
    version = observed.identity.get("calicoVersion") or None
    try:
        release = release_for(version, source="ClusterInformation calicoVersion")
    except SpecError:
        release = release_for(None)
    findings = [Finding(code=VALIDATION_RULES, severity="info", message=f"objects checked with {release.describe()}")]
    for resource in desired.resources:
        key = resource_key(resource.kind, resource.name)
        try:
            notes = validate(resource, release=release)
        except SpecError as exc:
            raise type(exc)(f"{key}: {exc.message}", path=exc.path, fix=exc.fix, file=exc.file) from None
        findings += [
            Finding(
                code=CALICO_ACCEPTS,
                severity="warning",
                message=f"{note.path}: {note.message}",
                fix=note.fix,
                subjects=(key,),
            )
            for note in notes
        ]
    return findings


def _merged_model(
    resource: WritableResource, observed: ObservedResource, fields: Sequence[FieldChange]
) -> WritableResource:
    """The object as it will be after the update, checked against every Calico rule."""
    manifest = copy.deepcopy(dict(observed.manifest))
    manifest["apiVersion"] = API_V3
    spec = dict(manifest.get("spec") or {})
    for change in fields:
        key = change.path.removeprefix("spec.")
        if change.after is None:
            spec.pop(key, None)
        else:
            spec[key] = change.after
    manifest["spec"] = spec
    key = resource_key(resource.kind, resource.name)
    try:
        old = observed.model()
        merged = parse_resource(manifest, path=None)
        validate(merged, old=old)
    except SpecError as exc:
        raise type(exc)(f"{key} after this change: {exc.message}", path=exc.path, fix=exc.fix, file=exc.file) from None
    assert isinstance(merged, IPPool | BGPPeer | BGPConfiguration)
    return merged


def _create_manifest(resource: WritableResource, spec: Mapping[str, Any]) -> Manifest:
    manifest = to_manifest(resource)
    labels = dict(manifest["metadata"].get("labels") or {})
    labels[MANAGED_BY_LABEL] = MANAGED_BY_BGPFLAT
    manifest["metadata"]["labels"] = dict(sorted(labels.items()))
    manifest["spec"] = {k: v for k, v in spec.items() if v is not None}
    return manifest


def _plan_create(builder: PlanBuilder, resource: WritableResource) -> None:
    spec = {k: v for k, v in to_manifest(resource)["spec"].items() if v is not None}
    key = resource_key(resource.kind, resource.name)
    builder.final[key] = resource
    if isinstance(resource, BGPConfiguration):
        # Created in the first stage without service advertisement or a mesh switch-off: those
        # follow in their own stages, after the peers.
        first = {
            k: v
            for k, v in spec.items()
            if k not in SERVICE_FIELDS and not (k == "nodeToNodeMeshEnabled" and v is False)
        }
        if "nodeToNodeMeshEnabled" in spec and spec["nodeToNodeMeshEnabled"] is False and resource.name == "default":
            first["nodeToNodeMeshEnabled"] = True
        builder.add(_create_change(resource, first, stage="bgp-configuration"))
        later = {k: v for k, v in spec.items() if k in SERVICE_FIELDS}
        if later:
            builder.add(update_change(resource, {}, later, stage="service-advertisement", rv=None))
        if spec.get("nodeToNodeMeshEnabled") is False and resource.name == "default":
            builder.add(
                update_change(
                    resource, {"nodeToNodeMeshEnabled": True}, {"nodeToNodeMeshEnabled": False}, stage="mesh", rv=None
                )
            )
        return
    stage = "peers" if isinstance(resource, BGPPeer) else "pools"
    builder.add(_create_change(resource, spec, stage=stage))


def _create_change(resource: WritableResource, spec: Mapping[str, Any], *, stage: str) -> ResourceChange:
    manifest = _create_manifest(resource, spec)
    fields = tuple(
        FieldChange(path=f"spec.{k}", before=None, after=copy.deepcopy(v))
        for k, v in sorted(manifest["spec"].items(), key=lambda kv: field_order(resource.kind)(kv[0]))
    )
    return ResourceChange(
        action=Action.CREATE,
        api_version=API_V3,
        kind=resource.kind,
        name=resource.name,
        stage=stage,
        fields=fields,
        manifest=manifest,
    )


def _stage_of(kind: str, key: str, after: Any) -> str:
    if kind == "BGPConfiguration":
        if key in SERVICE_FIELDS:
            return "service-advertisement"
        if key == "nodeToNodeMeshEnabled" and after is False:
            return "mesh"
        return "bgp-configuration"
    if kind == "BGPPeer":
        return "peers"
    return "pools"


def _split_update(
    builder: PlanBuilder,
    resource: WritableResource,
    observed: ObservedResource,
    fields: Sequence[FieldChange],
    *,
    turned_off: bool,
) -> None:
    by_stage: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    final_step: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    for change in fields:
        key = change.path.removeprefix("spec.")
        stage = _stage_of(resource.kind, key, change.after)
        before, after = by_stage.setdefault(stage, ({}, {}))
        staged = _cross_subnet_step(builder, resource.kind, key, change, observed.spec)
        if staged is not None:
            before[key], after[key] = change.before, staged
            final_step[0][key], final_step[1][key] = staged, change.after
        else:
            before[key], after[key] = change.before, change.after
    for stage, _ in STAGES:
        if stage in by_stage:
            before, after = by_stage[stage]
            builder.add(update_change(observed, before, after, stage=stage, rv=observed.resource_version))
    if final_step[1]:
        builder.add(
            update_change(observed, final_step[0], final_step[1], stage="pools-final", rv=observed.resource_version)
        )
    encapsulation_notes(builder, observed.key, turned_off=turned_off, staged=bool(final_step[1]))


def _cross_subnet_step(
    builder: PlanBuilder, kind: str, key: str, change: FieldChange, observed_spec: Mapping[str, Any]
) -> str | None:
    """``CrossSubnet`` if an Always -> Never change must pause there (nodes on several subnets, §5.4)."""
    if kind != "IPPool" or key not in ("ipipMode", "vxlanMode") or not builder.multi_subnet:
        return None
    before = normalize_spec_value(kind, key, change.before, spec=observed_spec)
    after = normalize_spec_value(kind, key, change.after)
    return "CrossSubnet" if before == "Always" and after == "Never" else None


# --- deletions -------------------------------------------------------------------------------------


def _plan_deletions(builder: PlanBuilder, *, desired_keys: set[str], prune: bool) -> None:
    for observed in sorted(builder.observed.resources, key=lambda r: (KIND_ORDER.get(r.kind, 9), r.name)):
        if observed.kind not in ("IPPool", "BGPPeer", "BGPConfiguration") or observed.key in desired_keys:
            continue
        if observed.managed_by != MANAGED_BY_BGPFLAT:
            continue
        if observed.key == "BGPConfiguration/default":
            if prune:
                builder.findings.append(
                    Finding(
                        code=NOT_IN_SPEC,
                        severity="info",
                        message="BGPConfiguration/default is not in the spec but is never deleted "
                        "(calico-node would fall back to AS 64512)",
                        subjects=(observed.key,),
                    )
                )
            continue
        if not prune:
            builder.findings.append(
                Finding(
                    code=NOT_IN_SPEC,
                    severity="info",
                    message=f"{observed.key} is managed by bgpflat but no longer in the spec",
                    fix="plan with --prune to delete it",
                    subjects=(observed.key,),
                )
            )
            continue
        builder.final.pop(observed.key, None)
        fields = tuple(
            FieldChange(path=f"spec.{k}", before=copy.deepcopy(v), after=None)
            for k, v in sorted(observed.spec.items(), key=lambda kv: field_order(observed.kind)(kv[0]))
        )
        builder.add(
            ResourceChange(
                action=Action.DELETE,
                api_version=API_V3,
                kind=observed.kind,
                name=observed.name,
                stage="prune",
                fields=fields,
                manifest=copy.deepcopy(dict(observed.manifest)),
                resource_version=observed.resource_version,
            )
        )
        if observed.kind == "IPPool":
            builder.findings.append(
                Finding(
                    code=POOL_DELETION,
                    severity="warning",
                    message=f"deleting {observed.key}: pods keep addresses from it until they are recreated, "
                    "and a raw CRD delete skips Calico's release of the pool's blocks",
                    fix="disable the pool first (disabled: true), recreate its pods, then prune it",
                    subjects=(observed.key,),
                )
            )


# --- address plan ----------------------------------------------------------------------------------


def _address_plan(
    desired: DesiredState, observed: ObservedState, pools: Sequence[IPPool], config: BGPConfiguration | None
) -> list[Any]:
    networks = desired.networks
    node_networks = [(p, f"networks.nodes[{i}]") for i, p in enumerate(networks.nodes)]
    for subnet, names in node_subnets(observed.nodes).items():
        node_networks.append((subnet, f"Node/{names[0]}" + (f" (+{len(names) - 1})" if len(names) > 1 else "")))
    return address_ranges(
        pools=pools,
        config=config,
        node_networks=node_networks,
        office=[(p, f"networks.office[{i}]") for i, p in enumerate(networks.office)],
        vpn=[(p, f"networks.vpn[{i}]") for i, p in enumerate(networks.vpn)],
        service_ranges=[(p, f"services.clusterIPRange[{i}]") for i, p in enumerate(networks.service_cluster_ip_range)],
    )
