"""Scenario A end to end: ``bgpflat lab up``, ``lab check -o json`` and ``lab down`` for ``labs/edge-node``.

Through the CLI, as a user runs it. ``up`` builds the office as it was: the router's dnsmasq as
DHCP server and as the office's upstream DNS, and ISC dhclient on the developer host, which must
hold the reserved address with the router as its resolver. ``check`` renders the setup with
``bgpflat render`` (DHCP options, two Corefiles for real CoreDNS, NAT, static routes), installs
it, and must see the pods reached with NAT (client: the edge node) and with plain routing
(client: the developer host), ``http://whoami`` by short name through the DHCP search domain,
and the outside name answered by the office upstream without a query at the cluster DNS; then
revert, after which nothing answers. With the developer pointed at the edge node itself (the CDN
problem), the outside-name step fails: the name gets the cluster DNS's answer. A lab whose DHCP
client died fails ``lab healthy`` (exit 1).
``down`` leaves no namespace, process or file behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_lab_cli import _namespaces_with_prefix, _recorded, bgpflat, skip_unless_control_plane_can_run
from test_lab_flat import skip_unless_lab_can_run

from bgpflat.errors import LabError
from bgpflat.lab.fabric.lifecycle import Lab
from bgpflat.lab.fabric.netns import wait_for
from bgpflat.lab.processes import process_start_time
from bgpflat.lab.setups import edge_node
from bgpflat.lab.setups.edge_check import EdgeNodeCheck
from bgpflat.lab.setups.edge_node import COREDNS_CACHE, DHCP_CLIENT

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

STEPS = [
    "lab healthy",
    "unreachable before",
    "render",
    "dhcp",
    "install",
    "nat: http pod IP",
    "nat: http cluster IP",
    "nat: http name",
    "outside name",
    "routed: no nat",
    "routed: http pod IP",
    "routed: http cluster IP",
    "routed: http name",
    "revert",
    "unreachable after",
]
EDGE_NODE = "10.2.1.4"
DEVELOPER = "192.168.1.2"


def _skip_unless_setup_can_run() -> None:
    skip_unless_lab_can_run()
    skip_unless_control_plane_can_run()
    missing = [b for b in ("dhclient", "dhclient-script") if shutil.which(b) is None]
    if shutil.which("coredns") is None and not (COREDNS_CACHE / "coredns").exists():
        missing.append(f"coredns ({COREDNS_CACHE})")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the edge-node lab needs {', '.join(missing)}; .ci/run installs them", pytrace=False)
        pytest.skip(f"the edge-node lab needs {', '.join(missing)} (isc-dhcp-client; CoreDNS built as .ci/run does)")


def test_edge_node_up_check_down(tmp_path: Path) -> None:
    _skip_unless_setup_can_run()
    state_dir = tmp_path / "lab"
    up = bgpflat("lab", "up", "edge-node", "--state-dir", str(state_dir))
    recorded: dict[str, Any] = {}
    try:
        assert up.returncode == 0, f"lab up failed:\n{up.stderr}"
        recorded = _recorded(state_dir)
        names = {name for name, *_ in recorded["processes"]}
        assert {"dns:upstream", "dhcp:office", DHCP_CLIENT, "bird:node1", "bird:node2"} <= names
        assert not {"zebra", "bgpd", "peer"} & names  # no BGP towards the office
        assert not {"coredns:edge", "coredns:office"} & names  # the setup is the check's to install
        developer = f"{recorded['prefix']}developer"
        resolv = Path("/etc/netns") / developer / "resolv.conf"
        # Written by dhclient-script from the lease, through the bind mount of `ip netns exec`.
        assert resolv.read_text().splitlines()[-1] == "nameserver 192.168.1.1"

        check = bgpflat("lab", "check", "edge-node", "--state-dir", str(state_dir), "-o", "json")
        report = json.loads(check.stdout or "{}")
        assert check.returncode == 0, (
            f"lab check failed at {report.get('failed_step')}:\n{check.stdout}\n{check.stderr}"
        )
        steps = {s["name"]: s for s in report["steps"]}
        assert list(steps) == STEPS and report["passed"]
        assert "search default.svc.cluster.local." in steps["dhcp"]["detail"]
        assert "nameserver 192.168.1.53" in steps["dhcp"]["detail"]
        assert f"client {EDGE_NODE}" in steps["nat: http pod IP"]["detail"]
        assert f"client {DEVELOPER}" in steps["routed: http pod IP"]["detail"]
        outside = steps["outside name"]["detail"]
        assert "cdn.example.com → 192.0.2.80" in outside and "goes to the cluster DNS (203.0.113.80)" in outside
        assert "GET http://whoami/ → 200" in steps["routed: http name"]["detail"]
        print(f"\nedge-node: lab up {report['lab_up_seconds']:.1f} s; check {report['total_seconds']:.1f} s")
        # After the revert the lease is the office's own again: the router, no search domain.
        assert [line for line in resolv.read_text().splitlines() if not line.startswith("#")] == [
            "nameserver 192.168.1.1"
        ]

        # The CDN problem: office machines that use the edge node itself as resolver (the setup
        # before its second-level refinement) send public names into the cluster. The check's
        # outside-name step must catch that: the name gets the cluster DNS's answer (the cloud's
        # view of a CDN), not the office's.
        lab = Lab.attach(state_dir)
        fabric = lab.fabric()
        edge_node.start_coredns(fabric, edge_node.EDGE_DNS, "node-node1", state_dir / "check/office/edge-node.Corefile")
        probe = EdgeNodeCheck(lab)
        wait_for(lambda: probe._answers(EDGE_NODE, "whoami.default.svc.cluster.local")[0], timeout=30, what="CoreDNS")
        resolv.write_text(f"nameserver {EDGE_NODE}\nsearch default.svc.cluster.local\n")
        cluster_log = edge_node.cluster_dns_log(fabric)
        seen = edge_node.queries_seen(cluster_log, "cdn.example.com")
        with pytest.raises(
            LabError, match=r"cdn\.example\.com resolved to \['203\.0\.113\.80'\] .*through the edge node"
        ):
            probe._outside_name(EDGE_NODE)
        assert edge_node.queries_seen(cluster_log, "cdn.example.com") > seen
        fabric.netns.stop([edge_node.EDGE_DNS])

        # The check restarted the DHCP server and client (new PIDs): what `down` must stop now.
        started = recorded["processes"]
        recorded = _recorded(state_dir)
        recorded["processes"] = sorted(set(started) | set(recorded["processes"]))
        # The developer's laptop drops off the network: the check fails at once, naming the step.
        _name, pid, start, _ns = next(p for p in _recorded(state_dir)["processes"] if p[0] == DHCP_CLIENT)
        if process_start_time(pid) == start:
            os.kill(pid, 15)
        broken = bgpflat("lab", "check", "edge-node", "--state-dir", str(state_dir), "-o", "json")
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert json.loads(broken.stdout)["failed_step"] == "lab healthy"
        assert DHCP_CLIENT in json.loads(broken.stdout)["steps"][0]["detail"]
    finally:
        down = bgpflat("lab", "down", "edge-node", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr

    assert _namespaces_with_prefix(str(recorded["prefix"])) == []
    alive = [(n, pid) for n, pid, start, _ns in recorded["processes"] if process_start_time(pid) == start]
    assert alive == []
    assert [p for p in recorded["paths"] if Path(p).exists()] == []
    assert not list(Path("/etc").glob("resolv.conf.dhclient-new.*"))  # dhclient-script's temporary file
    assert not state_dir.exists()
