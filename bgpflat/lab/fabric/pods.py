"""Lab pods, wired the way Calico wires a workload.

A pod is a namespace holding its IP as a ``/32`` on ``eth0`` with ``169.254.1.1`` as an on-link
default gateway. The host end of its veth is ``cali<11 hex>`` in the node's namespace, with
``proxy_arp`` on (that is how the pod's ARP for 169.254.1.1 gets answered), ``proxy_delay`` 0 (the
kernel's default 0.8 s shows as a slow first packet; calico/node sets it to 0 too) and a
``/32 dev cali…`` route, which is what Felix programs and BIRD's kernel protocol learns.

Which pods exist comes from the cluster's IPAM: every allocation in an ``IPAMBlock`` whose
attributes name a pod (tunnel addresses are not pods). Which ports a pod serves comes from the
EndpointSlices that list its IP. Every pod serves HTTP (``httpd.py``) on port 80 and on its TCP
endpoint ports; a pod behind a DNS port (53/UDP) is the cluster DNS and gets dnsmasq as well.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgpflat.core.net.prefixes import Prefix, format_address
from bgpflat.lab.fabric.netns import NetnsLab

POD_GATEWAY = "169.254.1.1"
HTTPD = Path(__file__).with_name("httpd.py")
DNS_PORT = 53


@dataclass(frozen=True, slots=True, kw_only=True)
class Pod:
    name: str
    namespace: str
    node: str
    ip: str
    tcp_ports: tuple[int, ...]
    serves_dns: bool

    @property
    def interface(self) -> str:
        """Calico's host-side name: ``cali`` + the first 11 hex digits of a hash of the workload."""
        digest = hashlib.sha1(f"{self.namespace}.{self.name}".encode()).hexdigest()
        return f"cali{digest[:11]}"

    @property
    def http_ports(self) -> tuple[int, ...]:
        return tuple(sorted({80, *(p for p in self.tcp_ports if p != DNS_PORT)}))


def _endpoint_ports(objects: Iterable[Mapping[str, Any]]) -> dict[str, tuple[set[int], bool]]:
    """Pod IP → (TCP ports, serves DNS) from the EndpointSlices listing it."""
    found: dict[str, tuple[set[int], bool]] = {}
    for eps in objects:
        if eps.get("kind") != "EndpointSlice":
            continue
        tcp = {int(p["port"]) for p in eps.get("ports") or () if p.get("port") and p.get("protocol", "TCP") == "TCP"}
        dns = any(p.get("port") == DNS_PORT and p.get("protocol", "TCP") == "UDP" for p in eps.get("ports") or ())
        for endpoint in eps.get("endpoints") or ():
            for address in endpoint.get("addresses") or ():
                ports, serves_dns = found.get(str(address), (set(), False))
                found[str(address)] = (ports | tcp, serves_dns or dns)
    return found


def pods_from_objects(objects: Iterable[Mapping[str, Any]]) -> list[Pod]:
    """Every pod the cluster's IPAM blocks have allocated an IPv4 address to, sorted by IP."""
    objects = list(objects)
    ports = _endpoint_ports(objects)
    pods: dict[str, Pod] = {}
    for block in objects:
        if block.get("kind") != "IPAMBlock":
            continue
        spec = block.get("spec") or {}
        cidr = Prefix.parse(str(spec.get("cidr")), strict=False)
        if cidr.version != 4:
            continue
        affinity = str(spec.get("affinity") or "")
        attributes = spec.get("attributes") or []
        for ordinal, index in enumerate(spec.get("allocations") or []):
            if index is None or not 0 <= int(index) < len(attributes):
                continue
            secondary = attributes[int(index)].get("secondary") or {}
            if not secondary.get("pod"):
                continue  # tunnel addresses and other non-workload allocations
            ip = format_address(4, cidr.value + ordinal)
            node = str(secondary.get("node") or affinity.removeprefix("host:"))
            tcp, dns = ports.get(ip, (set(), False))
            pods[ip] = Pod(
                name=str(secondary["pod"]),
                namespace=str(secondary.get("namespace") or "default"),
                node=node,
                ip=ip,
                tcp_ports=tuple(sorted(tcp)),
                serves_dns=dns,
            )
    return [pods[ip] for ip in sorted(pods, key=lambda a: Prefix.host(a).value)]


def wire_pod(lab: NetnsLab, *, node_ns: str, pod: Pod, role: str) -> str:
    """Create the pod's namespace and its ``cali*`` veth to ``node_ns``; returns the pod namespace."""
    pod_ns = lab.add_netns(role)
    lab.veth(node_ns, pod.interface, pod_ns, "eth0")
    lab.ip(
        pod_ns,
        [
            f"addr add {pod.ip}/32 dev eth0",
            "link set eth0 up",
            f"route add {POD_GATEWAY} dev eth0 scope link",
            f"route add default via {POD_GATEWAY} dev eth0",
        ],
    )
    lab.sysctl(
        node_ns,
        {
            f"net.ipv4.conf.{pod.interface}.proxy_arp": "1",
            f"net.ipv4.neigh.{pod.interface}.proxy_delay": "0",
        },
    )
    lab.ip(node_ns, [f"link set {pod.interface} up", f"route add {pod.ip}/32 dev {pod.interface} scope link"])
    return pod_ns


def start_httpd(lab: NetnsLab, *, pod_ns: str, pod: Pod, log_dir: Path) -> None:
    """The pod's HTTP server, run with this interpreter in ``-I`` mode (stdlib only)."""
    argv = [sys.executable, "-I", str(HTTPD), "--name", pod.name, "--namespace", pod.namespace, "--ip", pod.ip]
    for port in pod.http_ports:
        argv += ["--port", str(port)]
    lab.start(f"httpd:{pod.namespace}/{pod.name}", pod_ns, argv, log=log_dir / f"httpd-{pod.name}.log")
