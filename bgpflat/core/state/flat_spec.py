"""The flat spec (``bgpflat.yaml``): one file for pools, peers, the BGP configuration and networks.

``parse_spec`` turns it into the Calico manifests it stands for, validated as if they had been
written by hand (errors name the flat-spec field, not the manifest one); ``render_manifests`` shows
them. The schema is in ``FLAT_SPEC_KEYS`` and the README.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from bgpflat.core.calico import (
    API_V3,
    MODES_OF_ENCAPSULATION,
    BGPFilter,
    FieldPath,
    Manifest,
    WritableResource,
    check_manifest,
    parse_as_number,
    parse_peer_ip,
)
from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.state.documents import Located, SourceDocument, type_name, where
from bgpflat.core.state.model import ClusterTarget, DesiredState, Networks, resource_key
from bgpflat.errors import SpecError, ValidationError

FLAT_SPEC_VERSION = 1

# The flat spec schema: allowed keys per section (values are documented in the README).
FLAT_SPEC_KEYS: Mapping[str, tuple[str, ...]] = {
    "": ("version", "cluster", "bgp", "pools", "peers", "services", "networks"),
    "cluster": ("name", "context", "environment"),
    "bgp": ("asNumber", "listenPort", "nodeToNodeMesh"),
    "pools[]": (
        "name",
        "cidr",
        "blockSize",
        "encapsulation",
        "natOutgoing",
        "nodeSelector",
        "disableBGPExport",
        "disabled",
    ),
    "peers[]": (
        "name",
        "peerIP",
        "asNumber",
        "node",
        "nodeSelector",
        "peerSelector",
        "localASNumber",
        "nextHopMode",
        "keepOriginalNextHop",
        "password",
        "filters",
        "sourceAddress",
        "ttlSecurity",
        "maxRestartTime",
        "keepaliveTime",
        "reachableBy",
        "numAllowedLocalASNumbers",
    ),
    "peers[].password": ("secret", "key"),
    "services": ("clusterIPs", "externalIPs", "loadBalancerIPs", "clusterIPRange"),
    "networks": ("nodes", "office", "vpn"),
}
ENVIRONMENTS = ("dev", "development", "test", "testing", "staging", "prod", "production")


class _Reader:
    """Typed reads from a flat-spec document, with errors that name path and line."""

    def __init__(self, doc: SourceDocument) -> None:
        self.located = Located(doc)

    def error(self, message: str, path: FieldPath, fix: str | None = None) -> SpecError:
        return self.located.error(message, path, fix=fix)

    def mapping(self, value: Any, path: FieldPath, section: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(f"expected a mapping, got {type_name(value)}", path, fix="write key: value pairs")
        known = FLAT_SPEC_KEYS[section]
        for key in value:
            if not isinstance(key, str):
                raise self.error(f"keys must be strings, got {key!r}", path, fix="quote the key")
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
                fix = f"did you mean {close[0]!r}?" if close else f"allowed here: {', '.join(known)}"
                raise self.error(f"unknown field {key!r}", (*path, key), fix)
        return value

    def list(self, value: Any, path: FieldPath, *, one_string: bool = True) -> list[Any]:
        """A list; with ``one_string``, a lone string stands for a list of one (``clusterIPs: 10.96.0.0/12``)."""
        if value is None:
            return []
        if isinstance(value, str) and one_string:
            return [value]
        if not isinstance(value, list):
            raise self.error(f"expected a list, got {type_name(value)}", path, fix="write a YAML list")
        return value

    def string(self, value: Any, path: FieldPath, *, fix: str = "quote the value") -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"expected a non-empty string, got {value!r}", path, fix)
        return value.strip()

    def opt_string(self, value: Any, path: FieldPath) -> str | None:
        return None if value is None else self.string(value, path)

    def boolean(self, value: Any, path: FieldPath) -> bool | None:
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {value!r}", path, "write true or false, unquoted")
        return value

    def integer(self, value: Any, path: FieldPath, low: int, high: int) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(f"expected a whole number, got {value!r}", path, f"use {low}-{high}")
        if not low <= value <= high:
            raise self.error(f"{value} is out of range", path, f"use {low}-{high}")
        return value

    def prefix(self, value: Any, path: FieldPath, *, strict: bool = True) -> Prefix:
        if not isinstance(value, str):
            raise self.error(f"expected a CIDR, got {value!r}", path, "write it as a.b.c.d/n or x::/n")
        try:
            return Prefix.parse(value, strict=strict)
        except SpecError as exc:
            raise self.error(exc.message, path, exc.fix or "write it as a.b.c.d/n or x::/n") from None

    def prefixes(self, value: Any, path: FieldPath) -> tuple[Prefix, ...]:
        items = self.list(value, path)
        path_of: Callable[[int], FieldPath] = (lambda i: path) if isinstance(value, str) else (lambda i: (*path, i))
        return tuple(self.prefix(item, path_of(i)) for i, item in enumerate(items))

    def as_number(self, value: Any, path: FieldPath) -> int | None:
        if value is None:
            return None
        try:
            return parse_as_number(value, path=path)
        except SpecError as exc:
            raise self.located.relocate(exc) from None


def parse_spec(document: SourceDocument) -> DesiredState:
    """A flat spec document -> ``DesiredState`` with validated Calico resources and the networks."""
    reader = _Reader(document)
    root = reader.mapping(document.data, (), "")
    version = root.get("version", FLAT_SPEC_VERSION)
    if version != FLAT_SPEC_VERSION or isinstance(version, bool):
        raise reader.error(
            f"unsupported flat spec version {version!r}",
            ("version",),
            f"this bgpflat reads version {FLAT_SPEC_VERSION}",
        )
    cluster = _cluster(reader, root.get("cluster"))
    manifests: list[tuple[dict[str, Any], Callable[[FieldPath], FieldPath], FieldPath]] = []
    manifests += _pools(reader, root.get("pools"))
    manifests += _peers(reader, root.get("peers"))
    bgp_config = _bgp_configuration(reader, root.get("bgp"), root.get("services"))
    if bgp_config is not None:
        manifests.insert(0, bgp_config)
    networks = _networks(reader, root.get("networks"), root.get("services"))
    resources: list[WritableResource] = []
    origins: dict[str, str] = {}
    for manifest, mapper, origin in manifests:
        try:
            resource, notes = check_manifest(manifest)
            # The flat spec is bgpflat's own language: what would only be a warning about a Calico
            # manifest (a peer with no asNumber) has no reason to be written here, so it is refused.
            for note in notes:
                raise ValidationError(note.message, path=note.path, fix=note.fix)
        except SpecError as exc:
            raise reader.located.relocate(exc, mapper) from None
        assert not isinstance(resource, BGPFilter)
        key = resource_key(resource.kind, resource.name)
        if key in origins:
            raise reader.error(
                f"{resource.kind} {resource.name!r} is defined twice", (*origin, "name"), "give each one its own name"
            )
        origins[key] = where(document, origin)
        resources.append(resource)
    return DesiredState(resources=tuple(resources), networks=networks, cluster=cluster, origins=origins)


def _cluster(reader: _Reader, value: Any) -> ClusterTarget | None:
    if value is None:
        return None
    section = reader.mapping(value, ("cluster",), "cluster")
    environment = reader.opt_string(section.get("environment"), ("cluster", "environment"))
    if environment is not None and environment.lower() not in ENVIRONMENTS:
        raise reader.error(
            f"unknown environment {environment!r}", ("cluster", "environment"), "use dev, test, staging or prod"
        )
    return ClusterTarget(
        name=reader.opt_string(section.get("name"), ("cluster", "name")),
        context=reader.opt_string(section.get("context"), ("cluster", "context")),
        environment=environment,
    )


def _manifest(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_V3, "kind": kind, "metadata": {"name": name}, "spec": spec}


def _spec_mapper(base: FieldPath, renames: Mapping[str, str]) -> Callable[[FieldPath], FieldPath]:
    """Map a manifest error path (``spec.x``) back to the flat-spec path it came from."""

    def mapper(path: FieldPath) -> FieldPath:
        if path[:2] == ("metadata", "name"):
            return (*base, "name")
        if len(path) >= 2 and path[0] == "spec" and isinstance(path[1], str):
            return (*base, renames.get(path[1], path[1]), *path[2:])
        return base

    return mapper


def _pools(reader: _Reader, value: Any) -> list[tuple[dict[str, Any], Callable[[FieldPath], FieldPath], FieldPath]]:
    out = []
    for index, item in enumerate(reader.list(value, ("pools",), one_string=False)):
        base: FieldPath = ("pools", index)
        pool = reader.mapping(item, base, "pools[]")
        name = reader.string(pool.get("name"), (*base, "name"), fix="give the pool a name, e.g. default-pool")
        if pool.get("cidr") is None:
            raise reader.error("a pool needs a cidr", (*base, "cidr"), "set cidr, e.g. 10.244.0.0/16")
        spec: dict[str, Any] = {"cidr": str(reader.prefix(pool["cidr"], (*base, "cidr")))}
        block = reader.integer(pool.get("blockSize"), (*base, "blockSize"), 0, 128)
        if block is not None:
            spec["blockSize"] = block
        if "encapsulation" in pool:
            encapsulation = reader.string(
                pool.get("encapsulation"), (*base, "encapsulation"), fix=f"use {', '.join(MODES_OF_ENCAPSULATION)}"
            )
            if encapsulation not in MODES_OF_ENCAPSULATION:
                lowered = {mode.lower(): mode for mode in MODES_OF_ENCAPSULATION}
                close = [lowered[m] for m in difflib.get_close_matches(encapsulation.lower(), list(lowered), n=1)]
                raise reader.error(
                    f"unknown encapsulation {encapsulation!r}",
                    (*base, "encapsulation"),
                    (f"did you mean {close[0]!r}? " if close else "") + f"use {', '.join(MODES_OF_ENCAPSULATION)}",
                )
            spec["ipipMode"], spec["vxlanMode"] = MODES_OF_ENCAPSULATION[encapsulation]
        for key in ("natOutgoing", "disableBGPExport", "disabled"):
            flag = reader.boolean(pool.get(key), (*base, key))
            if flag is not None:
                spec[key] = flag
        selector = reader.opt_string(pool.get("nodeSelector"), (*base, "nodeSelector"))
        if selector is not None:
            spec["nodeSelector"] = selector
        renames = {"ipipMode": "encapsulation", "vxlanMode": "encapsulation"}
        out.append((_manifest("IPPool", name, spec), _spec_mapper(base, renames), base))
    return out


def _peers(reader: _Reader, value: Any) -> list[tuple[dict[str, Any], Callable[[FieldPath], FieldPath], FieldPath]]:
    out = []
    for index, item in enumerate(reader.list(value, ("peers",), one_string=False)):
        base: FieldPath = ("peers", index)
        peer = reader.mapping(item, base, "peers[]")
        name = reader.string(peer.get("name"), (*base, "name"), fix="give the peer a name, e.g. peer-switch")
        spec: dict[str, Any] = {}
        if peer.get("peerIP") is not None:
            try:
                spec["peerIP"] = str(parse_peer_ip(peer["peerIP"], path=(*base, "peerIP")))
            except SpecError as exc:
                raise reader.located.relocate(exc) from None
        for key in ("asNumber", "localASNumber"):
            number = reader.as_number(peer.get(key), (*base, key))
            if number is not None:
                spec[key] = number
        for key in (
            "node",
            "nodeSelector",
            "peerSelector",
            "nextHopMode",
            "sourceAddress",
            "maxRestartTime",
            "keepaliveTime",
            "reachableBy",
        ):
            text = reader.opt_string(peer.get(key), (*base, key))
            if text is not None:
                spec[key] = text
        # Owned even when absent: a peer defined here is bgpflat's, so a selector removed from the
        # spec is removed from the cluster too.
        for key in ("node", "nodeSelector"):
            spec.setdefault(key, None)
        keep = reader.boolean(peer.get("keepOriginalNextHop"), (*base, "keepOriginalNextHop"))
        if keep is not None:
            spec["keepOriginalNextHop"] = keep
        ttl = reader.integer(peer.get("ttlSecurity"), (*base, "ttlSecurity"), 0, 255)
        if ttl is not None:
            spec["ttlSecurity"] = ttl
        allowed = reader.integer(
            peer.get("numAllowedLocalASNumbers"), (*base, "numAllowedLocalASNumbers"), 0, 2**31 - 1
        )
        if allowed is not None:
            spec["numAllowedLocalASNumbers"] = allowed
        if "filters" in peer:
            spec["filters"] = [
                reader.string(f, (*base, "filters", i))
                for i, f in enumerate(reader.list(peer["filters"], (*base, "filters")))
            ]
        if peer.get("password") is not None:
            password = reader.mapping(peer["password"], (*base, "password"), "peers[].password")
            spec["password"] = {
                "secretKeyRef": {
                    "name": reader.string(
                        password.get("secret"),
                        (*base, "password", "secret"),
                        fix="name the Secret that holds the password",
                    ),
                    "key": reader.string(
                        password.get("key"), (*base, "password", "key"), fix="name the key inside the Secret"
                    ),
                }
            }
        out.append((_manifest("BGPPeer", name, spec), _peer_mapper(base), base))
    return out


def _peer_mapper(base: FieldPath) -> Callable[[FieldPath], FieldPath]:
    inner = _spec_mapper(base, {})

    def mapper(path: FieldPath) -> FieldPath:
        if path[:3] == ("spec", "password", "secretKeyRef"):
            return (*base, "password")
        return inner(path)

    return mapper


_SERVICE_FIELDS = {
    "clusterIPs": "serviceClusterIPs",
    "externalIPs": "serviceExternalIPs",
    "loadBalancerIPs": "serviceLoadBalancerIPs",
}


def _bgp_configuration(
    reader: _Reader, bgp_value: Any, services_value: Any
) -> tuple[dict[str, Any], Callable[[FieldPath], FieldPath], FieldPath] | None:
    if bgp_value is None and services_value is None:
        return None
    bgp = reader.mapping(bgp_value, ("bgp",), "bgp")
    services = reader.mapping(services_value, ("services",), "services")
    spec: dict[str, Any] = {}
    number = reader.as_number(bgp.get("asNumber"), ("bgp", "asNumber"))
    if number is not None:
        spec["asNumber"] = number
    port = reader.integer(bgp.get("listenPort"), ("bgp", "listenPort"), 1, 65535)
    if port is not None:
        spec["listenPort"] = port
    mesh = reader.boolean(bgp.get("nodeToNodeMesh"), ("bgp", "nodeToNodeMesh"))
    if mesh is not None:
        spec["nodeToNodeMeshEnabled"] = mesh
    renames: dict[str, FieldPath] = {
        "asNumber": ("bgp", "asNumber"),
        "listenPort": ("bgp", "listenPort"),
        "nodeToNodeMeshEnabled": ("bgp", "nodeToNodeMesh"),
    }
    for key, calico_key in _SERVICE_FIELDS.items():
        if key in services:
            prefixes = reader.prefixes(services[key], ("services", key))
            spec[calico_key] = [{"cidr": str(p)} for p in prefixes]
            renames[calico_key] = ("services", key)

    def mapper(path: FieldPath) -> FieldPath:
        if len(path) >= 2 and path[0] == "spec" and isinstance(path[1], str) and path[1] in renames:
            target = renames[path[1]]
            return (*target, path[2]) if target[0] == "services" and len(path) > 2 else target
        return ("bgp",)

    return _manifest("BGPConfiguration", "default", spec), mapper, ("bgp",)


def _networks(reader: _Reader, value: Any, services_value: Any) -> Networks:
    networks = reader.mapping(value, ("networks",), "networks")
    services = reader.mapping(services_value, ("services",), "services")
    return Networks(
        nodes=reader.prefixes(networks.get("nodes"), ("networks", "nodes")),
        office=reader.prefixes(networks.get("office"), ("networks", "office")),
        vpn=reader.prefixes(networks.get("vpn"), ("networks", "vpn")),
        service_cluster_ip_range=reader.prefixes(services.get("clusterIPRange"), ("services", "clusterIPRange")),
    )


def render_manifests(desired: DesiredState) -> list[Manifest]:
    """The desired Calico resources as ``projectcalico.org/v3`` manifests (what a flat spec means)."""
    from bgpflat.core.calico import to_manifest

    order = {kind: index for index, kind in enumerate(("BGPConfiguration", "IPPool", "BGPPeer"))}
    return [to_manifest(r) for r in sorted(desired.resources, key=lambda r: (order[r.kind], r.name))]
