"""Which Calico release's rules apply: the fields and checks that differ between releases.

Calico's validator (``libcalico-go/lib/validator/v3``) and API types change release by release:
v3.31 added ``nextHopMode``, ``localASNumber``, ``reversePeering``, ``namespaceSelector`` and the
``global()``/``Tunnel`` checks on IPPool selectors; v3.32 added ``keepaliveTime``,
``programClusterRoutes`` and the route priorities, dropped the v1 ``ipip``/``nat-outgoing`` pool
fields (refused when set in every release, so one rule covers both) and serves
``projectcalico.org/v3`` as CRDs whose schema (enums, patterns, CEL rules) the Kubernetes API
server enforces on top of the validator. ``CalicoRelease`` names those differences;
``release_for`` picks the rules for the version a cluster reports (ClusterInformation
``calicoVersion``) or a user gives.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from bgpflat.errors import SpecError

# When neither the cluster (ClusterInformation) nor the caller says, the newest release
# calico-facts covers is assumed, and a note says so.
ASSUMED_CALICO_VERSION = "v3.32.0"

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")

Version = tuple[int, int, int]


def parse_calico_version(text: str | None) -> Version | None:
    """``v3.30.7`` -> (3, 30, 7); ``master``/unknown text -> None."""
    if not text:
        return None
    match = _VERSION.match(text.strip())
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


# Spec fields by the release that added them (kind -> field -> first minor of 3.x that has it).
_ADDED: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        "IPPool": {"namespaceSelector": 31},
        "BGPPeer": {"localASNumber": 31, "nextHopMode": 31, "reversePeering": 31, "keepaliveTime": 32},
        "BGPConfiguration": {
            "serviceLoadBalancerAggregation": 31,
            "programClusterRoutes": 32,
            "ipv4NormalRoutePriority": 32,
            "ipv6NormalRoutePriority": 32,
        },
    }
)

# Enums only the CRD schema states (``+kubebuilder:validation:Enum``), by the release whose CRDs carry
# them. Calico's validator leaves these fields alone, but every write in Kubernetes-datastore mode
# ends in a CRD (the Calico API server stores into the crd.projectcalico.org/v1 CRDs), whose schema
# the Kubernetes API server enforces.
_SCHEMA_ENUMS: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        "BGPPeer": {"nextHopMode": 31, "reversePeering": 31},
        "BGPConfiguration": {"serviceLoadBalancerAggregation": 31, "bindMode": 32, "programClusterRoutes": 32},
    }
)

OLDEST_MINOR = 30
NEWEST_MINOR = 32


@dataclass(frozen=True, slots=True)
class CalicoRelease:
    """The rule set of one Calico 3.x release line (``minor`` 30, 31 or 32)."""

    minor: int
    note: str | None = None
    """Set when the rules are not exactly those of the version asked for (assumed, or outside the range)."""

    @property
    def label(self) -> str:
        return f"v3.{self.minor}"

    @property
    def crd_schema(self) -> bool:
        """The v3 API is served as CRDs whose schema (lengths, patterns, CEL) the API server enforces."""
        return self.minor >= 32

    def schema_enforces(self, kind: str, key: str) -> bool:
        """Whether this release's CRD schema restricts ``key`` of ``kind`` to an enum."""
        first = _SCHEMA_ENUMS.get(kind, {}).get(key)
        return first is not None and self.minor >= first

    @property
    def pool_selector_rules(self) -> bool:
        """IPPool selectors refuse ``global()`` and a Tunnel pool refuses a namespaceSelector."""
        return self.minor >= 31

    def has_field(self, kind: str, key: str) -> bool:
        added = _ADDED.get(kind, {}).get(key)
        return added is None or self.minor >= added

    def field_release(self, kind: str, key: str) -> str:
        """Why ``key`` is missing here: the release that added it."""
        return f"added in Calico v3.{_ADDED[kind][key]}"

    def describe(self) -> str:
        text = f"Calico {self.label} validation rules"
        return f"{text} ({self.note})" if self.note else text


def release_for(version: str | None, *, source: str = "calico_version") -> CalicoRelease:
    """The rules for ``version`` (``v3.31.0``, ``3.31``); None means the assumed newest release.

    A version that does not parse, or is not 3.x, is a ``SpecError`` naming ``source``: silently
    validating against the wrong release is what this is here to prevent.
    """
    if version is None:
        parsed = parse_calico_version(ASSUMED_CALICO_VERSION)
        assert parsed is not None
        return CalicoRelease(parsed[1], note=f"Calico version not known; assuming {ASSUMED_CALICO_VERSION}")
    parsed = parse_calico_version(version)
    if parsed is None:
        raise SpecError(f"{version!r} is not a Calico version", path=source, fix="use e.g. v3.31.0 or 3.31")
    major, minor, _ = parsed
    if major != 3:
        raise SpecError(
            f"Calico {version} is not a 3.x release; bgpflat knows the rules of Calico 3.x only",
            path=source,
            fix="give the Calico 3.x version the cluster runs",
        )
    if minor < OLDEST_MINOR:
        return CalicoRelease(OLDEST_MINOR, note=f"{version} is older than v3.{OLDEST_MINOR}; its rules are used")
    if minor > NEWEST_MINOR:
        return CalicoRelease(NEWEST_MINOR, note=f"{version} is newer than v3.{NEWEST_MINOR}; its rules are used")
    return CalicoRelease(minor)
