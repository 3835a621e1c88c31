"""Outside services inside the cluster (scenario E): selectorless Services with EndpointSlices.

Once the networks are flat, pods reach office hosts directly; an external-services file gives those
hosts stable in-cluster names. Each entry becomes either

* a **selectorless Service** plus one **EndpointSlice** per IP family (labelled
  ``kubernetes.io/service-name``; the EndpointSlice controller leaves slices managed by someone
  else alone), or, for clusters older than Kubernetes 1.21, an **Endpoints** object instead; or
* an **ExternalName Service** (a CNAME in cluster DNS: no cluster IP, no proxying, no port mapping).

File format (``labs/external/services.yaml``)::

    version: 1
    services:
      - name: external-service          # DNS-1035 label
        namespace: default
        ports:
          - {name: mysql, port: 30056, targetPort: 3306, protocol: TCP, appProtocol: http}
        addresses: [192.168.26.81, 192.168.26.82]
        sessionAffinity: ClientIP       # optional: pin a client to one address
      - name: docs
        namespace: default
        externalName: docs.example.com

``make_external_plan(desired=…, observed=…)`` compares the desired manifests with what the cluster
holds (a mapping from object key to the object as served, or None) and returns create/update/no-op
changes, Services first; objects not labelled ``app.kubernetes.io/managed-by: bgpflat`` are never
taken over.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from bgpflat.core.calico import format_path
from bgpflat.core.net.prefixes import Prefix, canonical_address, parse_address
from bgpflat.errors import PlanError, SpecError

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "bgpflat"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Any value but "endpointslice-controller.k8s.io" keeps the controller's hands off the slice.
SLICE_MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "bgpflat"
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


# --- manifests -----------------------------------------------------------------------------------


def _labels(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, **(extra or {})}


def service_manifest(service: ExternalService) -> dict[str, Any]:
    spec: dict[str, Any]
    ports = []
    for p in service.ports:
        entry: dict[str, Any] = {}
        if p.name:
            entry["name"] = p.name
        entry["protocol"] = p.protocol
        entry["port"] = p.port
        if service.external_name is None:
            entry["targetPort"] = p.target_port
        if p.app_protocol:
            entry["appProtocol"] = p.app_protocol
        ports.append(entry)
    if service.external_name is not None:
        spec = {"type": "ExternalName", "externalName": service.external_name}
        if ports:
            spec["ports"] = ports
    else:
        families = [f"IPv{v}" for v in (4, 6) if service.family_addresses(v)]
        spec = {"type": "ClusterIP", "ports": ports, "sessionAffinity": service.session_affinity or "None"}
        if len(families) > 1:
            spec["ipFamilyPolicy"] = "PreferDualStack"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service.name, "namespace": service.namespace, "labels": _labels()},
        "spec": spec,
    }


def slice_name(service: ExternalService, version: int) -> str:
    return f"{service.name}-ipv{version}"


def endpoint_slice_manifests(service: ExternalService) -> list[dict[str, Any]]:
    out = []
    for version in (4, 6):
        addresses = service.family_addresses(version)
        if not addresses:
            continue
        ports = []
        for p in service.ports:
            entry: dict[str, Any] = {"name": p.name or "", "protocol": p.protocol, "port": p.target_port}
            if p.app_protocol:
                entry["appProtocol"] = p.app_protocol
            ports.append(entry)
        out.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": slice_name(service, version),
                    "namespace": service.namespace,
                    "labels": _labels({SERVICE_NAME_LABEL: service.name, SLICE_MANAGED_BY_LABEL: SLICE_MANAGER}),
                },
                "addressType": f"IPv{version}",
                "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses],
                "ports": ports,
            }
        )
    return out


def endpoints_manifest(service: ExternalService) -> dict[str, Any]:
    """The pre-1.21 form: one Endpoints object named like the Service."""
    ports = []
    for p in service.ports:
        entry: dict[str, Any] = {"protocol": p.protocol, "port": p.target_port}
        if p.name:
            entry["name"] = p.name
        if p.app_protocol:
            entry["appProtocol"] = p.app_protocol
        ports.append(entry)
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": service.name, "namespace": service.namespace, "labels": _labels()},
        "subsets": [{"addresses": [{"ip": a} for a in service.addresses], "ports": ports}],
    }


def desired_manifests(services: Sequence[ExternalService], *, legacy_endpoints: bool = False) -> list[dict[str, Any]]:
    """Every object the file asks for: Services first, then EndpointSlices (or Endpoints)."""
    out = [service_manifest(s) for s in services]
    for service in services:
        if service.external_name is not None:
            continue
        out.extend([endpoints_manifest(service)] if legacy_endpoints else endpoint_slice_manifests(service))
    return out


def object_key(manifest: Mapping[str, Any]) -> str:
    meta = manifest.get("metadata") or {}
    return f"{manifest.get('kind')}/{meta.get('namespace', '')}/{meta.get('name', '')}"


# --- plan ----------------------------------------------------------------------------------------

# The fields bgpflat owns per kind: compared, and written on update; everything else is the server's.
OWNED: Mapping[str, tuple[str, ...]] = {
    "Service": ("spec.type", "spec.ports", "spec.externalName", "spec.sessionAffinity", "spec.selector"),
    "EndpointSlice": ("addressType", "endpoints", "ports"),
    "Endpoints": ("subsets",),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalChange:
    action: str  # create | update | delete | no-op
    key: str
    manifest: Mapping[str, Any]  # the desired object (create) or the merge patch body (update)
    fields: tuple[str, ...] = ()
    resource_version: str | None = None

    @property
    def kind(self) -> str:
        return self.key.split("/", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "key": self.key,
            "fields": list(self.fields),
            "resource_version": self.resource_version,
            "manifest": self.manifest,
        }


PLAN_KIND = "bgpflat-external-plan"
PLAN_FORMAT_VERSION = 1
ACTIONS = ("create", "update", "delete", "no-op")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalPlan:
    """The changes, plus what a saved plan needs to be applied safely later.

    ``observed`` holds every object the plan was made from, by key, with the resourceVersion it had
    (None: it did not exist); ``apply`` of a saved plan re-reads them and refuses if any moved.
    ``target`` names the cluster (context, server, clusterID) the plan was made against.
    """

    changes: tuple[ExternalChange, ...]
    observed: Mapping[str, str | None] = field(default_factory=dict)
    target: Mapping[str, str] = field(default_factory=dict)
    legacy_endpoints: bool = False
    prune: bool = False

    @property
    def has_changes(self) -> bool:
        return any(c.action != "no-op" for c in self.changes)

    def with_target(self, target: Mapping[str, str]) -> ExternalPlan:
        return replace(self, target=dict(target))

    @classmethod
    def from_dict(cls, data: Any) -> ExternalPlan:
        """A saved plan read back; every refusal names the field (the caller adds the file)."""
        if not isinstance(data, Mapping):
            raise PlanError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("kind") != PLAN_KIND:
            raise PlanError(
                f"kind: expected {PLAN_KIND!r}, got {data.get('kind')!r}; this is not a plan saved by "
                "`bgpflat external plan --out` (a Calico plan is applied with `bgpflat apply`)"
            )
        if data.get("format_version") != PLAN_FORMAT_VERSION:
            raise PlanError(
                f"format_version: expected {PLAN_FORMAT_VERSION}, got {data.get('format_version')!r}; "
                "make the plan again with this bgpflat"
            )
        changes = []
        raw_changes = data.get("changes")
        if not isinstance(raw_changes, list):
            raise PlanError("changes: expected a list")
        for index, item in enumerate(raw_changes):
            where = f"changes[{index}]"
            if not isinstance(item, Mapping):
                raise PlanError(f"{where}: expected an object")
            action, key, manifest = item.get("action"), item.get("key"), item.get("manifest")
            if action not in ACTIONS:
                raise PlanError(f"{where}.action: expected one of {', '.join(ACTIONS)}, got {action!r}")
            if not isinstance(key, str) or key.count("/") != 2 or key.split("/", 1)[0] not in OWNED:
                raise PlanError(f"{where}.key: expected Kind/namespace/name for a Service, EndpointSlice or Endpoints")
            if not isinstance(manifest, Mapping):
                raise PlanError(f"{where}.manifest: expected an object")
            fields = item.get("fields", [])
            rv = item.get("resource_version")
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                raise PlanError(f"{where}.fields: expected a list of strings")
            if rv is not None and not isinstance(rv, str):
                raise PlanError(f"{where}.resource_version: expected a string or null")
            if action == "update" and rv is None:
                raise PlanError(f"{where}.resource_version: an update needs the version it was planned against")
            changes.append(
                ExternalChange(action=action, key=key, manifest=manifest, fields=tuple(fields), resource_version=rv)
            )
        observed = data.get("observed")
        if not isinstance(observed, Mapping) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in observed.items()
        ):
            raise PlanError("observed: expected an object of key -> resourceVersion (or null)")
        missing = sorted({c.key for c in changes} - set(observed))
        if missing:
            raise PlanError(f"observed: no recorded version for {', '.join(missing)}")
        target = data.get("target")
        if not isinstance(target, Mapping) or not all(isinstance(v, str) for v in target.values()):
            raise PlanError("target: expected an object with context, server and clusterID")
        return cls(
            changes=tuple(changes),
            observed=dict(observed),
            target=dict(target),
            legacy_endpoints=bool(data.get("legacy_endpoints", False)),
            prune=bool(data.get("prune", False)),
        )

    def summary(self) -> str:
        add = sum(1 for c in self.changes if c.action == "create")
        change = sum(1 for c in self.changes if c.action == "update")
        delete = sum(1 for c in self.changes if c.action == "delete")
        return f"Plan: {add} to add, {change} to change, {delete} to delete."

    def to_json(self) -> str:
        body = {
            "kind": PLAN_KIND,
            "format_version": PLAN_FORMAT_VERSION,
            "target": dict(self.target),
            "legacy_endpoints": self.legacy_endpoints,
            "prune": self.prune,
            "observed": dict(sorted(self.observed.items())),
            "changes": [c.to_dict() for c in self.changes],
        }
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    def text(self) -> str:
        symbols = {"create": "+", "update": "~", "delete": "-", "no-op": " "}
        lines = []
        for change in self.changes:
            suffix = f" ({', '.join(change.fields)})" if change.fields else ""
            lines.append(f"{symbols[change.action]} {change.key}{suffix}")
        lines.append(self.summary())
        return "\n".join(lines) + "\n"


def _get(obj: Mapping[str, Any], dotted: str) -> Any:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _normalise(kind: str, path: str, value: Any) -> Any:
    """Server defaults that are not differences (the API fills in protocol, sessionAffinity…)."""
    if value is None and path == "spec.sessionAffinity":
        return "None"
    if kind == "EndpointSlice" and path == "endpoints" and isinstance(value, list):
        return sorted(
            ({"addresses": e.get("addresses"), "ready": (e.get("conditions") or {}).get("ready")} for e in value),
            key=lambda e: json.dumps(e, sort_keys=True),
        )
    if path.endswith("ports") and isinstance(value, list):
        return sorted(
            ({k: v for k, v in p.items() if k not in ("nodePort",)} for p in value if isinstance(p, Mapping)),
            key=lambda p: json.dumps(p, sort_keys=True),
        )
    return value


def _patch_for(kind: str, desired: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    patch: dict[str, Any] = {"metadata": {"labels": dict(desired["metadata"]["labels"])}}
    for path in paths:
        parts = path.split(".")
        target = patch
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = _get(desired, path)
    if kind == "Service" and _get(desired, "spec.type") == "ExternalName":
        # Turning a ClusterIP Service into an ExternalName one must release its cluster IP.
        patch.setdefault("spec", {}).update({"clusterIP": None, "clusterIPs": None})
    return patch


def _version(obj: Mapping[str, Any] | None) -> str | None:
    if obj is None:
        return None
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return None if rv is None else str(rv)


def _managed(obj: Mapping[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY


def make_external_plan(
    *,
    desired: Sequence[Mapping[str, Any]],
    observed: Mapping[str, Mapping[str, Any] | None],
    related: Sequence[Mapping[str, Any]] = (),
    managed_services: Sequence[Mapping[str, Any]] | None = None,
    legacy_endpoints: bool = False,
) -> ExternalPlan:
    """Create what is missing, update owned fields that differ; refuse objects someone else owns.

    ``related`` are the endpoint objects the cluster holds for the Services concerned (EndpointSlices
    labelled with their names, Endpoints named like them); those bgpflat manages but the file no
    longer asks for (an address family dropped, a Service turned ExternalName) are deleted, last.
    ``managed_services`` (prune) are the Services labelled as bgpflat's anywhere in the cluster:
    those the file no longer lists are deleted after their endpoint objects, so no orphan remains.
    """
    changes = []
    wanted = {object_key(m) for m in desired}
    seen: dict[str, str | None] = {key: _version(obj) for key, obj in observed.items()}
    stale = []
    for obj in related:
        key = object_key(obj)
        seen.setdefault(key, _version(obj))
        if key in wanted or not _managed(obj):
            continue
        stale.append(ExternalChange(action="delete", key=key, manifest={}, resource_version=_version(obj)))
    pruned = []
    for obj in managed_services or ():
        key = object_key({**obj, "kind": "Service"})
        seen.setdefault(key, _version(obj))
        if key in wanted or not _managed(obj):
            continue
        pruned.append(ExternalChange(action="delete", key=key, manifest={}, resource_version=_version(obj)))
    for manifest in desired:
        key = object_key(manifest)
        kind = str(manifest["kind"])
        current = observed.get(key)
        if current is None:
            changes.append(ExternalChange(action="create", key=key, manifest=manifest))
            continue
        labels = (current.get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
            raise PlanError(
                f"{key} exists and is not managed by bgpflat "
                f"(label {MANAGED_BY_LABEL}={labels.get(MANAGED_BY_LABEL)!r}); bgpflat will not take it over "
                "(fix: rename the entry, or delete or label that object yourself)"
            )
        differing = [
            path
            for path in OWNED[kind]
            if _normalise(kind, path, _get(manifest, path)) != _normalise(kind, path, _get(current, path))
        ]
        if differing:
            changes.append(
                ExternalChange(
                    action="update",
                    key=key,
                    manifest=_patch_for(kind, manifest, differing),
                    fields=tuple(differing),
                    resource_version=_version(current),
                )
            )
        else:
            changes.append(ExternalChange(action="no-op", key=key, manifest=manifest))
    return ExternalPlan(
        changes=(*changes, *sorted(stale, key=lambda c: c.key), *sorted(pruned, key=lambda c: c.key)),
        observed=seen,
        legacy_endpoints=legacy_endpoints,
        prune=managed_services is not None,
    )


def moved_since(plan: ExternalPlan, current: Mapping[str, str | None]) -> list[str]:
    """What changed in the cluster since ``plan`` was made: one line per object, by key.

    ``current`` maps every key of ``plan.observed`` to its resourceVersion now (None: absent).
    """
    out = []
    for key, planned in sorted(plan.observed.items()):
        now = current.get(key)
        if planned == now:
            continue
        if planned is None:
            out.append(f"{key} was created since the plan")
        elif now is None:
            out.append(f"{key} was deleted since the plan")
        else:
            out.append(f"{key} resourceVersion {planned} -> {now}")
    return out
