"""Calico resources for bgpflat: models, manifest parsing and rendering, validation (calico-facts §1).

The public face of these modules:

* ``calico_models``: frozen models ``IPPool``, ``BGPPeer``, ``BGPConfiguration``, ``BGPFilter``
  (read-only for bgpflat), value parsers (``parse_as_number``, ``parse_peer_ip``) and field paths;
* ``calico_manifest``: ``parse_resource`` (manifest -> model; ``projectcalico.org/v3`` or
  ``crd.projectcalico.org/v1``, same spec);
* ``calico_render``: ``to_manifest`` (model -> v3 manifest) and ``normalize_spec_value`` (the value
  Calico acts on, for comparisons);
* ``validation`` (with ``validation_bgp`` and the value checks of ``checks``): ``validate`` — the
  rules of Calico's validator, clientv3 and CRD schema, run client-side before every write whatever
  the API flavour, because a v1 CRD write skips most of them (§1.1); ``check_manifest`` parses and
  validates in one step and also returns bgpflat's own stricter opinions as ``Advice`` (warnings,
  never refusals);
* ``releases``: ``CalicoRelease``/``release_for``, what differs between Calico releases;
* ``schema``: TypedDicts for the manifests bgpflat writes (``Manifest``, ``ObjectMeta``, one spec
  per kind), from which ``SPEC_FIELDS`` is read.

Reading never requires the cross-field rules (observed objects may break them: a v1 write is not
validated); writing always does (``parse_and_validate``).
"""

from __future__ import annotations

from bgpflat.core.calico.checks import Advice
from bgpflat.core.calico.manifest import (
    check_manifest,
    decode_v1_metadata,
    has_unreadable_v1_metadata,
    parse_and_validate,
    parse_resource,
)
from bgpflat.core.calico.models import (
    API_V1,
    API_V3,
    CALICO_API_VERSIONS,
    ENCAP_MODES,
    ENCAPSULATIONS,
    MANAGED_BY_BGPFLAT,
    MANAGED_BY_LABEL,
    MANAGED_BY_OPERATOR,
    MODES_OF_ENCAPSULATION,
    SPEC_FIELDS,
    WRITABLE_KINDS,
    BGPConfiguration,
    BGPFilter,
    BGPFilterRule,
    BGPPeer,
    CalicoResource,
    CommunityDefinition,
    FieldPath,
    IPPool,
    PeerAddress,
    PrefixAdvertisement,
    SecretKeyRef,
    WritableResource,
    format_as_number,
    format_path,
    managed_by,
    parse_as_number,
    parse_path,
    parse_peer_ip,
)
from bgpflat.core.calico.releases import CalicoRelease, release_for
from bgpflat.core.calico.render import normalize_spec_value, spec_default, to_manifest
from bgpflat.core.calico.schema import Manifest, ObjectMeta
from bgpflat.core.calico.validation import validate

__all__ = [
    "API_V1",
    "API_V3",
    "CALICO_API_VERSIONS",
    "ENCAPSULATIONS",
    "ENCAP_MODES",
    "MANAGED_BY_BGPFLAT",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_OPERATOR",
    "MODES_OF_ENCAPSULATION",
    "SPEC_FIELDS",
    "WRITABLE_KINDS",
    "Advice",
    "BGPConfiguration",
    "BGPFilter",
    "BGPFilterRule",
    "BGPPeer",
    "CalicoRelease",
    "CalicoResource",
    "CommunityDefinition",
    "FieldPath",
    "IPPool",
    "Manifest",
    "ObjectMeta",
    "PeerAddress",
    "PrefixAdvertisement",
    "SecretKeyRef",
    "WritableResource",
    "check_manifest",
    "decode_v1_metadata",
    "format_as_number",
    "format_path",
    "has_unreadable_v1_metadata",
    "managed_by",
    "normalize_spec_value",
    "parse_and_validate",
    "parse_as_number",
    "parse_path",
    "parse_peer_ip",
    "parse_resource",
    "release_for",
    "spec_default",
    "to_manifest",
    "validate",
]
