"""The outside-services file: its model (``ExternalService``) and its validation.

Every refusal is a ``SpecError`` naming the file, line, field and fix; what passes here is
accepted by the API server (names, ports, protocols, endpoint addresses, appProtocol).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bgpflat.core.calico import format_path
from bgpflat.core.net.prefixes import Prefix, canonical_address, parse_address
from bgpflat.errors import SpecError

EXTERNAL_VERSION = 1
PROTOCOLS = ("TCP", "UDP", "SCTP")
AFFINITIES = ("None", "ClientIP")
ENTRY_KEYS = ("name", "namespace", "ports", "addresses", "externalName", "sessionAffinity")
PORT_KEYS = ("name", "port", "targetPort", "protocol", "appProtocol")
# Kubernetes refuses these as endpoint addresses (validation of Endpoints/EndpointSlices).
_FORBIDDEN = tuple(
    Prefix.parse(p) for p in ("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "::/128", "::1/128")
) + tuple(Prefix.parse(p) for p in ("fe80::/10", "ff00::/8"))

_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_PORT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class SourceDocument(Protocol):
    @property
    def data(self) -> Any: ...

    @property
    def file(self) -> str | None: ...

    def line_of(self, path: Sequence[str | int]) -> int | None: ...


# --- model ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ServicePort:
    port: int
    target_port: int
    protocol: str = "TCP"
    name: str | None = None
    app_protocol: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalService:
    name: str
    namespace: str
    ports: tuple[ServicePort, ...] = ()
    addresses: tuple[str, ...] = ()  # canonical, in file order
    external_name: str | None = None
    session_affinity: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def family_addresses(self, version: int) -> tuple[str, ...]:
        return tuple(a for a in self.addresses if parse_address(a)[0] == version)


# --- parsing and validation ----------------------------------------------------------------------


class _Reader:
    def __init__(self, doc: SourceDocument) -> None:
        self.doc = doc

    def error(self, message: str, path: Sequence[str | int], fix: str) -> SpecError:
        return SpecError(
            message, file=self.doc.file, path=format_path(path) or None, line=self.doc.line_of(path), fix=fix
        )

    def keys(self, value: Any, path: Sequence[str | int], allowed: Sequence[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(f"expected a mapping, got {type(value).__name__}", path, "write key: value pairs")
        for key in value:
            if key not in allowed:
                raise self.error(f"unknown field {key!r}", (*path, str(key)), f"known fields: {', '.join(allowed)}")
        return value

    def string(self, value: Any, path: Sequence[str | int], pattern: re.Pattern[str], *, limit: int, what: str) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value) or len(value) > limit:
            raise self.error(
                f"{value!r} is not a valid {what}",
                path,
                f"use lowercase letters, digits and '-', starting and ending with a letter or digit, "
                f"at most {limit} characters",
            )
        return value

    def port(self, value: Any, path: Sequence[str | int]) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            fix = "use a port from 1 to 65535" if isinstance(value, int) else "write a whole number"
            raise self.error(f"port must be a number from 1 to 65535, got {value!r}", path, fix)
        return value


def parse_external(document: SourceDocument) -> tuple[ExternalService, ...]:
    """Validate an external-services document; every error names the file, line, field and fix."""
    reader = _Reader(document)
    root = reader.keys(document.data, (), ("version", "services"))
    version = root.get("version", EXTERNAL_VERSION)
    if version != EXTERNAL_VERSION:
        raise reader.error(f"unsupported version {version!r}", ("version",), f"write version: {EXTERNAL_VERSION}")
    entries = root.get("services")
    if not isinstance(entries, list) or not entries:
        raise reader.error("'services' must be a non-empty list", ("services",), "list the outside services")
    seen: dict[str, int] = {}
    out = []
    for index, entry in enumerate(entries):
        service = _entry(reader, entry, ("services", index))
        if service.key in seen:
            raise reader.error(
                f"{service.key} is listed twice (also services[{seen[service.key]}])",
                ("services", index, "name"),
                "give each service its own name, or merge the entries",
            )
        seen[service.key] = index
        out.append(service)
    return tuple(sorted(out, key=lambda s: (s.namespace, s.name)))


def _entry(reader: _Reader, value: Any, path: tuple[str | int, ...]) -> ExternalService:
    entry = reader.keys(value, path, ENTRY_KEYS)
    if "name" not in entry:
        raise reader.error("a service needs a name", path, "add name: <service-name>")
    name = reader.string(entry["name"], (*path, "name"), _DNS1035, limit=63, what="Service name (DNS-1035 label)")
    namespace = reader.string(
        entry.get("namespace", "default"), (*path, "namespace"), _DNS1123_LABEL, limit=63, what="namespace name"
    )
    external_name = entry.get("externalName")
    addresses_value = entry.get("addresses")
    if (external_name is None) == (addresses_value is None):
        raise reader.error(
            "a service needs either addresses or externalName (not both)",
            path,
            "list the hosts' IP addresses, or give externalName: a DNS name",
        )
    affinity = entry.get("sessionAffinity")
    if affinity is not None and affinity not in AFFINITIES:
        raise reader.error(f"unknown sessionAffinity {affinity!r}", (*path, "sessionAffinity"), "use None or ClientIP")
    ports = _ports(reader, entry.get("ports"), (*path, "ports"), required=external_name is None)
    if external_name is not None:
        if affinity == "ClientIP":
            raise reader.error(
                "sessionAffinity has no effect on an ExternalName Service (it is only a DNS CNAME)",
                (*path, "sessionAffinity"),
                "remove sessionAffinity, or list addresses instead of externalName",
            )
        for i, port in enumerate(ports):
            if port.target_port != port.port:
                raise reader.error(
                    "an ExternalName Service maps no ports (DNS only): targetPort must equal port",
                    (*path, "ports", i, "targetPort"),
                    "drop targetPort; clients connect to the outside port directly",
                )
        return ExternalService(
            name=name, namespace=namespace, ports=ports, external_name=_dns_name(reader, external_name, path)
        )
    return ExternalService(
        name=name,
        namespace=namespace,
        ports=ports,
        addresses=_addresses(reader, addresses_value, (*path, "addresses")),
        session_affinity=affinity,
    )


def _dns_name(reader: _Reader, value: Any, path: tuple[str | int, ...]) -> str:
    where = (*path, "externalName")
    text = value.rstrip(".") if isinstance(value, str) else None
    labels = text.split(".") if text else []
    if not text or len(text) > 253 or not all(_DNS1123_LABEL.fullmatch(label) and len(label) <= 63 for label in labels):
        raise reader.error(f"{value!r} is not a valid DNS name", where, "write a lowercase name like db.example.com")
    try:
        parse_address(text)
    except SpecError:
        return text
    raise reader.error(
        f"externalName {value!r} is an IP address; an ExternalName is a DNS name (a CNAME)",
        where,
        "use addresses: [IP] instead, which gives a selectorless Service with an EndpointSlice",
    )


def _addresses(reader: _Reader, value: Any, path: tuple[str | int, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise reader.error("addresses must be a non-empty list of IP addresses", path, "write [192.168.26.81, ...]")
    out: list[str] = []
    for i, item in enumerate(value):
        try:
            version, number = parse_address(str(item)) if isinstance(item, str) else (0, 0)
        except SpecError:
            version, number = 0, 0
        if version == 0:
            raise reader.error(f"{item!r} is not an IP address", (*path, i), "write an IPv4 or IPv6 address")
        for bad in _FORBIDDEN:
            if bad.contains_address(version, number):
                raise reader.error(
                    f"{item} is in {bad}, which Kubernetes refuses as an endpoint address",
                    (*path, i),
                    "use the host's routable address",
                )
        address = canonical_address(str(item))
        if address in out:
            raise reader.error(f"{address} is listed twice", (*path, i), "list each address once")
        out.append(address)
    return tuple(out)


_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _qualified_name(text: str) -> bool:
    """Kubernetes' qualified name: ``name`` or ``dns.prefix/name``, name at most 63 characters."""
    prefix, slash, name = text.rpartition("/")
    if slash and not (prefix and len(prefix) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= 63 and bool(_QUALIFIED_NAME.fullmatch(name))


def _ports(reader: _Reader, value: Any, path: tuple[str | int, ...], *, required: bool) -> tuple[ServicePort, ...]:
    if value is None:
        if required:
            raise reader.error(
                "a Service with addresses needs ports", path, "add ports: [{port: 80, targetPort: 8080}]"
            )
        return ()
    if not isinstance(value, list) or (required and not value):
        raise reader.error("ports must be a list", path, "write ports: [{port: 80, targetPort: 8080}]")
    out: list[ServicePort] = []
    for index, item in enumerate(value):
        where = (*path, index)
        entry = reader.keys(item, where, PORT_KEYS)
        if "port" not in entry:
            raise reader.error("a port needs 'port'", where, "add port: <number>")
        port = reader.port(entry["port"], (*where, "port"))
        target_value = entry.get("targetPort", port)
        if isinstance(target_value, str):
            raise reader.error(
                f"targetPort {target_value!r} is a name; outside hosts have no named container ports",
                (*where, "targetPort"),
                "write the number the outside host listens on",
            )
        target = reader.port(target_value, (*where, "targetPort"))
        protocol = entry.get("protocol", "TCP")
        if protocol not in PROTOCOLS:
            raise reader.error(f"unknown protocol {protocol!r}", (*where, "protocol"), "use TCP, UDP or SCTP")
        name = entry.get("name")
        if name is not None:
            name = reader.string(name, (*where, "name"), _PORT_NAME, limit=15, what="port name (IANA service name)")
            if "--" in name or not re.search("[a-z]", name):
                raise reader.error(
                    f"{name!r} is not a valid port name", (*where, "name"), "use letters and single hyphens, e.g. mysql"
                )
        app = entry.get("appProtocol")
        if app is not None and (not isinstance(app, str) or not _qualified_name(app)):
            # The API server validates appProtocol as a qualified name and would refuse the Service
            # only after apply has started.
            raise reader.error(
                f"appProtocol {app!r} is not a valid protocol name",
                (*where, "appProtocol"),
                "e.g. http, or kubernetes.io/h2c",
            )
        out.append(ServicePort(port=port, target_port=target, protocol=protocol, name=name, app_protocol=app))
    if len(out) > 1:
        for i, item_port in enumerate(out):
            if item_port.name is None:
                raise reader.error(
                    "with several ports every port needs a name", (*path, i, "name"), "add name: <lowercase-name>"
                )
    names = [p.name for p in out if p.name]
    for i, item_port in enumerate(out):
        if item_port.name and names.count(item_port.name) > 1:
            raise reader.error(
                f"port name {item_port.name!r} is used twice", (*path, i, "name"), "give each port its own name"
            )
        if sum(1 for p in out if (p.port, p.protocol) == (item_port.port, item_port.protocol)) > 1:
            raise reader.error(
                f"port {item_port.port}/{item_port.protocol} is listed twice", (*path, i, "port"), "list each port once"
            )
    return tuple(out)
