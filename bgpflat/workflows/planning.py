"""Making plans (from a cluster or a snapshot file) and taking snapshots."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bgpflat.core.calico import API_V1
from bgpflat.core.plan.layover import lay_over, route_impact
from bgpflat.core.plan.planner import ClusterIdentity, Plan, make_plan
from bgpflat.core.routes.expected import ModelOptions, OutsidePeer
from bgpflat.core.state.model import DesiredState, ObservedState
from bgpflat.errors import PlanError
from bgpflat.workflows.ports import ClusterApi

SNAPSHOT_FORMAT = 1


def check_spec_target(desired: DesiredState, identity: ClusterIdentity) -> None:
    """Refuse a spec that names another kube context than the one targeted."""
    wanted = desired.cluster.context if desired.cluster is not None else None
    current = identity.context
    if wanted and current and wanted != current and not identity.snapshot:
        raise PlanError(
            f"the spec is for context {wanted!r} but the target is {current!r} ({identity.server}); "
            f"pass --context {wanted} or change cluster.context in the spec"
        )


def with_route_impact(
    plan: Plan,
    objects: Sequence[Mapping[str, Any]],
    *,
    peers: Sequence[OutsidePeer] = (),
    options: ModelOptions | None = None,
) -> Plan:
    """``plan`` with the routes each outside peer learns differently once it is applied."""
    # Two expected-route tables of a big cluster are millions of long-lived tuples and no cycle:
    # the loaded objects are kept out of the collector's walks (as ``routes expected`` does) and
    # the collector waits until the comparison is done, instead of rescanning them as they grow.
    gc.freeze()
    enabled = gc.isenabled()
    gc.disable()
    try:
        impact = route_impact(objects, plan.changes, peers=peers, options=options)
    finally:
        if enabled:
            gc.enable()
    return dataclasses.replace(plan, route_impact=impact)


def lay_desired_over(objects: Sequence[Mapping[str, Any]], desired: DesiredState) -> list[Mapping[str, Any]]:
    """The cluster's objects as they will be once ``desired`` is applied: the plan apply would make,
    laid over them (``routes expected -f`` and ``verify -f`` predict the routes of that state)."""
    observed = ObservedState.from_objects(list(objects))
    return lay_over(objects, make_plan(desired=desired, observed=observed).changes)


def plan_cluster(
    api: ClusterApi,
    desired: DesiredState,
    *,
    prune: bool = False,
    routes: bool = True,
    peers: Sequence[OutsidePeer] = (),
) -> Plan:
    """Read the cluster and compare it with ``desired``; with ``routes``, the whole state the route
    model needs is read (IPAM blocks, Services…) and the plan carries its route impact."""
    identity = api.identity()
    check_spec_target(desired, identity)
    objects: list[Mapping[str, Any]] = list(api.read_everything() if routes else api.read_state())
    observed = ObservedState.from_objects(objects, identity=identity.to_dict())
    plan = make_plan(desired=desired, observed=observed, prune=prune)
    return with_route_impact(plan, objects, peers=peers) if routes else plan


def snapshot_identity(header: Mapping[str, Any], *, file: str) -> ClusterIdentity:
    """The identity a plan made from a snapshot carries: marked so that it can never be applied."""
    return ClusterIdentity.from_header(header, snapshot=file)


def plan_snapshot(
    objects: Sequence[Mapping[str, Any]],
    desired: DesiredState,
    *,
    header: Mapping[str, Any],
    file: str,
    prune: bool = False,
    routes: bool = True,
    peers: Sequence[OutsidePeer] = (),
) -> Plan:
    """Compare ``desired`` with a snapshot file instead of a live cluster (and, with ``routes``,
    lay it over the snapshot for the route impact)."""
    identity = snapshot_identity(header, file=file)
    if not identity.calico_version:
        for obj in objects:
            if obj.get("kind") == "ClusterInformation":
                version = str((obj.get("spec") or {}).get("calicoVersion") or "")
                identity = dataclasses.replace(identity, calico_version=version)
    if not identity.api_group:
        groups = {str(o.get("apiVersion")) for o in objects if o.get("kind") in ("IPPool", "BGPPeer")}
        group = "projectcalico.org/v3" if "projectcalico.org/v3" in groups else API_V1
        identity = dataclasses.replace(identity, api_group=group)
    observed = ObservedState.from_objects(list(objects), identity=identity.to_dict())
    plan = make_plan(desired=desired, observed=observed, prune=prune)
    return with_route_impact(plan, objects, peers=peers) if routes else plan


# --- snapshot -------------------------------------------------------------------------------------


def take_snapshot(api: ClusterApi, *, taken_at: dt.datetime) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """Everything plan and expected routes need, as ``(header, objects)``.

    ``objects`` is a generator that reads the cluster as it is consumed, so a snapshot of a big
    cluster streams to its file page by page. Its order is deterministic without sorting: kinds in
    a fixed order, and within a kind the API server's own order (by namespace and name).
    """
    identity = api.identity()
    header = {
        "snapshotFormat": SNAPSHOT_FORMAT,
        **identity.to_header(),
        "takenAt": taken_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return header, iter(api.stream_everything())
