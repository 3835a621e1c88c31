"""Scenario B end to end: ``bgpflat lab up|check|down openvpn`` through the command line, as CI runs it.

The check renders the server config, the client profiles, the client's DNS script, the ccd file,
the LAN routes, NAT and the office resolver's lines with ``bgpflat render``, runs a real OpenVPN
server (tun) on node-2 with certificates made at ``up``, connects the developer host across the
internet and the office LAN's VPN client, reaches a pod, a cluster IP and ``http://whoami`` from
both the developer host and an office host without VPN software, sees a public name answered by
the public resolver and never asked of the cluster DNS, then stops it all and sees it go.

Also: pods see the server node's address (its NAT); a check that fails exits 1, names the step
and still takes the VPN down; ``down`` leaves no namespace, process, tun device or file behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_lab_cli import bgpflat, skip_unless_control_plane_can_run
from test_lab_flat import skip_unless_lab_can_run

from bgpflat.lab.fabric.lifecycle import Lab
from bgpflat.lab.fabric.netns import NETNS_ETC, netns_exists, run
from bgpflat.lab.processes import process_start_time
from bgpflat.lab.setups import openvpn

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]

STEPS = [
    "lab healthy",
    "unreachable before",
    "render",
    "server",
    "connect developer",
    "http pod IP",
    "http cluster IP",
    "http name",
    "outside name",
    "connect office LAN",
    "office http pod IP",
    "office http cluster IP",
    "office http name",
    "office outside name",
    "revert",
    "unreachable after",
]
SERVER_NODE = "10.1.0.12"  # node-2


def _tun_devices() -> set[str]:
    return set(run(["ip", "-o", "link", "show", "type", "tun"]).split("\n")) - {""}


def _processes_under(directory: Path) -> list[str]:
    """Command lines of running processes that name ``directory`` (OpenVPN, the DNS stubs)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(directory) in cmdline:
                found.append(cmdline)
    return found


def test_openvpn_up_check_down(tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    skip_unless_control_plane_can_run()
    state_dir = tmp_path / "lab"
    tuns_before = _tun_devices()
    up = bgpflat("lab", "up", "openvpn", "--state-dir", str(state_dir))
    try:
        assert up.returncode == 0, up.stderr
        lab = Lab.attach(state_dir)
        fabric = lab.fabric()
        names = {p.name for p in fabric.netns.state.processes}
        assert not names & {"zebra", "bgpd", openvpn.SERVER}  # no BGP; the VPN is the check's to start
        assert (state_dir / "vpn" / "pki" / "developer.crt").is_file()

        checked = bgpflat("lab", "check", "openvpn", "--state-dir", str(state_dir), "-o", "json")
        report = json.loads(checked.stdout)
        assert [s["name"] for s in report["steps"]] == STEPS, report
        assert checked.returncode == 0 and report["passed"], report
        details = {s["name"]: s["detail"] for s in report["steps"]}
        # Both ranges pushed into the tunnel, and the DNS script in charge of the client's resolv.conf.
        assert "tun0 routes 10.96.0.0/12, 192.168.0.0/16" in details["connect developer"]
        assert "nameserver 127.0.0.1" in details["connect developer"]
        assert "the cluster DNS never" in details["outside name"]
        assert "the cluster DNS never" in details["office outside name"]
        print(f"\nopenvpn: lab up {report['lab_up_seconds']:.1f} s, check {report['total_seconds']:.1f} s")

        # The VPN once more, to see what a pod on the other node sees: the server node (its NAT).
        configs = openvpn.render(lab, tmp_path / "vpn")
        assert "server 10.4.0.0 255.255.255.0" in configs.server.read_text().splitlines()
        assert f"remote {SERVER_NODE} 1194" in configs.clients[openvpn.DEVELOPER].read_text().splitlines()
        openvpn.install_server(lab, configs)
        try:
            openvpn.connect(lab, configs, openvpn.DEVELOPER)
            answer = fabric.http_get(openvpn.DEVELOPER, "http://192.168.0.5/")  # whoami on node-1
            assert answer.ok, answer
            assert f"RemoteAddr: {SERVER_NODE}" in answer.body
        finally:
            openvpn.revert(lab, configs)

        # A check that fails names its step, exits 1, and still takes the VPN down.
        fabric.netns.stop(["dns:office"])  # the public resolver: public names go unanswered
        failed = bgpflat("lab", "check", "openvpn", "--state-dir", str(state_dir), "-o", "json")
        report = json.loads(failed.stdout)
        assert failed.returncode == 1, failed.stderr
        assert report["failed_step"] == "outside name"
        assert report["steps"][-1]["name"] == "revert (cleanup)" and report["steps"][-1]["ok"], report
        assert not any(p.name.startswith("openvpn:") for p in Lab.attach(state_dir).fabric().netns.state.processes)

        prefix = fabric.netns.prefix
        namespaces = list(fabric.netns.state.namespaces)
        processes = [(p.pid, p.start_time) for p in fabric.netns.state.processes]
        outside = list(fabric.netns.state.paths)
    finally:
        down = bgpflat("lab", "down", "openvpn", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr

    assert all(not netns_exists(n) for n in namespaces)
    run_netns = Path("/run/netns")
    assert not any(n.name.startswith(prefix) for n in (run_netns.iterdir() if run_netns.is_dir() else []))
    assert [pid for pid, start in processes if process_start_time(pid) == start] == []
    assert _processes_under(state_dir) == []
    assert [p for p in outside if Path(p).exists()] == []
    assert not any((NETNS_ETC / n).exists() for n in namespaces)
    assert _tun_devices() <= tuns_before
    assert not state_dir.exists()
