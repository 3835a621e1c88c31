"""Use cases: plan, apply, rollback and snapshot, over adapters passed in as Protocol-typed values.

* ``planning``: ``plan_cluster`` / ``plan_snapshot`` (a ``Plan`` from the core's ``make_plan``)
  and ``take_snapshot``;
* ``guards``: what is refused before any write (wrong cluster, v1-only API without
  ``--allow-crd-v1``, a stale plan, with what moved);
* ``apply``: ``apply_plan``, stage by stage with resourceVersion preconditions, re-plan on 409,
  backup first, read-back and a verifier hook after each stage, an ``ApplyReport`` at the end;
* ``restore``: ``rollback``, putting a backup back, refusing objects edited since the apply;
* ``external``: ``plan_external``, outside services (Services, EndpointSlices, Endpoints) as a
  ``Plan`` that ``apply_plan`` and ``rollback`` handle like any other;
* ``routes``: the live cluster read of ``routes expected``/``verify`` and the expected routes;
* ``ports``: the Protocols the adapters fill (``ObjectApi``, ``ClusterApi``, ``ServiceReads``,
  ``ClusterReader``, ``BackupWriter``, ``StageVerifier``).

Nothing here imports an adapter: the CLI passes ``bgpflat.adapters.kube.CalicoApi`` and a backup
writer built on ``bgpflat.adapters.files``.
"""

from __future__ import annotations

from bgpflat.core.plan.layover import merge_patch
from bgpflat.core.plan.report import (
    ALREADY,
    APPLIED,
    DRY_RUN,
    FAILED,
    NOT_ATTEMPTED,
    UNKNOWN,
    ApplyReport,
    ChangeResult,
    Outcome,
)
from bgpflat.workflows.apply import apply_plan, backup_objects
from bgpflat.workflows.external import plan_external, wants_legacy_endpoints
from bgpflat.workflows.guards import Moved, check_plan_target, check_writable, ensure_fresh, find_moved
from bgpflat.workflows.planning import (
    SNAPSHOT_FORMAT,
    check_spec_target,
    plan_cluster,
    plan_snapshot,
    snapshot_identity,
    take_snapshot,
)
from bgpflat.workflows.ports import (
    BackupWriter,
    ClusterApi,
    ObjectApi,
    Progress,
    ServiceReads,
    StageVerifier,
    no_verification,
)
from bgpflat.workflows.restore import RollbackAction, rollback

__all__ = [
    "ALREADY",
    "APPLIED",
    "DRY_RUN",
    "FAILED",
    "NOT_ATTEMPTED",
    "SNAPSHOT_FORMAT",
    "UNKNOWN",
    "ApplyReport",
    "BackupWriter",
    "ChangeResult",
    "ClusterApi",
    "Moved",
    "ObjectApi",
    "Outcome",
    "Progress",
    "RollbackAction",
    "ServiceReads",
    "StageVerifier",
    "apply_plan",
    "backup_objects",
    "check_plan_target",
    "check_spec_target",
    "check_writable",
    "ensure_fresh",
    "find_moved",
    "merge_patch",
    "no_verification",
    "plan_cluster",
    "plan_external",
    "plan_snapshot",
    "rollback",
    "snapshot_identity",
    "take_snapshot",
    "wants_legacy_endpoints",
]
