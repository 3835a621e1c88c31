"""bgpflat: flatten the network between an office and a Calico Kubernetes cluster over BGP.

The library a Python program or a CI job uses, without the command line::

    import bgpflat

    desired = bgpflat.load_spec("bgpflat.yaml")                # a flat spec or Calico manifests
    plan = bgpflat.plan(desired, "cluster.yaml")               # against a snapshot (or object dicts)
    expected = bgpflat.expected_routes("cluster.yaml", peer="10.200.20.254")
    diff = bgpflat.diff_routes(expected=expected, learned=bgpflat.load_learned("learned.json"))
    bgpflat.validate_manifest({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", ...})

Every name in ``__all__`` is the stable surface: it keeps its name and meaning within a major
version. Everything under ``bgpflat.core``, ``bgpflat.workflows``… may move between releases.

``import bgpflat`` stays cheap (the command line imports it for ``--version`` before anything
else): the exceptions are defined here at once, everything else is imported on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from bgpflat.errors import (
    BgpflatError,
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeUnavailable,
    LabError,
    PeerError,
    PlanError,
    SpecError,
    StalePlanError,
    ValidationError,
    VerifyError,
)

# ``typing`` alone would double the cost of ``import bgpflat``; the annotations are strings anyway.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from bgpflat.core.calico.models import CalicoResource
    from bgpflat.core.plan.identity import ClusterIdentity
    from bgpflat.core.plan.model import Plan
    from bgpflat.core.routes.cluster import ClusterState
    from bgpflat.core.routes.diff import RouteDiff
    from bgpflat.core.routes.expected import ExpectedRoutes, ModelOptions, OutsidePeer
    from bgpflat.core.routes.table import Route, RouteTable
    from bgpflat.core.state.model import DesiredState
    from bgpflat.testing.assertions import RouteAssertionError

    _PathLike = str | os.PathLike[str]  # a file name, as the functions below take it
    _Routes = Any  # ExpectedRoutes | RouteTable | Iterable[Route | Mapping[str, Any]]

__version__ = "0.1.0"

__all__ = [
    "BgpflatError",
    "ClusterIdentity",
    "ClusterState",
    "DesiredState",
    "ExpectedRoutes",
    "KubeConflict",
    "KubeError",
    "KubeForbidden",
    "KubeInvalid",
    "KubeNotFound",
    "KubeUnavailable",
    "LabError",
    "ModelOptions",
    "OutsidePeer",
    "PeerError",
    "Plan",
    "PlanError",
    "Route",
    "RouteAssertionError",
    "RouteDiff",
    "RouteTable",
    "SpecError",
    "StalePlanError",
    "ValidationError",
    "VerifyError",
    "__version__",
    "assert_routes",
    "diff_routes",
    "expected_routes",
    "load_cluster",
    "load_learned",
    "load_spec",
    "plan",
    "validate_manifest",
]

# The types, imported on first use: name -> module that defines it.
_LAZY_TYPES = {
    "ClusterIdentity": "bgpflat.core.plan.identity",
    "ClusterState": "bgpflat.core.routes.cluster",
    "DesiredState": "bgpflat.core.state.model",
    "ExpectedRoutes": "bgpflat.core.routes.expected",
    "ModelOptions": "bgpflat.core.routes.expected",
    "OutsidePeer": "bgpflat.core.routes.expected",
    "Plan": "bgpflat.core.plan.model",
    "Route": "bgpflat.core.routes.table",
    "RouteAssertionError": "bgpflat.testing.assertions",
    "RouteDiff": "bgpflat.core.routes.diff",
    "RouteTable": "bgpflat.core.routes.table",
}


if not TYPE_CHECKING:
    # Hidden from type checkers: they see the imports above, so that a misspelt name in a user's
    # code is an error there instead of an ``Any``.
    def __getattr__(name: str) -> Any:
        module = _LAZY_TYPES.get(name)
        if module is None:
            raise AttributeError(f"module 'bgpflat' has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # the next lookup does not come back here
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _in_file(exc: SpecError, file: str) -> SpecError:
    """``exc`` naming ``file``: the core sees loaded objects as plain dicts and cannot name it."""
    if exc.file is not None:
        return exc
    return type(exc)(exc.message, file=file, path=exc.path, line=exc.line, fix=exc.fix)


def load_spec(*sources: _PathLike | Mapping[str, Any]) -> DesiredState:
    """Load what should be in the cluster, as ``bgpflat plan -f`` does.

    Each source is a file name (a flat spec ``bgpflat.yaml``, or Calico manifests: multi-document
    YAML, JSON, ``kind: List``) or an already-loaded dict (a flat spec, one manifest or a
    ``kind: List``). A flat spec must come alone. Everything is validated with Calico's rules;
    a mistake raises ``SpecError`` (``ValidationError`` for a broken Calico rule) naming the file,
    line and field.
    """
    from bgpflat.adapters import files
    from bgpflat.core.state.documents import SourceDocument, SpecDocument
    from bgpflat.core.state.load import load_desired

    documents: list[SourceDocument] = []
    for source in sources:
        if isinstance(source, Mapping):
            documents.append(SpecDocument(data=source))
            continue
        loaded = files.load_documents(os.fspath(source))
        if not loaded:
            raise SpecError(
                "empty file: no flat spec and no Calico manifests",
                file=os.fspath(source),
                fix="pass a bgpflat.yaml or Calico manifests",
            )
        documents.extend(loaded)
    return load_desired(documents)


def load_cluster(source: _PathLike | Iterable[Mapping[str, Any]]) -> ClusterState:
    """The cluster state the route model reads, from a snapshot file or from object dicts.

    A snapshot is what ``bgpflat snapshot --output-file FILE`` writes, or any YAML/JSON of Kubernetes objects
    as the API serves them (Nodes, Calico objects, IPAM blocks, Services, EndpointSlices…).
    Objects of other kinds are ignored.
    """
    from bgpflat.core.routes.cluster import ClusterState

    if isinstance(source, (str, os.PathLike)):
        from bgpflat.adapters.files import load_snapshot

        snapshot = load_snapshot(os.fspath(source))
        try:
            return ClusterState.from_objects(snapshot.objects)
        except SpecError as exc:
            raise _in_file(exc, snapshot.file) from None
    return ClusterState.from_objects(source)


def load_learned(source: _PathLike | Any) -> RouteTable:
    """The routes a BGP peer learned, from a file name or from already-loaded JSON data.

    Takes what ``bgpflat peer routes -o json`` prints (or the peer's ``snapshot.json``), a dict
    ``{"routes": [...]}`` or a plain list of route records; ``SpecError`` for anything else.
    """
    from bgpflat.core.routes.verdict import learned_from_json

    if isinstance(source, (str, os.PathLike)):
        from bgpflat.adapters.files import read_json

        return learned_from_json(read_json(os.fspath(source)), source=os.fspath(source)).routes
    return learned_from_json(source, source="data").routes


def plan(desired: DesiredState, observed: _PathLike | Iterable[Mapping[str, Any]], *, prune: bool = False) -> Plan:
    """Compare ``desired`` (from ``load_spec``) with what a cluster holds: the ``Plan`` of
    ``bgpflat plan --snapshot``, field-level changes by stage plus the risk findings.

    ``observed`` is a snapshot file or the objects as the API serves them. A plan made here is
    marked as made from a snapshot, so ``bgpflat apply`` never applies it; ``plan.ensure_applicable()``
    raises ``PlanError`` when its findings would block an apply. ``prune`` also deletes objects
    labelled as managed by bgpflat that ``desired`` no longer has.
    """
    from bgpflat.workflows.planning import plan_snapshot

    if isinstance(observed, (str, os.PathLike)):
        from bgpflat.adapters.files import load_snapshot

        snapshot = load_snapshot(os.fspath(observed))
        try:
            return plan_snapshot(snapshot.objects, desired, header=snapshot.header, file=snapshot.file, prune=prune)
        except SpecError as exc:
            raise _in_file(exc, snapshot.file) from None
    return plan_snapshot(list(observed), desired, header={}, file="<objects>", prune=prune)


def expected_routes(
    cluster: ClusterState | _PathLike | Iterable[Mapping[str, Any]],
    peer: str | OutsidePeer,
    *,
    peer_as: int | None = None,
    options: ModelOptions | None = None,
) -> ExpectedRoutes:
    """The routes each Calico node advertises to the outside peer at ``peer``, with the reason
    for each, as ``bgpflat routes expected`` computes them.

    ``cluster`` is a ``ClusterState`` or whatever ``load_cluster`` takes. ``peer_as`` stands in
    for the BGPPeer's ``asNumber`` (useful before the BGPPeer exists). ``options`` picks the
    Calico version and the version-dependent behaviours (``ModelOptions``); by default the version
    comes from the cluster's ClusterInformation.
    """
    import dataclasses

    from bgpflat.core.net.prefixes import canonical_address
    from bgpflat.core.routes.advertise import expected_routes as model_routes
    from bgpflat.core.routes.cluster import ClusterState
    from bgpflat.core.routes.expected import OutsidePeer

    outside = peer if isinstance(peer, OutsidePeer) else OutsidePeer(address=peer)
    try:
        outside = dataclasses.replace(outside, address=canonical_address(outside.address))
    except SpecError as exc:
        raise SpecError(exc.message, path="peer", fix="give the peer's bare IP address, without a port") from None
    if peer_as is not None:
        outside = dataclasses.replace(outside, as_number=peer_as)
    state = cluster if isinstance(cluster, ClusterState) else load_cluster(cluster)
    return model_routes(cluster=state, peer=outside, options=options)


def diff_routes(*, expected: _Routes, learned: _Routes, strict: bool = False) -> RouteDiff:
    """Learned routes against expected ones, per session and prefix: missing, unexpected and
    mismatched routes, each with a reason code (``diff.complies``, ``diff.findings``,
    ``diff.to_dict()``).

    ``expected`` is an ``ExpectedRoutes`` (then every finding says why the route was expected), a
    ``RouteTable`` or route records; ``learned`` a ``RouteTable`` (``load_learned``) or route
    records. Unexpected routes break compliance only with ``strict``.
    """
    from bgpflat.core.routes.diff import diff_routes as route_diff
    from bgpflat.core.routes.expected import ExpectedRoutes
    from bgpflat.testing.assertions import as_table

    wanted = expected if isinstance(expected, ExpectedRoutes) else as_table(expected)
    return route_diff(expected=wanted, learned=as_table(learned), strict=strict)


def assert_routes(
    *, expected: _Routes, learned: _Routes, strict: bool = False, soft: bool = False, limit: int = 50
) -> RouteDiff:
    """Raise ``RouteAssertionError`` (an ``AssertionError``) unless ``learned`` complies with
    ``expected``; its message is the readable route diff (at most ``limit`` findings).

    With ``soft`` it warns (``RouteAssertionWarning``) instead. Returns the diff either way.
    Takes the same inputs as ``diff_routes``; works in pytest and in plain scripts alike.
    """
    __tracebackhide__ = True
    from bgpflat.testing.assertions import assert_routes as check

    return check(expected=expected, learned=learned, strict=strict, soft=soft, limit=limit, stacklevel=3)


def validate_manifest(manifest: Mapping[str, Any], *, calico_version: str | None = None) -> CalicoResource:
    """Check one Calico manifest (a dict) the way bgpflat checks what it is about to write.

    The manifest must be a ``projectcalico.org/v3`` IPPool, BGPPeer, BGPConfiguration or
    BGPFilter; it is parsed strictly (unknown fields, a namespace and Calico Enterprise fields
    are refused) and checked against the rules of Calico's own validator. Returns the parsed
    model. Raises ``ValidationError`` (a ``SpecError``) for a broken rule, an unknown kind or
    field included, and ``SpecError`` for a bad ``calico_version``; the message names the field
    path and the fix. A manifest Calico accepts is never refused: bgpflat's stricter opinions are
    what ``bgpflat validate`` prints as warnings.

    ``calico_version`` (``"v3.31.0"``, ``"3.31"``) names the Calico release the manifest is for;
    rules that differ between releases (fields added or removed, enums the v3.32 CRD schema
    enforces) follow it. Without it the newest release bgpflat knows is assumed.
    """
    from bgpflat.core.calico.manifest import parse_and_validate
    from bgpflat.core.calico.releases import release_for

    release = release_for(
        calico_version if isinstance(calico_version, str) or calico_version is None else repr(calico_version)
    )
    return parse_and_validate(manifest, release=release)
