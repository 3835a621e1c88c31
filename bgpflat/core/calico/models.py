"""Calico IPPool, BGPPeer, BGPConfiguration and BGPFilter as immutable models (calico-facts §1).

Import these through ``bgpflat.core.calico``, the public face of the Calico modules.

``parse_resource`` turns a manifest (``projectcalico.org/v3`` or ``crd.projectcalico.org/v1``: the
spec is the same) into a model, refusing only what cannot be represented (a CIDR that does not
parse, a port that is not a number). Calico's cross-field rules live in ``calico_validation`` and
run through ``validate``; observed objects may break them (a v1 write skips the validator), so
reading never requires them, but every write does (``parse_and_validate``).

Field paths: errors carry a path such as ``items[2].spec.peerIP`` or
``metadata.labels["app.kubernetes.io/managed-by"]``; ``format_path``/``parse_path`` convert between
that text and the tuple form ``("items", 2, "spec", "peerIP")`` used for line lookups.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from bgpflat.core.calico.schema import (
    CLIENT_METADATA,
    IPPOOL_LEGACY_FIELDS,
    BGPConfigurationSpec,
    BGPFilterSpec,
    BGPPeerSpec,
    IPPoolSpec,
    ObjectMeta,
)
from bgpflat.core.net.prefixes import Prefix, canonical_address, parse_address
from bgpflat.errors import SpecError, ValidationError

API_V3 = "projectcalico.org/v3"
API_V1 = "crd.projectcalico.org/v1"
CALICO_API_VERSIONS = (API_V3, API_V1)
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_BGPFLAT = "bgpflat"
MANAGED_BY_OPERATOR = "tigera-operator"

FieldPath = tuple[str | int, ...]

ENCAP_MODES = ("Never", "Always", "CrossSubnet")
# Installation encapsulation <-> (ipipMode, vxlanMode) (the operator's ToProjectCalico).
ENCAPSULATIONS = {
    ("Always", "Never"): "IPIP",
    ("CrossSubnet", "Never"): "IPIPCrossSubnet",
    ("Never", "Always"): "VXLAN",
    ("Never", "CrossSubnet"): "VXLANCrossSubnet",
    ("Never", "Never"): "None",
}
MODES_OF_ENCAPSULATION = {v: k for k, v in ENCAPSULATIONS.items()}
DEFAULT_AS_NUMBER = 64512
DEFAULT_LISTEN_PORT = 179

# Known spec fields per kind, camelCase as in the manifest, in the order of ``schema``'s TypedDicts.
# Unknown fields in a manifest that bgpflat is asked to write are refused: a typo (``cird:``) would
# otherwise be dropped silently or, written to a v1 CRD, break calico-node (calico#5941).
SPEC_FIELDS: Mapping[str, tuple[str, ...]] = {
    "IPPool": (*IPPoolSpec.__annotations__, *IPPOOL_LEGACY_FIELDS),
    "BGPPeer": tuple(BGPPeerSpec.__annotations__),
    "BGPConfiguration": tuple(BGPConfigurationSpec.__annotations__),
    "BGPFilter": tuple(BGPFilterSpec.__annotations__),
}
WRITABLE_KINDS = ("IPPool", "BGPPeer", "BGPConfiguration")
ENTERPRISE_PEER_FIELDS = ("failureDetectionMode", "restartMode", "birdGatewayMode")
# Metadata the API server fills in; present in `calicoctl get -o yaml` output and ignored on input.
SERVER_METADATA = tuple(key for key in ObjectMeta.__annotations__ if key not in CLIENT_METADATA)


# --- field paths -------------------------------------------------------------------------------

_SIMPLE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PATH_TOKEN = re.compile(r'\.?([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def format_path(path: Sequence[str | int]) -> str:
    """``("peers", 2, "asNumber")`` -> ``peers[2].asNumber``; odd keys as ``["a.b/c"]``."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _SIMPLE_KEY.fullmatch(part):
            out.append(f".{part}" if out else part)
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'["{escaped}"]')
    return "".join(out)


