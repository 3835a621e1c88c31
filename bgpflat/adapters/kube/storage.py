"""Calico objects in ``crd.projectcalico.org/v1`` storage form and back (calico-facts §2.1).

When only the v1 CRDs are served, reads and writes convert metadata the way Calico's own KDD
backend does, so that everything above the adapter sees ``projectcalico.org/v3`` manifests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bgpflat.core.calico import decode_v1_metadata

V3_GROUP = "projectcalico.org"
V1_GROUP = "crd.projectcalico.org"
V3 = f"{V3_GROUP}/v3"
V1 = f"{V1_GROUP}/v1"
CALICO_METADATA_ANNOTATION = "projectcalico.org/metadata"


def _calico_owned(key: str) -> bool:
    return "projectcalico.org/" in key or "operator.tigera.io/" in key


def v1_to_v3(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A ``crd.projectcalico.org/v1`` object as Calico's v3 API would show it."""
    out = dict(obj)
    out["apiVersion"] = V3
    metadata = dict(out.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    labels = dict(metadata.get("labels") or {})
    stored = annotations.get(CALICO_METADATA_ANNOTATION)
    if stored is not None:
        decoded = decode_v1_metadata(stored)
        # Unreadable: kept as it is, so that plan names the object in a finding instead of failing.
        if decoded is not None:
            del annotations[CALICO_METADATA_ANNOTATION]
            labels.update(decoded[0])
            annotations.update(decoded[1])
    for key, value in (("labels", labels), ("annotations", annotations)):
        if value:
            metadata[key] = value
        else:
            metadata.pop(key, None)
    out["metadata"] = metadata
    return out


def v3_to_v1(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A v3 manifest in ``crd.projectcalico.org/v1`` storage form: foreign metadata in one annotation."""
    out = dict(obj)
    out["apiVersion"] = V1
    metadata = dict(out.get("metadata") or {})
    labels = dict(metadata.get("labels") or {})
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(CALICO_METADATA_ANNOTATION, None)
    foreign_labels = {k: v for k, v in labels.items() if not _calico_owned(k)}
    foreign_annotations = {k: v for k, v in annotations.items() if not _calico_owned(k)}
    kept_labels = {k: v for k, v in labels.items() if _calico_owned(k)}
    kept_annotations = {k: v for k, v in annotations.items() if _calico_owned(k)}
    if foreign_labels or foreign_annotations:
        stored: dict[str, Any] = {}
        if foreign_labels:
            stored["labels"] = foreign_labels
        if foreign_annotations:
            stored["annotations"] = foreign_annotations
        kept_annotations[CALICO_METADATA_ANNOTATION] = json.dumps(stored, sort_keys=True, separators=(",", ":"))
    # Explicit null for keys that must disappear under merge-patch; a plain dict for create.
    metadata["labels"] = kept_labels
    metadata["annotations"] = kept_annotations
    out["metadata"] = metadata
    return out


def v1_metadata_patch(*, patch: Mapping[str, Any], current_v1: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a v3 merge patch's metadata into the v1 storage form, given the stored v1 object.

    Labels/annotations are not merged key by key here: the v3 view after the patch is computed and
    converted, then every stored key not in the result is nulled, so the patch says exactly what
    the stored object must end with.
    """
    out = {k: v for k, v in patch.items() if k != "metadata"}
    meta_patch = dict(patch.get("metadata") or {})
    current_v3 = v1_to_v3(current_v1)
    current_meta = current_v3.get("metadata") or {}
    stored_meta = current_v1.get("metadata") or {}
    new_meta: dict[str, Any] = {k: v for k, v in meta_patch.items() if k not in ("labels", "annotations")}
    if "labels" in meta_patch or "annotations" in meta_patch:
        labels = _merge_map(current_meta.get("labels") or {}, meta_patch.get("labels"))
        annotations = _merge_map(current_meta.get("annotations") or {}, meta_patch.get("annotations"))
        converted = v3_to_v1({"metadata": {"labels": labels, "annotations": annotations}})["metadata"]
        for key in ("labels", "annotations"):
            wanted = converted[key]
            stored = stored_meta.get(key) or {}
            entry = {k: v for k, v in wanted.items() if stored.get(k) != v}
            entry.update({k: None for k in stored if k not in wanted})
            if entry:
                new_meta[key] = entry
    if new_meta:
        out["metadata"] = new_meta
    return out


def _merge_map(base: Mapping[str, Any], patch: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(base)
    for key, value in (patch or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged
