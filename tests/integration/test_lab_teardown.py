"""Tearing the lab down leaves nothing behind: no namespace, no process, no file.

Checked for a lab that came up completely, for a second ``down`` (idempotent), and for a lab
whose ``up`` failed half-way (it must clean up after itself).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import pytest
from test_lab_flat import SCENARIO, lab_on, skip_unless_lab_can_run

from bgpflat.errors import LabError
from bgpflat.lab.controlplane.server import ControlPlane
from bgpflat.lab.fabric.flatlab import FlatLab
from bgpflat.lab.fabric.netns import NETNS_ETC, NetnsLab, netns_exists, sweep
from bgpflat.lab.fabric.topology import file_source, load_topology
from bgpflat.lab.processes import process_start_time

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.root]


def _namespaces_with_prefix(prefix: str) -> list[str]:
    run_netns = Path("/run/netns")
    return sorted(p.name for p in run_netns.iterdir() if p.name.startswith(prefix)) if run_netns.is_dir() else []


def test_down_removes_every_namespace_process_and_file(kube_v1: ControlPlane, tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    topology = load_topology(SCENARIO)
    state_dir = tmp_path / "state"
    objects = list(file_source(SCENARIO, service_range=topology.service_range)())
    lab = lab_on(kube_v1, topology, objects, state_dir=state_dir)
    try:
        state = lab.netns.state
        prefix = lab.netns.prefix
        namespaces = list(state.namespaces)
        processes = [(p.name, p.pid, p.start_time) for p in state.processes]
        outside = list(state.paths)
        print(f"\nlab up in {lab.info['up_seconds']:.2f} s: {len(namespaces)} namespaces, {len(processes)} processes")
        assert len(namespaces) >= 9 and all(netns_exists(n) for n in namespaces)
        nodes = ("node-1", "node-2", "node-3")
        daemons = {"zebra", "bgpd", "dns:office", *(f"bird:{n}" for n in nodes), *(f"confd:{n}" for n in nodes)}
        assert daemons <= {p[0] for p in processes}
        assert any(Path(p).is_relative_to(NETNS_ETC) for p in outside), "the developer's resolv.conf is recorded"
        # Traffic stays inside the lab: every daemon runs in one of the lab's own namespaces, except
        # confd, which reads the API server on the host's loopback and reaches BIRD by its socket.
        root_netns = os.stat("/proc/self/ns/net").st_ino  # the namespace the tests run in
        for record in state.processes:
            inode = os.stat(f"/proc/{record.pid}/ns/net").st_ino
            if record.name.startswith("confd:"):
                assert record.namespace == "" and inode == root_netns, record.name
                continue
            assert inode == os.stat(f"/run/netns/{record.namespace}").st_ino != root_netns, record.name
    finally:
        if state_dir.exists():
            FlatLab.attach(state_dir).down()  # as `bgpflat lab down` does, from the state file alone

    assert _namespaces_with_prefix(prefix) == []
    alive = [(name, pid) for name, pid, start in processes if process_start_time(pid) == start]
    assert alive == []
    assert [p for p in outside if Path(p).exists()] == []
    assert not state_dir.exists()
    with pytest.raises(LabError, match="no lab recorded"):
        FlatLab.attach(state_dir)


def test_down_is_idempotent_and_survives_missing_pieces(tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    lab = NetnsLab.create(tmp_path / "state", lab="teardown")
    a = lab.add_netns("a")
    b = lab.add_netns("b")
    lab.veth(a, "eth0", b, "eth0")
    sleeper = lab.start("sleeper", a, ["sleep", "600"], log=tmp_path / "state" / "sleeper.log")
    os.system(f"ip netns delete {b}")  # something removed a piece behind the lab's back
    lab.teardown()
    assert not netns_exists(a) and not netns_exists(b)
    assert process_start_time(sleeper.pid) is None
    assert not (tmp_path / "state").exists()
    lab.teardown()  # nothing left to do, and no error


def test_stop_ends_what_a_daemon_spawned(tmp_path: Path) -> None:
    """confd runs its reload command in a child shell; a confd stopped mid-reload must not leave
    that child running (in the host namespace, no namespace sweep would find it)."""
    skip_unless_lab_can_run()
    lab = NetnsLab.create(tmp_path / "state", lab="children")
    child_pid_file = tmp_path / "child.pid"
    spawner = lab.start(
        "spawner", "", ["sh", "-c", f"sleep 600 & echo $! > {child_pid_file}; wait"], log=tmp_path / "spawner.log"
    )
    for _ in range(100):
        if child_pid_file.exists() and child_pid_file.read_text().strip():
            break
        time.sleep(0.05)
    child = int(child_pid_file.read_text())
    assert process_start_time(child) is not None
    lab.stop(["spawner"])
    assert process_start_time(spawner.pid) is None
    assert process_start_time(child) is None, "the daemon's child outlived it"
    lab.teardown()


def test_sweep_recovers_a_lab_whose_state_file_is_gone(tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    lab = NetnsLab.create(tmp_path / "state", lab="sweep")
    a = lab.add_netns("a")
    b = lab.add_netns("b")
    lab.veth(a, "eth0", b, "eth0")
    sleeper = lab.start("sleeper", b, ["sleep", "600"], log=tmp_path / "sleeper.log")
    resolv = lab.write_resolv_conf(a, "nameserver 192.0.2.53\n")
    shutil.rmtree(tmp_path / "state")  # e.g. a temporary directory cleaned up under a running lab

    removed = sweep(lab.prefix)

    assert f"netns {a}" in removed and f"netns {b}" in removed
    assert _namespaces_with_prefix(f"{lab.prefix}-") == []
    assert process_start_time(sleeper.pid) is None
    assert not resolv.parent.exists()


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{proc.name}: {cmdline}")
    return found


def test_a_failed_up_cleans_up_after_itself(kube_v1: ControlPlane, tmp_path: Path) -> None:
    skip_unless_lab_can_run()
    # A ToR whose AS the scenario's BGPPeer does not name: the failure comes late, once namespaces,
    # pods, their HTTP servers and every node's confd and BIRD run, when the ToR is configured.
    topology = dataclasses.replace(load_topology(SCENARIO), tor_asn=65299)
    objects = list(file_source(SCENARIO, service_range=topology.service_range)())
    state_dir = tmp_path / "state"
    with pytest.raises(LabError, match="the ToR has AS 65299"):
        lab_on(kube_v1, topology, objects, state_dir=state_dir, lab_id="fail")
    assert _namespaces_with_prefix(f"{topology.name}-fail-") == []
    assert _processes_mentioning(str(state_dir)) == []
    assert not state_dir.exists()
