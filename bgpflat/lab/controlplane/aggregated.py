"""Calico's own API server, aggregated behind the lab's kube-apiserver (``--calico-api apiserver``).

Operator-managed clusters before Calico v3.32 serve ``projectcalico.org/v3`` through this server:
kube-apiserver's aggregator forwards ``/apis/projectcalico.org/v3`` to it, and it stores the objects
in the ``crd.projectcalico.org/v1`` CRDs after running Calico's validation and defaulting. The lab
wires it as a cluster does:

* an ``APIService`` ``v3.projectcalico.org`` pointing at Service ``calico-apiserver/calico-api``;
* Endpoints (and an EndpointSlice) for that Service with the server's address. Kubernetes refuses
  loopback and link-local endpoint addresses, so the server runs inside a network namespace that
  this module creates, joined to the host by a veth pair on a /30 of 198.18.0.0/15 (the benchmarking
  range: never routed anywhere). kube-apiserver reaches it with ``--enable-aggregator-routing`` (no
  kube-proxy runs to make the Service's cluster IP work) and it reaches kube-apiserver back on the
  host end of the pair;
* front-proxy (request-header) certificates, so that the aggregator can say on whose behalf it calls.
"""

from __future__ import annotations

import base64
import ipaddress
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgpflat.errors import LabError

NAMESPACE = "calico-apiserver"
SERVICE = "calico-api"
SERVICE_DNS = f"{SERVICE}.{NAMESPACE}.svc"
GROUP_VERSION = "projectcalico.org/v3"
APISERVICE_NAME = "v3.projectcalico.org"
_RANGE = ipaddress.ip_network("198.18.0.0/15")


@dataclass(frozen=True, slots=True)
class Link:
    """The namespace the Calico API server runs in and the veth pair that reaches it."""

    netns: str
    host_veth: str
    host_address: str
    address: str
    """The Calico API server's address inside ``netns`` (what the Endpoints name)."""


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    ip = shutil.which("ip")
    if ip is None:
        raise LabError("the ip command (iproute2) is needed to run Calico's API server in a network namespace")
    return subprocess.run([ip, *args], capture_output=True, text=True)


def _run_ip(*args: str) -> None:
    proc = _ip(*args)
    if proc.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")


def plan_link(state_dir: Path) -> Link:
    """Names and addresses for the control plane in ``state_dir``: stable for it, apart from others'."""
    tag = f"{zlib.crc32(str(state_dir.resolve()).encode()):08x}"
    used = _ip("-o", "addr", "show").stdout
    slots = _RANGE.num_addresses // 4
    for attempt in range(slots):
        base = _RANGE.network_address + 4 * ((int(tag, 16) + attempt) % slots)
        host, inside = str(base + 1), str(base + 2)
        if f" {host}/" not in used:
            return Link(netns=f"bgpflat-api-{tag}", host_veth=f"bfa{tag}", host_address=host, address=inside)
    raise LabError("no free /30 left in 198.18.0.0/15 for the Calico API server's network namespace")


def create_link(link: Link) -> None:
    """The namespace, the veth pair and both addresses; removed again by ``delete_link``."""
    _run_ip("netns", "add", link.netns)
    inside = f"bfb{link.host_veth[3:]}"
    try:
        _run_ip("link", "add", link.host_veth, "type", "veth", "peer", "name", inside, "netns", link.netns)
        _run_ip("addr", "add", f"{link.host_address}/30", "dev", link.host_veth)
        _run_ip("link", "set", link.host_veth, "up")
        _run_ip("-n", link.netns, "addr", "add", f"{link.address}/30", "dev", inside)
        _run_ip("-n", link.netns, "link", "set", inside, "up")
        _run_ip("-n", link.netns, "link", "set", "lo", "up")
    except LabError:
        delete_link(link)
        raise


def delete_link(link: Link) -> None:
    """Remove the namespace (its end of the pair goes with it, and so does the host end)."""
    _ip("link", "del", link.host_veth)
    _ip("netns", "del", link.netns)


def in_netns(link: Link, argv: list[str]) -> list[str]:
    """``argv`` run inside the namespace; ``ip netns exec`` execs it, so the PID stays the program's."""
    ip = shutil.which("ip")
    assert ip is not None  # create_link found it
    return [ip, "netns", "exec", link.netns, *argv]


def kube_apiserver_args(*, front_proxy_ca: Path, proxy_cert: Path, proxy_key: Path) -> list[str]:
    """What kube-apiserver needs to aggregate: the request-header CA and its own proxy client certificate."""
    return [
        "--bind-address=0.0.0.0",  # the Calico API server calls back from its namespace
        f"--requestheader-client-ca-file={front_proxy_ca}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--proxy-client-cert-file={proxy_cert}",
        f"--proxy-client-key-file={proxy_key}",
        "--enable-aggregator-routing=true",
    ]


def calico_apiserver_args(*, link: Link, port: int, kubeconfig: Path, cert: Path, key: Path) -> list[str]:
    return [
        f"--secure-port={port}",
        f"--bind-address={link.address}",
        f"--tls-cert-file={cert}",
        f"--tls-private-key-file={key}",
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        # Admission webhooks and policies would call back into the cluster; the lab has none.
        "--enable-validating-admission-policy=false",
        "--disable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook,"
        "ValidatingAdmissionPolicy,MutatingAdmissionPolicy",
    ]


def wiring(*, link: Link, port: int, ca_cert: Path) -> list[dict[str, Any]]:
    """The objects that make kube-apiserver forward ``projectcalico.org/v3`` to the Calico API server."""
    labels = {"kubernetes.io/service-name": SERVICE}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            # No selector: nothing but these objects says where the server is.
            "spec": {"ports": [{"name": "apiserver", "port": 443, "protocol": "TCP", "targetPort": port}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "subsets": [
                {"addresses": [{"ip": link.address}], "ports": [{"name": "apiserver", "port": port, "protocol": "TCP"}]}
            ],
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": f"{SERVICE}-lab", "namespace": NAMESPACE, "labels": labels},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [link.address], "conditions": {"ready": True}}],
            "ports": [{"name": "apiserver", "port": port, "protocol": "TCP"}],
        },
        {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": APISERVICE_NAME},
            "spec": {
                "group": "projectcalico.org",
                "version": "v3",
                "service": {"namespace": NAMESPACE, "name": SERVICE, "port": 443},
                "caBundle": base64.b64encode(ca_cert.read_bytes()).decode(),
                "groupPriorityMinimum": 1500,
                "versionPriority": 200,
            },
        },
    ]


def apiservice_available(status: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether the APIService's ``Available`` condition is True, and its message when not."""
    for condition in ((status or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Available":
            return condition.get("status") == "True", str(condition.get("message") or condition.get("reason") or "")
    return False, "no Available condition yet"
