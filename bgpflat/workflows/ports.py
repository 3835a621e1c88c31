"""The ports the workflows take: the cluster, the backup store, the verifier, progress output."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from bgpflat.core.plan.planner import ClusterIdentity, Stage


class ObjectApi(Protocol):
    """What apply, its guards and rollback need: the cluster's identity and guarded single-object
    reads and writes. ``namespace`` is "" for cluster-wide objects (every Calico kind).
    ``bgpflat.adapters.kube.CalicoApi`` and ``bgpflat.adapters.kube.ServiceApi`` fill it."""

    def identity(self) -> ClusterIdentity: ...

    def get(self, kind: str, name: str, *, namespace: str = "") -> dict[str, Any] | None: ...

    def create(self, manifest: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]: ...

    def patch(
        self,
        kind: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str,
        dry_run: bool,
        namespace: str = "",
    ) -> dict[str, Any]: ...

    def delete(self, kind: str, name: str, *, resource_version: str, dry_run: bool, namespace: str = "") -> None: ...


class ClusterApi(ObjectApi, Protocol):
    """A cluster with its Calico API chosen; ``bgpflat.adapters.kube.CalicoApi`` is the real one."""

    def read_state(self) -> list[dict[str, Any]]: ...

    def read_everything(self) -> Iterable[dict[str, Any]]: ...

    def stream_everything(self) -> Iterable[dict[str, Any]]:
        """``read_everything`` as it is read, for writing straight to a file (bounded memory)."""
        ...


class ServiceReads(ObjectApi, Protocol):
    """What planning outside services reads; ``bgpflat.adapters.kube.ServiceApi``."""

    def serves_endpoint_slices(self) -> bool: ...

    def list_labelled(self, kind: str, selector: str, *, namespace: str = "") -> list[dict[str, Any]]: ...


class ClusterTarget(Protocol):
    """How a cluster is named to the user: its kubeconfig context and API server URL."""

    @property
    def context(self) -> str: ...

    @property
    def server(self) -> str: ...


class ClusterReader(Protocol):
    """A live cluster read in full, as a snapshot would hold it; ``CalicoApi`` is the real one."""

    @property
    def target(self) -> ClusterTarget: ...

    def read_everything(self) -> Iterable[dict[str, Any]]: ...


class StageVerifier(Protocol):
    """Runs after a stage is written and read back; raises ``VerifyError`` to stop the apply."""

    def __call__(self, stage: Stage, *, api: ObjectApi) -> None: ...


class BackupWriter(Protocol):
    """Writes a backup file (``path=None``: a new one, never an existing one) and returns its path;
    ``record`` appends one write to it durably, before apply goes on, so that a backup of an apply
    killed midway still tells ``rollback`` what was written."""

    def __call__(
        self,
        *,
        header: Mapping[str, Any],
        objects: Sequence[Mapping[str, Any]],
        path: str | None,
        writes: Sequence[Mapping[str, Any]] = (),
    ) -> str: ...

    def record(self, path: str, write: Mapping[str, Any]) -> None: ...


def never_interrupted() -> str | None:
    """The default for ``apply_plan(interrupted=...)``: nothing asks the apply to stop."""
    return None


class Progress(Protocol):
    def __call__(self, message: str) -> None: ...


def no_verification(stage: Stage, *, api: ObjectApi) -> None:
    """The default verifier: the read-back check of each stage is all there is."""


def quiet(message: str) -> None:
    pass
