"""Services in the lab: kube-proxy-like DNAT on every node, cluster DNS, and the office resolver.

* **DNAT** (``render_nftables``): for every Service port with ready endpoints, traffic to the
  cluster IP is DNATed to one endpoint chosen at random (``numgen random``), as kube-proxy's
  nftables mode does, in every node namespace (prerouting for forwarded traffic, output for the
  node's own). Traffic from outside the pod pools is masqueraded after DNAT — kube-proxy does the
  same for off-cluster clients (``--cluster-cidr``) — so that replies return through the node that
  translated them even when the endpoint lives on another node.
* **Cluster DNS** (``cluster_hosts`` + ``cluster_dns_argv``): dnsmasq in the pod that backs the
  kube-dns Service, answering ``<svc>.<ns>.svc.<domain>`` from a hosts file generated from the
  Services (cluster IP, or the ready endpoints of a headless Service), authoritative for the
  cluster domain and forwarding nothing. SIGHUP re-reads the file. ExternalName Services are
  CNAMEs (``cluster_cnames``).
* **Office resolver** (``office_resolver_argv``): dnsmasq running the lines ``bgpflat render dns
  --dnsmasq`` prints, forwarding only the cluster domain (to the kube-dns Service IP, or to a
  forwarding node that exposes it). It has no upstream: lab traffic never leaves the lab's
  namespaces.

A Service's ``externalIPs`` are DNATed like its cluster IP (kube-proxy does the same): that is how
a node exposes the cluster DNS on its own address, port 53 (scenario C).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgpflat.core.net.prefixes import Prefix, format_address
from bgpflat.errors import LabError

NFT_TABLE = "kubeproxy"
CALICO_TABLE = "calico"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_DOMAIN = "cluster.local"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServicePort:
    name: str
    protocol: str
    port: int
    endpoints: tuple[tuple[str, int], ...]  # (pod IP, target port) of ready endpoints


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    namespace: str
    name: str
    cluster_ips: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    headless: bool
    endpoint_ips: tuple[str, ...]
    external_ips: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def services_from_objects(objects: Iterable[Mapping[str, Any]]) -> list[Service]:
    """Services with their cluster IPs and, per port, the ready endpoints from EndpointSlices."""
    objects = list(objects)
    slices: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for eps in objects:
        if eps.get("kind") != "EndpointSlice" or eps.get("addressType", "IPv4") != "IPv4":
            continue
        meta = eps.get("metadata") or {}
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if owner:
            slices.setdefault((str(meta.get("namespace") or "default"), str(owner)), []).append(eps)
    found = []
    for svc in objects:
        if svc.get("kind") != "Service":
            continue
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            continue
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
        ips = [str(ip) for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
        ips = [ip for ip in ips if ":" not in ip]
        headless = spec.get("clusterIP") == "None"
        ports = []
        endpoint_ips: set[str] = set()
        for port in spec.get("ports") or ():
            protocol = str(port.get("protocol") or "TCP")
            port_name = str(port.get("name") or "")
            targets: list[tuple[str, int]] = []
            for eps in slices.get((namespace, name), []):
                slice_port = next(
                    (
                        p
                        for p in eps.get("ports") or ()
                        if str(p.get("name") or "") == port_name and str(p.get("protocol") or "TCP") == protocol
                    ),
                    None,
                )
                for endpoint in eps.get("endpoints") or ():
                    if (endpoint.get("conditions") or {}).get("ready") is False:
                        continue
                    for address in endpoint.get("addresses") or ():
                        endpoint_ips.add(str(address))
                        target = slice_port.get("port") if slice_port else port.get("targetPort", port.get("port"))
                        if isinstance(target, int):
                            targets.append((str(address), target))
            ports.append(
                ServicePort(
                    name=port_name, protocol=protocol, port=int(port["port"]), endpoints=tuple(sorted(set(targets)))
                )
            )
        found.append(
            Service(
                namespace=namespace,
                name=name,
                cluster_ips=tuple(ips),
                ports=tuple(ports),
                headless=headless,
                endpoint_ips=tuple(sorted(endpoint_ips)),
                external_ips=tuple(str(ip) for ip in spec.get("externalIPs") or () if ":" not in str(ip)),
            )
        )
    return sorted(found, key=lambda s: s.key)


def allocate_cluster_ips(objects: Sequence[Mapping[str, Any]], service_range: str) -> list[dict[str, Any]]:
    """Copies of ``objects`` with a cluster IP for every Service that needs one and has none.

    The API server allocates these when a file is loaded into it; the file-backed lab does it
    deterministically instead (lowest free address from .10 on), so runs are reproducible.
    """
    network = Prefix.parse(service_range, strict=False)
    used = set()
    out = [copy.deepcopy(dict(o)) for o in objects]
    for obj in out:
        if obj.get("kind") == "Service":
            ip = (obj.get("spec") or {}).get("clusterIP")
            if ip and ip != "None" and ":" not in str(ip):
                used.add(Prefix.host(str(ip)).value)
    candidate = network.value + 10
    for obj in sorted(
        (o for o in out if o.get("kind") == "Service"),
        key=lambda o: (o["metadata"].get("namespace", "default"), o["metadata"]["name"]),
    ):
        spec = obj.setdefault("spec", {})
        if spec.get("clusterIP") or spec.get("type") == "ExternalName":
            continue
        while candidate in used:
            candidate += 1
        if candidate >= network.last:
            raise LabError(f"service range {service_range} is full")
        spec["clusterIP"] = format_address(4, candidate)
        spec["clusterIPs"] = [spec["clusterIP"]]
        used.add(candidate)
    return out


def _chain_id(index: int) -> str:
    return f"svc_{index}"


def render_nftables(services: Iterable[Service], *, pod_cidrs: Sequence[str], nat_outgoing: Sequence[str] = ()) -> str:
    """An nft script that atomically replaces the ``kubeproxy`` table with the current Services.

    It also replaces the ``calico`` table: Felix's ``natOutgoing``, i.e. traffic from a pool
    with ``natOutgoing: true`` to anywhere outside every pool leaves with the node's address.
    Without it an office host would answer a pod directly, and where the office reaches pods
    through a masquerading forwarding node (scenario C) that answer would be translated there
    and no longer match the connection the pod's node knows.
    """
    dispatch: list[str] = []
    chains: list[str] = []
    index = 0
    for svc in services:
        for port in svc.ports:
            if not port.endpoints or svc.headless:
                continue
            proto = port.protocol.lower()
            if proto not in ("tcp", "udp"):
                continue
            index += 1
            chain = _chain_id(index)
            comment = f'comment "{svc.key}:{port.name or port.port}"'
            for ip in (*svc.cluster_ips, *svc.external_ips):
                dispatch.append(f"    ip daddr {ip} {proto} dport {port.port} jump {chain} {comment}")
            targets = []
            for number, (address, target_port) in enumerate(port.endpoints):
                endpoint_chain = f"{chain}_ep{number}"
                chains.append(
                    f"  chain {endpoint_chain} {{\n    meta l4proto {proto} dnat ip to {address}:{target_port}\n  }}"
                )
                targets.append(f"{number} : jump {endpoint_chain}")
            rule = (
                f"    numgen random mod {len(targets)} vmap {{ {', '.join(targets)} }}"
                if len(targets) > 1
                else f"    {targets[0].split(' : ', 1)[1]}"
            )
            chains.append(f"  chain {chain} {{\n{rule}\n  }}")
    pods = ", ".join(pod_cidrs) if pod_cidrs else "0.0.0.0/32"
    lines = [
        f"table ip {NFT_TABLE}",
        f"delete table ip {NFT_TABLE}",
        f"table ip {NFT_TABLE} {{",
        "  chain services {",
        *dispatch,
        "  }",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        "    jump services",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        "    jump services",
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        f"    ct status dnat ip saddr != {{ {pods} }} masquerade",
        "  }",
        *chains,
        "}",
        f"table ip {CALICO_TABLE}",
        f"delete table ip {CALICO_TABLE}",
    ]
    if nat_outgoing:
        lines += [
            f"table ip {CALICO_TABLE} {{",
            "  chain postrouting {",
            "    type nat hook postrouting priority srcnat; policy accept;",
            f"    ip saddr {{ {', '.join(nat_outgoing)} }} ip daddr != {{ {pods} }} masquerade",
            "  }",
            "}",
        ]
    return "\n".join(lines) + "\n"


def cluster_hosts(services: Iterable[Service], *, domain: str = DEFAULT_DOMAIN) -> str:
    """A hosts file for the cluster DNS: ``<ip> <svc>.<ns>.svc.<domain>`` per Service address."""
    lines: list[str] = []
    for svc in services:
        fqdn = f"{svc.name}.{svc.namespace}.svc.{domain}"
        addresses = svc.endpoint_ips if svc.headless else svc.cluster_ips
        lines.extend(f"{address} {fqdn}" for address in addresses)
    return "\n".join(lines) + ("\n" if lines else "")


def cluster_cnames(objects: Iterable[Mapping[str, Any]], *, domain: str = DEFAULT_DOMAIN) -> list[tuple[str, str]]:
    """(``<svc>.<ns>.svc.<domain>``, target) of every ExternalName Service: DNS-level only, a CNAME."""
    found = []
    for svc in objects:
        spec = svc.get("spec") or {}
        if svc.get("kind") != "Service" or spec.get("type") != "ExternalName" or not spec.get("externalName"):
            continue
        meta = svc.get("metadata") or {}
        fqdn = f"{meta.get('name')}.{meta.get('namespace') or 'default'}.svc.{domain}"
        found.append((fqdn, str(spec["externalName"]).rstrip(".")))
    return sorted(found)


def cname_args(cnames: Iterable[tuple[str, str]]) -> list[str]:
    return [f"--cname={alias},{target}" for alias, target in cnames]


def cluster_dns_argv(
    *,
    listen: str,
    hosts_file: Path,
    domain: str = DEFAULT_DOMAIN,
    cnames: Iterable[tuple[str, str]] = (),
    answers: Iterable[tuple[str, str]] = (),
) -> list[str]:
    """dnsmasq as the cluster DNS: authoritative for ``domain`` from ``hosts_file``, nothing else.

    ExternalName Services are ``--cname`` options (dnsmasq answers those for any target; CoreDNS
    does the same). Unlike the hosts file they are not re-read on SIGHUP: a change of them
    restarts the cluster DNS. ``answers`` (name, address) are outside names it answers itself,
    standing for the cluster's upstream resolver.
    """
    return [
        "dnsmasq",
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        f"--addn-hosts={hosts_file}",
        f"--local=/{domain}/",
        f"--listen-address={listen}",
        "--bind-interfaces",
        "--pid-file=",
        # Stay root: the hosts file is re-read on SIGHUP and may sit in a root-only directory.
        "--user=root",
        "--log-facility=-",
        "--log-queries",
        *(f"--address=/{name}/{address}" for name, address in answers),
        *cname_args(cnames),
    ]


def office_resolver_argv(*, listen: str, conf_file: Path) -> list[str]:
    """dnsmasq as the office resolver: ``conf_file`` (``bgpflat render dns --dnsmasq``), no other upstream.

    The rendered lines forward only the cluster domain; ``--no-resolv`` keeps every other name
    inside the lab instead of the host's resolvers.
    """
    return [
        "dnsmasq",
        "--keep-in-foreground",
        f"--conf-file={conf_file}",
        "--no-resolv",
        "--no-hosts",
        f"--listen-address={listen}",
        "--bind-interfaces",
        "--pid-file=",
        "--user=root",
        "--log-facility=-",
        "--log-queries",
    ]


def kube_dns_address(services: Iterable[Service]) -> str | None:
    """The cluster IP of ``kube-system/kube-dns`` (the conventional name kubelet points pods at)."""
    for svc in services:
        if svc.key == "kube-system/kube-dns" and svc.cluster_ips:
            return svc.cluster_ips[0]
    return None
