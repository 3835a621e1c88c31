"""``routes expected`` and the cluster side of ``verify``: the cluster's state and the routes it should advertise.

The state comes from a snapshot file (read by the CLI) or from the live cluster through a
``ClusterReader``; either way it is the same set of objects (what ``bgpflat snapshot`` writes),
so a cluster and its snapshot give the same expected routes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bgpflat.core.routes.advertise import expected_routes
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.core.routes.expected import ExpectedRoutes, ModelOptions, OutsidePeer
from bgpflat.errors import SpecError
from bgpflat.workflows.ports import ClusterReader, Progress, quiet


def read_live_objects(api: ClusterReader, *, progress: Progress = quiet) -> list[dict[str, Any]]:
    """Everything the route model reads, from the live API (Calico objects as v3 manifests)."""
    progress(f"reading cluster state from context {api.target.context!r} ({api.target.server})")
    return list(api.read_everything())


def cluster_state(objects: Iterable[Mapping[str, Any]], *, file: str | None = None) -> ClusterState:
    """The model's view of ``objects``; a bad object is named with the ``file`` it came from."""
    try:
        return ClusterState.from_objects(objects)
    except SpecError as exc:
        if file is None:
            raise
        raise SpecError(exc.message, file=file, path=exc.path, fix=exc.fix) from None


def expected_for(cluster: ClusterState, *, peer: OutsidePeer, options: ModelOptions) -> ExpectedRoutes:
    """The routes ``peer`` should learn from the cluster's nodes, with the reason for each."""
    return expected_routes(cluster=cluster, peer=peer, options=options)
