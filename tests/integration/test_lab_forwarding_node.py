"""Scenario C end to end: ``lab up``, ``lab check`` and ``lab down`` for ``labs/forwarding-node``.

No BGP towards the office: the check renders the office side with ``bgpflat render`` against the
lab's API server (static routes via node-30, NAT and forwarding for node-30, dnsmasq lines for
the office DNS 10.60.20.1), installs it, reaches a pod, a cluster IP and ``http://whoami`` from
the office host, removes it and sees reachability go. The office traffic must arrive masqueraded
to node-30's address, and the scenario's example name must resolve through the office resolver.
``down`` then leaves no namespace, process or file behind.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_lab_cli import skip_unless_control_plane_can_run
from test_lab_flat import skip_unless_lab_can_run

from bgpflat.lab.fabric import check, office
from bgpflat.lab.fabric.lifecycle import Lab, down
from bgpflat.lab.fabric.netns import NETNS_ETC, netns_exists, ns_argv, run
from bgpflat.lab.processes import process_start_time

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

STEPS = [
    "lab healthy",
    "unreachable before",
    "render",
    "install",
    "http pod IP",
    "http cluster IP",
    "http name",
    "revert",
    "unreachable after",
]
NODE_30 = "10.60.20.30"
EXAMPLE_NAME = "mysql.projecta-dev1.svc.cluster.local"


def test_forwarding_node_up_check_down(tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    skip_unless_control_plane_can_run()
    state_dir = tmp_path / "lab"
    started = time.monotonic()
    lab = Lab.up("forwarding-node", state_dir=state_dir)
    try:
        up = time.monotonic() - started
        fabric = lab.fabric()
        assert fabric.topology.mode == "static-nat"
        names = {p.name for p in fabric.netns.state.processes}
        # No BGP towards the office: no FRR; the Calico mesh (BIRD per node) still routes pod blocks.
        assert not {"zebra", "bgpd"} & names
        assert {"bird:node-30", "bird:node-31", "bird:node-32"} <= names
        assert "dns:office" not in names  # the office side is the check's to install

        report = check.run_check(lab)
        assert [s.name for s in report.steps] == STEPS, report.to_dict()
        assert report.passed, report.to_dict()
        print(f"\nforwarding-node: lab up {up:.1f} s, check {sum(s.seconds for s in report.steps):.1f} s")

        # The same office side again, to look at what the office host's traffic looks like.
        configs = office.render(lab, tmp_path / "office")
        assert [p for p, _ in configs.routes()] == ["10.244.0.0/24", "10.96.0.0/12"]
        assert {via for _, via in configs.routes()} == {NODE_30}
        assert f"server=/cluster.local/{NODE_30}" in configs.dns.read_text()
        office.install(fabric, configs)
        try:
            answer = fabric.http_get("developer", "http://10.244.0.70/")
            assert answer.ok, answer
            assert f"RemoteAddr: {NODE_30}" in answer.body  # masqueraded by node-30
            resolved = run(ns_argv(fabric.namespace("developer"), ["getent", "hosts", EXAMPLE_NAME]), check=False)
            assert resolved.split()[:2] and resolved.split()[1] == EXAMPLE_NAME, resolved
        finally:
            office.remove(fabric, configs)
        assert not office.installed_routes(fabric)

        prefix = fabric.netns.prefix
        namespaces = list(fabric.netns.state.namespaces)
        processes = [(p.pid, p.start_time) for p in fabric.netns.state.processes]
        outside = list(fabric.netns.state.paths)
    finally:
        down(state_dir)

    assert all(not netns_exists(n) for n in namespaces)
    run_netns = Path("/run/netns")
    assert not any(n.name.startswith(prefix) for n in (run_netns.iterdir() if run_netns.is_dir() else []))
    assert [pid for pid, start in processes if process_start_time(pid) == start] == []
    assert [p for p in outside if Path(p).exists()] == []
    assert not any((NETNS_ETC / n).exists() for n in namespaces)
    assert not state_dir.exists()
