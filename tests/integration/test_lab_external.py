"""Scenario E in the lab: ``bgpflat external`` against the lab's API server, then DNS and traffic.

The forwarding-node lab has an office host ``office-db`` (192.168.1.50) serving HTTP on 3306.
With the office side installed (static routes + NAT, so office and pods reach each other),
``bgpflat external apply -f labs/forwarding-node/external.yaml`` stores a selectorless Service
with an EndpointSlice for that host and an ExternalName Service. The lab's follower feeds them to
the cluster DNS and the DNAT rules, as CoreDNS and kube-proxy would. Then:

* the Service and its EndpointSlice are in the API server as written;
* ``external-service.default.svc.cluster.local`` resolves to the Service's cluster IP, from a pod
  (cluster DNS) and from the office host (office resolver → node-30's DNS);
* a pod's ``http://external-service:30056/`` is answered by the office host (DNAT to the
  EndpointSlice address, port 3306), and so is the office host's request by name;
* ``office-wiki.default.svc.cluster.local`` is a CNAME to the ExternalName.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rawapi import raw_api
from test_lab_cli import bgpflat, skip_unless_control_plane_can_run
from test_lab_flat import skip_unless_lab_can_run, wait_until

from bgpflat.lab.fabric import office
from bgpflat.lab.fabric.flatlab import FlatLab
from bgpflat.lab.fabric.lifecycle import Lab, down
from bgpflat.lab.fabric.netns import ns_argv, run

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
SERVICES = REPO / "labs" / "forwarding-node" / "external.yaml"
NAME = "external-service.default.svc.cluster.local"
WIKI = "office-wiki.default.svc.cluster.local"
OUTSIDE_HOST = "192.168.1.50"
POD = "pod-default-whoami-5f8c7d6b9-x2m4q"  # on node-31
KUBE_DNS = "10.96.0.10"

# A stdlib DNS query run inside a lab namespace: prints the answer section as JSON.
DNS_QUERY = r"""
import json, socket, struct, sys
server, name, qtype = sys.argv[1], sys.argv[2], int(sys.argv[3])
query = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", qtype, 1)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(2)
sock.sendto(query, (server, 53))
data = sock.recv(4096)
def read_name(off):
    labels = []
    while True:
        length = data[off]
        if length == 0:
            return ".".join(labels), off + 1
        if length >= 192:
            pointer = struct.unpack(">H", data[off:off + 2])[0] & 0x3FFF
            labels.append(read_name(pointer)[0])
            return ".".join(labels), off + 2
        labels.append(data[off + 1:off + 1 + length].decode())
        off += 1 + length
answers = struct.unpack(">H", data[6:8])[0]
off = read_name(12)[1] + 4
out = []
for _ in range(answers):
    owner, off = read_name(off)
    rtype, _, _, length = struct.unpack(">HHIH", data[off:off + 10])
    off += 10
    if rtype == 1:
        out.append([owner, "A", socket.inet_ntoa(data[off:off + length])])
    elif rtype == 5:
        out.append([owner, "CNAME", read_name(off)[0]])
    off += length
print(json.dumps(out))
"""


def dns(fabric: FlatLab, role: str, server: str, name: str, qtype: int = 1) -> list[list[str]]:
    argv = ns_argv(fabric.namespace(role), [sys.executable, "-I", "-c", DNS_QUERY, server, name, str(qtype)])
    output = run(argv, check=False)
    try:
        return list(json.loads(output))
    except json.JSONDecodeError:
        return []


def api_get(lab: Lab, path: str) -> dict[str, Any]:
    response = raw_api(lab.control_plane()).request("GET", path)
    assert response.ok, (path, response.status, response.body)
    return dict(response.body)


def test_external_services_resolve_and_reach_the_office_host(tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    skip_unless_control_plane_can_run()
    state_dir = tmp_path / "lab"
    started = time.monotonic()
    lab = Lab.up("forwarding-node", state_dir=state_dir)
    try:
        fabric = lab.fabric()
        configs = office.render(lab, tmp_path / "office")
        office.install(fabric, configs)

        result = bgpflat(
            "external", "apply", "-f", str(SERVICES), "--kubeconfig", str(lab.kubeconfig), "--yes",
            "--backup-dir", str(tmp_path / "backups"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        service = api_get(lab, "/api/v1/namespaces/default/services/external-service")
        assert "selector" not in service["spec"]
        cluster_ip = service["spec"]["clusterIP"]
        slice_ = api_get(lab, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/external-service-ipv4")
        assert [e["addresses"] for e in slice_["endpoints"]] == [[OUTSIDE_HOST]]
        assert slice_["ports"][0]["port"] == 3306

        # The follower picks the objects up: cluster DNS answers with the cluster IP.
        expected = [[NAME, "A", cluster_ip]]
        wait_until(lambda: dns(fabric, POD, KUBE_DNS, NAME) == expected, timeout=15, what="the cluster DNS")
        assert dns(fabric, "developer", fabric.topology.office.resolver, NAME) == expected
        wait_until(
            lambda: dns(fabric, POD, KUBE_DNS, WIKI) == [[WIKI, "CNAME", "wiki.office.example.com"]],
            timeout=15,
            what="the ExternalName CNAME",
        )

        # A pod reaches the office host by the Service's short name (its search path), port 30056.
        answer = wait_until(
            lambda: (a := fabric.http_get(POD, "http://external-service:30056/")).ok and a,
            timeout=15,
            what="the pod to reach the office host through the Service",
        )
        assert "Hostname: office-db" in answer.body
        # natOutgoing: the office host sees the pod's node, not the pod.
        assert "RemoteAddr: 10.60.20.31" in answer.body
        # The office host itself, by name through the office resolver and node-30.
        answer = fabric.http_get("developer", f"http://{NAME}:30056/")
        assert answer.ok and "Hostname: office-db" in answer.body, answer
        print(f"\nexternal in the lab: {time.monotonic() - started:.1f} s from lab up to the last probe")
        office.remove(fabric, configs)
    finally:
        down(state_dir)
    assert not state_dir.exists()
