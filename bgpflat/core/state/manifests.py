"""Native Calico manifests (``projectcalico.org/v3``, one per document or in ``List`` kinds) -> ``DesiredState``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bgpflat.core.calico import WRITABLE_KINDS, BGPFilter, FieldPath, WritableResource, format_path, parse_and_validate
from bgpflat.core.state.documents import Located, SourceDocument, type_name, where
from bgpflat.core.state.model import DesiredState, Networks, resource_key
from bgpflat.errors import SpecError

_LIST_KINDS = {"List", *(f"{kind}List" for kind in WRITABLE_KINDS)}


def parse_manifests(documents: Sequence[SourceDocument], *, networks: Networks | None = None) -> DesiredState:
    """``projectcalico.org/v3`` manifests (multi-document, ``List`` kinds) -> ``DesiredState``."""
    resources: list[WritableResource] = []
    origins: dict[str, str] = {}
    for doc in documents:
        located = Located(doc)
        data = doc.data
        if not isinstance(data, Mapping):
            raise located.error(
                f"expected a flat spec or a Kubernetes object (a mapping), got {type_name(data)}",
                (),
                fix="start a flat spec with keys such as version:, bgp:, pools:, peers:",
            )
        items: list[tuple[FieldPath, Any]]
        list_kind = data.get("kind")
        if isinstance(list_kind, str) and list_kind in _LIST_KINDS:
            raw_items = data.get("items")
            if not isinstance(raw_items, list):
                raise located.error(f"'items' of a kind: {data.get('kind')} must be a list", ("items",))
            items = [(("items", index), item) for index, item in enumerate(raw_items)]
        else:
            items = [((), data)]
        for prefix, manifest in items:
            if not isinstance(manifest, Mapping):
                raise located.error(f"expected a Kubernetes object (a mapping), got {type_name(manifest)}", prefix)
            kind = manifest.get("kind")
            if kind == "BGPFilter":
                raise located.error(
                    "bgpflat reads BGPFilters but does not write them",
                    (*prefix, "kind"),
                    fix="apply BGPFilters with calicoctl or kubectl and reference them in BGPPeer spec.filters",
                )
            try:
                resource = parse_and_validate(manifest, path=format_path(prefix) or None)
            except SpecError as exc:
                raise located.relocate(exc) from None
            assert not isinstance(resource, BGPFilter)
            key = resource_key(resource.kind, resource.name)
            origin = where(doc, (*prefix, "metadata", "name"))
            if key in origins:
                raise located.error(
                    f"{key} is defined twice (first at {origins[key]})",
                    (*prefix, "metadata", "name"),
                    fix="keep one definition",
                )
            origins[key] = origin
            resources.append(resource)
    return DesiredState(resources=tuple(resources), networks=networks or Networks(), origins=origins)