def parse_path(text: str) -> FieldPath:
    """Inverse of ``format_path``; text it did not produce gives the longest parsable head."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _PATH_TOKEN.match(text, pos)
        if not match or match.end() == pos:
            break
        if match.group(1) is not None:
            parts.append(match.group(1))
        elif match.group(2) is not None:
            parts.append(int(match.group(2)))
        else:
            parts.append(re.sub(r"\\(.)", r"\1", match.group(3)))
        pos = match.end()
    return tuple(parts)


def fail(
    message: str, path: Sequence[str | int], *, fix: str | None = None, file: str | None = None
) -> ValidationError:
    """A ``ValidationError`` at ``path`` (tuple form)."""
    return ValidationError(message, path=format_path(path) or None, fix=fix, file=file)


def unknown_field_error(key: str, known: Sequence[str], path: Sequence[str | int]) -> ValidationError:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    fix = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(known)}"
    return fail(f"unknown field {key!r}", (*path, key), fix=fix)


# --- value parsers shared by manifests and the flat spec ------------------------------------------

MAX_ASN = 0xFFFFFFFF


def parse_as_number(value: object, *, path: Sequence[str | int] = ()) -> int:
    """An AS number: int, ``"64512"`` or dotted ``"1.10"`` (= 65546); 1 to 4294967295."""
    fix = "use 1-4294967295 or dotted a.b with a, b in 0-65535"
    if isinstance(value, bool):
        raise fail(f"AS number must be a number, got {value!r}", path, fix=fix)
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\d{1,10}", value.strip()):
        number = int(value.strip())
    elif isinstance(value, float):
        # YAML reads an unquoted 1.10 as the number 1.1: the dotted form is lost before it gets here.
        raise fail(
            f"invalid AS number {value!r}: YAML read it as a decimal number",
            path,
            fix='write an asplain number, or quote a dotted one: "1.10"',
        )
    elif isinstance(value, str) and re.fullmatch(r"\d{1,5}\.\d{1,5}", value.strip()):
        high, low = (int(p) for p in value.strip().split("."))
        if high > 0xFFFF or low > 0xFFFF:
            raise fail(f"invalid AS number {value!r}: dotted parts must be 0-65535", path, fix=fix)
        number = high << 16 | low
    else:
        raise fail(f"invalid AS number {value!r}", path, fix=fix)
    if not 1 <= number <= MAX_ASN:
        raise fail(f"AS number {number} is out of range", path, fix=fix)
    return number


def format_as_number(number: int) -> str:
    """asplain text (what Calico stores)."""
    return str(number)


class PeerAddress(NamedTuple):
    """A BGPPeer ``peerIP``: canonical address and optional port."""

    ip: str
    port: int | None

    def __str__(self) -> str:
        if self.port is None:
            return self.ip
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


def parse_peer_ip(value: object, *, path: Sequence[str | int] = ()) -> PeerAddress:
    """``IP``, ``IPv4:port`` or ``[IPv6]:port`` (calico-facts §1.2); port 1-65535, ≤64 chars."""
    fix = "use an address, IPv4:port or [IPv6]:port"
    if not isinstance(value, str) or not value.strip():
        raise fail(f"peerIP must be an IP address, got {value!r}", path, fix=fix)
    text = value.strip()
    if len(text) > 64:
        raise fail("peerIP is longer than 64 characters", path, fix=fix)
    port_text: str | None = None
    if text.startswith("["):
        address, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise fail(f"invalid peerIP {value!r}", path, fix=fix)
        port_text = rest[1:]  # Calico also takes an IPv4 address in brackets: [10.0.0.1]:179
    elif text.count(":") == 1:
        address, _, port_text = text.partition(":")
    else:
        address = text
    try:
        version, _ = parse_address(address)
    except SpecError:
        raise fail(f"invalid peerIP {value!r}: {address!r} is not an IP address", path, fix=fix) from None
    if version == 6 and text.startswith("[") is False and port_text is not None:
        raise fail(f"invalid peerIP {value!r}", path, fix=fix)
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise fail(f"invalid port in peerIP {value!r}", path, fix="use a port from 1 to 65535")
        port = int(port_text)
    return PeerAddress(canonical_address(address), port)


def parse_cidr(value: object, *, path: Sequence[str | int], strict: bool = True) -> Prefix:
    if not isinstance(value, str):
        raise fail(f"expected a CIDR, got {value!r}", path, fix="write it as a.b.c.d/n or x::/n")
    try:
        return Prefix.parse(value, strict=strict)
    except SpecError as exc:
        raise fail(exc.message, path, fix=exc.fix or "write it as a.b.c.d/n or x::/n") from None


def _bool(value: object, path: Sequence[str | int]) -> bool:
    if not isinstance(value, bool):
        raise fail(f"expected true or false, got {value!r}", path, fix="write true or false, unquoted")
    return value


def _opt_bool(value: object, path: Sequence[str | int]) -> bool | None:
    return None if value is None else _bool(value, path)


def _str(value: object, path: Sequence[str | int]) -> str:
    if not isinstance(value, str):
        raise fail(f"expected a string, got {value!r}", path, fix="quote the value")
    return value


def _opt_str(value: object, path: Sequence[str | int]) -> str | None:
    return None if value is None else _str(value, path)


def _int(value: object, path: Sequence[str | int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        raise fail(f"expected an integer, got {value!r}", path, fix="write a whole number")
    return value


def _opt_int(value: object, path: Sequence[str | int]) -> int | None:
    return None if value is None else _int(value, path)


def _list(value: object, path: Sequence[str | int]) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise fail(f"expected a list, got {value!r}", path, fix="write a YAML list")
    return value


def _mapping(value: object, path: Sequence[str | int]) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail(f"expected a mapping, got {value!r}", path, fix="write key: value pairs")
    return value


def _string_map(value: object, path: Sequence[str | int]) -> Mapping[str, str]:
    mapping = _mapping(value, path)
    out: dict[str, str] = {}
    for key in sorted(mapping, key=str):
        item = mapping[key]
        if not isinstance(key, str) or not isinstance(item, str):
            raise fail(
                f"labels and annotations must map strings to strings, got {key!r}: {item!r}",
                (*path, str(key)),
                fix="quote the value",
            )
        out[key] = item
    return MappingProxyType(out)


_EMPTY: Mapping[str, str] = MappingProxyType({})


def _empty_map() -> Mapping[str, str]:
    return _EMPTY


# --- models --------------------------------------------------------------------------------------


class SecretKeyRef(NamedTuple):
    name: str
    key: str


class CommunityDefinition(NamedTuple):
    name: str
    value: str


class PrefixAdvertisement(NamedTuple):
    cidr: Prefix
    communities: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class IPPool:
    name: str
    cidr: Prefix
    block_size: int | None = None  # None: Calico's default for the family (26 / 122)
    ipip_mode: str = "Never"
    vxlan_mode: str = "Never"
    nat_outgoing: bool = False
    disabled: bool = False
    disable_bgp_export: bool = False
    node_selector: str = "all()"
    namespace_selector: str | None = None
    allowed_uses: tuple[str, ...] = ("Workload", "Tunnel")
    assignment_mode: str | None = None
    labels: Mapping[str, str] = field(default_factory=_empty_map)
    annotations: Mapping[str, str] = field(default_factory=_empty_map)
    explicit: frozenset[str] = frozenset()  # spec keys the source manifest set
    deprecated: frozenset[str] = frozenset()  # deprecated v1 keys that were set (refused on write)

    kind = "IPPool"

    @property
    def effective_block_size(self) -> int:
        if self.block_size is not None:
            return self.block_size
        return 26 if self.cidr.version == 4 else 122

    @property
    def encapsulated(self) -> bool:
        return self.ipip_mode != "Never" or self.vxlan_mode != "Never"


@dataclass(frozen=True, slots=True, kw_only=True)
class BGPPeer:
    name: str
    node: str | None = None
    node_selector: str | None = None
    peer_ip: str | None = None
    peer_port: int | None = None
    as_number: int | None = None
    local_as_number: int | None = None
    peer_selector: str | None = None
    keep_original_next_hop: bool = False
    next_hop_mode: str | None = None
    source_address: str | None = None
    filters: tuple[str, ...] = ()
    ttl_security: int | None = None
    reachable_by: str | None = None
    max_restart_time: str | None = None
    keepalive_time: str | None = None
    num_allowed_local_as_numbers: int | None = None
    password_secret: SecretKeyRef | None = None
    local_workload_selector: str | None = None
    reverse_peering: str | None = None
    labels: Mapping[str, str] = field(default_factory=_empty_map)
    annotations: Mapping[str, str] = field(default_factory=_empty_map)
    explicit: frozenset[str] = frozenset()
    enterprise_fields: frozenset[str] = frozenset()

    kind = "BGPPeer"

    @property
    def is_global(self) -> bool:
        """No node and no nodeSelector: every node peers."""
        return not self.node and not self.node_selector

    @property
    def keeps_next_hop(self) -> bool:
        return self.next_hop_mode == "Keep" or self.keep_original_next_hop


@dataclass(frozen=True, slots=True, kw_only=True)
class BGPConfiguration:
    name: str
    as_number: int | None = None
    node_to_node_mesh_enabled: bool | None = None
    service_cluster_ips: tuple[Prefix, ...] = ()
    service_external_ips: tuple[Prefix, ...] = ()
    service_load_balancer_ips: tuple[Prefix, ...] = ()
    service_load_balancer_aggregation: str | None = None
    communities: tuple[CommunityDefinition, ...] = ()
    prefix_advertisements: tuple[PrefixAdvertisement, ...] = ()
    listen_port: int | None = None
    log_severity_screen: str | None = None
    ignored_interfaces: tuple[str, ...] = ()
    node_mesh_password: SecretKeyRef | None = None
    node_mesh_max_restart_time: str | None = None
    bind_mode: str | None = None
    local_workload_peering_ipv4: str | None = None
    local_workload_peering_ipv6: str | None = None
    program_cluster_routes: str | None = None
    ipv4_normal_route_priority: int | None = None
    ipv6_normal_route_priority: int | None = None
    labels: Mapping[str, str] = field(default_factory=_empty_map)
    annotations: Mapping[str, str] = field(default_factory=_empty_map)
    explicit: frozenset[str] = frozenset()

    kind = "BGPConfiguration"

    @property
    def mesh_enabled(self) -> bool:
        return True if self.node_to_node_mesh_enabled is None else self.node_to_node_mesh_enabled

    @property
    def effective_as_number(self) -> int:
        return DEFAULT_AS_NUMBER if self.as_number is None else self.as_number

    @property
    def effective_listen_port(self) -> int:
        return DEFAULT_LISTEN_PORT if self.listen_port is None else self.listen_port


@dataclass(frozen=True, slots=True, kw_only=True)
class BGPFilterRule:
    action: str
    cidr: Prefix | None = None
    match_operator: str | None = None
    prefix_length_min: int | None = None
    prefix_length_max: int | None = None
    prefix_length_set: bool = False  # prefixLength present, even empty: Calico then wants a cidr
    source: str | None = None
    interface: str | None = None
    unmodelled: tuple[str, ...] = ()  # keys of the stored rule bgpflat has no model for (newer releases)


@dataclass(frozen=True, slots=True, kw_only=True)
class BGPFilter:
    name: str
    export_v4: tuple[BGPFilterRule, ...] = ()
    import_v4: tuple[BGPFilterRule, ...] = ()
    export_v6: tuple[BGPFilterRule, ...] = ()
    import_v6: tuple[BGPFilterRule, ...] = ()
    labels: Mapping[str, str] = field(default_factory=_empty_map)
    annotations: Mapping[str, str] = field(default_factory=_empty_map)

    kind = "BGPFilter"


CalicoResource = IPPool | BGPPeer | BGPConfiguration | BGPFilter
WritableResource = IPPool | BGPPeer | BGPConfiguration


def managed_by(resource: CalicoResource) -> str | None:
    return resource.labels.get(MANAGED_BY_LABEL)
