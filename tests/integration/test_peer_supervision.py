"""``bgpflat peer run`` as a process: connecting noise, restarts with backoff, bad input, signals.

These need real ExaBGP; the first two also a network namespace with an address that refuses BGP.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bgpflat.peer.endpoint import fetch

sys.path.insert(0, str(Path(__file__).parent))
from netns import Lab, bgpflat_argv, bgpflat_env, skip_unless_root_and, start_peer, wait_for

pytestmark = pytest.mark.integration

PEER_IP, ABSENT_IP = "10.9.0.100", "10.9.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def events(state_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (state_dir / "events.jsonl").read_text().splitlines()]


def test_retries_against_an_absent_neighbor_are_one_connecting_state(tmp_path: Path) -> None:
    skip_unless_root_and("exabgp")
    with Lab() as lab:
        peer = lab.netns("peer")
        absent = lab.netns("absent")  # the address exists but nothing listens: every connect is refused
        lab.veth(peer, "p-abs", [f"{PEER_IP}/24"], absent, "a-peer", [f"{ABSENT_IP}/24"])
        state_dir = tmp_path / "state"
        out, err = tmp_path / "peer.out", tmp_path / "peer.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                peer.command(
                    bgpflat_argv(
                        "peer",
                        "run",
                        "--watch",
                        "--local-as",
                        "65000",
                        "--listen",
                        PEER_IP,
                        "--neighbor",
                        ABSENT_IP,
                        "--peer-as",
                        "64512",
                        "--state-dir",
                        str(state_dir),
                    )
                ),
                stdout=stdout,
                stderr=stderr,
                env=bgpflat_env(),
            )
            lab.processes.append(proc)
            wait_for(lambda: (state_dir / "peer.sock").exists(), timeout=20, what="the endpoint")

            def attempts() -> int:
                session = fetch(f"unix:{state_dir / 'peer.sock'}", "/status")["sessions"][0]
                return int(session["connect_attempts"]) if session["state"] == "connecting" else 0

            wait_for(lambda: attempts() >= 3, timeout=30, what="three connection attempts")
            os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends
            assert proc.wait(timeout=20) == 0
        kinds = [e["event"] for e in events(state_dir) if e.get("peer") == ABSENT_IP]
        assert kinds == ["connecting"], kinds
        watch = out.read_text()
        # With --watch, notices are printed above the live table instead of on stderr.
        assert watch.count(f"{ABSENT_IP}: connecting") == 1, watch
        assert "attempt(s)" in watch and "Traceback" not in err.read_text()


def test_malformed_lines_are_counted_and_a_lost_stream_restarts_exabgp(tmp_path: Path) -> None:
    skip_unless_root_and("exabgp")
    with Lab() as lab:
        peer = lab.netns("peer")
        absent = lab.netns("absent")
        lab.veth(peer, "p-abs", [f"{PEER_IP}/24"], absent, "a-peer", [f"{ABSENT_IP}/24"])
        state_dir = tmp_path / "state"
        start_peer(lab, peer, listen=PEER_IP, neighbor=ABSENT_IP, state_dir=state_dir, log=tmp_path / "peer.out")
        endpoint = f"unix:{state_dir / 'peer.sock'}"
        wait_for(
            lambda: (state_dir / "peer.sock").exists() and fetch(endpoint, "/status")["exabgp"]["running"],
            timeout=20,
            what="ExaBGP to run",
        )
        first_pid = fetch(endpoint, "/status")["exabgp"]["pid"]
        # A second stream on the collector socket, carrying garbage, then closing.
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(state_dir / "collector.sock"))
            sock.sendall(b'{"type": "update", "neighbor": 7}\nnot json\n{"exabgp": "5.0.0"}\ndone\n')
        status = wait_for(
            lambda: (s := fetch(endpoint, "/status"))["counters"]["malformed"] == 3 and s,
            timeout=30,
            what="the malformed lines to be counted",
        )
        assert status["counters"]["last_malformed"].startswith("no 'type'")  # the last bad line
        # Lines may have been lost, so ExaBGP is restarted to make its neighbors re-send.
        wait_for(
            lambda: (s := fetch(endpoint, "/status")["exabgp"])["running"] and s["pid"] != first_pid,
            timeout=30,
            what="ExaBGP to be restarted",
        )
        assert any(e["event"] == "collector-lost" for e in events(state_dir))


def test_exabgp_that_keeps_dying_is_restarted_with_backoff(tmp_path: Path) -> None:
    port = free_port()
    state_dir = tmp_path / "state"
    proc = subprocess.Popen(
        bgpflat_argv(
            "peer",
            "run",
            "--local-as",
            "65000",
            "--listen",
            "127.0.0.1",
            "--neighbor",
            "127.0.0.2",
            "--peer-as",
            "64512",
            "--state-dir",
            str(state_dir),
            "--endpoint",
            f"127.0.0.1:{port}",
            "--exabgp",
            "/bin/false",
        ),
        env=bgpflat_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: (
                (state_dir / "events.jsonl").exists()
                and sum(e["event"] == "exabgp-exited" for e in events(state_dir)) >= 2
            ),
            timeout=20,
            what="two ExaBGP exits",
        )
        status = subprocess.run(
            bgpflat_argv("peer", "status", "--endpoint", f"127.0.0.1:{port}", "-o", "json"),
            env=bgpflat_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        data = json.loads(status.stdout)
        assert data["source"] == "live" and data["exabgp"]["restarts"] >= 2
        # The state directory alone is enough: the snapshot says where the peer serves.
        status = subprocess.run(
            bgpflat_argv("peer", "status", "--state-dir", str(state_dir), "-o", "json"),
            env=bgpflat_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert json.loads(status.stdout)["source"] == "live"
        delays = [e["restart_in"] for e in events(state_dir) if e["event"] == "exabgp-exited"]
        assert delays[:2] == [1.0, 2.0]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "ExaBGP exited with 1; restarting in 1 s" in stderr and "restarting in 2 s" in stderr


def test_one_state_dir_one_peer(tmp_path: Path) -> None:
    args = (
        "peer",
        "run",
        "--local-as",
        "65000",
        "--listen",
        "127.0.0.1",
        "--neighbor",
        "127.0.0.2",
        "--peer-as",
        "64512",
        "--state-dir",
        str(tmp_path),
        "--exabgp",
        "/bin/sleep 30",
    )
    first = subprocess.Popen(bgpflat_argv(*args), env=bgpflat_env(), stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (tmp_path / "peer.sock").exists(), timeout=20, what="the first peer")
        second = subprocess.run(bgpflat_argv(*args), env=bgpflat_env(), capture_output=True, text=True, timeout=30)
        assert second.returncode == 2
        assert "another bgpflat peer is running" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=20) == 0


def test_from_snapshot_peers_with_the_nodes_the_bgppeer_selects(tmp_path: Path) -> None:
    objects = tmp_path / "cluster.yaml"
    objects.write_text(
        "kind: List\nitems:\n"
        "- {kind: Node, metadata: {name: n1, labels: {rack: a},"
        " annotations: {projectcalico.org/IPv4Address: 10.0.0.1/24}}}\n"
        "- {kind: Node, metadata: {name: n2, labels: {rack: b},"
        " annotations: {projectcalico.org/IPv4Address: 10.0.0.2/24, projectcalico.org/ASNumber: '64600'}}}\n"
        "- {apiVersion: projectcalico.org/v3, kind: BGPPeer, metadata: {name: verifier},"
        " spec: {peerIP: 127.0.0.1, asNumber: 65001, nodeSelector: \"rack == 'b'\"}}\n"
    )
    state_dir = tmp_path / "state"
    proc = subprocess.Popen(
        bgpflat_argv(
            "peer",
            "run",
            "--listen",
            "127.0.0.1",
            "--from-snapshot",
            str(objects),
            "--state-dir",
            str(state_dir),
            "--exabgp",
            "/bin/sleep 30",
        ),
        env=bgpflat_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: (state_dir / "peer.sock").exists(), timeout=20, what="the peer")
        conf = (state_dir / "exabgp.conf").read_text()
        assert "neighbor 10.0.0.2 {" in conf and "peer-as 64600;" in conf and "local-as 65001;" in conf
        assert "10.0.0.1" not in conf
        assert oct((state_dir / "exabgp.conf").stat().st_mode & 0o777) == "0o600"
        # Whoever can connect reads the peer's state (and the collector socket feeds it): owner only.
        assert oct((state_dir / "peer.sock").stat().st_mode & 0o777) == "0o600"
        wait_for(lambda: (state_dir / "collector.sock").exists(), timeout=20, what="the collector socket")
        assert oct((state_dir / "collector.sock").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert "1 node(s) selected by BGPPeer verifier" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "127.0.0.1", "--neighbor", "127.0.0.2"], "no AS for neighbor"),
        (["--listen", "127.0.0.1", "--neighbor", "127.0.0.2", "--peer-as", "1"], "no local AS"),
        (["--local-as", "1", "--neighbor", "127.0.0.2", "--peer-as", "1"], "no local address"),
        (["--local-as", "1", "--listen", "127.0.0.1", "--peer-as", "1"], "no neighbors"),
        (
            [
                "--local-as",
                "1",
                "--listen",
                "127.0.0.1",
                "--neighbor",
                "127.0.0.2",
                "--peer-as",
                "1",
                "--endpoint",
                "0.0.0.0:8080",
            ],
            "not on loopback",
        ),
    ],
)
def test_bad_invocations_say_what_to_fix(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        bgpflat_argv("peer", "run", "--state-dir", str(tmp_path), *args),
        env=bgpflat_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_reading_a_state_dir_without_a_peer_is_an_error(tmp_path: Path) -> None:
    result = subprocess.run(
        bgpflat_argv("peer", "routes", "--state-dir", str(tmp_path)),
        env=bgpflat_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "no peer state" in result.stderr


def test_config_file_equals_flags(tmp_path: Path) -> None:
    config = tmp_path / "peer.yaml"
    state_dir = tmp_path / "state"
    password = tmp_path / "md5"
    password.write_text("s3cret\n")
    config.write_text(
        f"local-as: 65000\nlisten: [127.0.0.1]\nneighbors: [127.0.0.2, 127.0.0.3]\n"
        f"neighbor-ranges: [127.1.0.0/16]\npeer-as: 64512\nhold-time: 30\n"
        f"password-file: {password}\nstate-dir: {state_dir}\nexabgp: /bin/sleep 30\n"
    )
    proc = subprocess.Popen(
        bgpflat_argv("peer", "run", "--config", str(config), "--hold-time", "12"),
        env=bgpflat_env(),
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: (state_dir / "peer.sock").exists(), timeout=20, what="the peer")
        conf = (state_dir / "exabgp.conf").read_text()
        assert "neighbor 127.0.0.2 {" in conf and "neighbor 127.0.0.3 {" in conf
        assert "neighbor 127.1.0.0/16 {" in conf and "passive true;" in conf
        assert "hold-time 12;" in conf  # the flag wins over the file
        assert 'md5-password "czNjcmV0";' in conf  # base64 of the file's first line
        sessions = fetch(f"unix:{state_dir / 'peer.sock'}", "/status")["sessions"]
        assert [(s["peer"], s["state"]) for s in sessions] == [("127.0.0.2", "idle"), ("127.0.0.3", "idle")]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_exabgp_does_not_outlive_a_killed_bgpflat(tmp_path: Path) -> None:
    skip_unless_root_and("exabgp")
    with Lab() as lab:
        peer = lab.netns("peer")
        absent = lab.netns("absent")
        lab.veth(peer, "p-abs", [f"{PEER_IP}/24"], absent, "a-peer", [f"{ABSENT_IP}/24"])
        state_dir = tmp_path / "state"
        proc = start_peer(
            lab,
            peer,
            listen=PEER_IP,
            neighbor=ABSENT_IP,
            state_dir=state_dir,
            extra=["--passive"],  # no connection attempts: ExaBGP has nothing to say, the worst case
        )
        endpoint = f"unix:{state_dir / 'peer.sock'}"
        wait_for(
            lambda: (state_dir / "peer.sock").exists() and fetch(endpoint, "/status")["exabgp"]["running"],
            timeout=20,
            what="ExaBGP to run",
        )
        exabgp_pid = fetch(endpoint, "/status")["exabgp"]["pid"]
        assert exabgp_pid in peer.pids()
        Lab.stop(proc, signal.SIGKILL)
        # The collector loses bgpflat and stops its ExaBGP, which is in its own process group.
        wait_for(lambda: peer.pids() == [], timeout=20, what="ExaBGP and its collector to exit")
        # A new peer can take over the state directory at once.
        second = subprocess.run(
            bgpflat_argv("peer", "status", "--state-dir", str(state_dir), "-o", "json"),
            env=bgpflat_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 0 and json.loads(second.stdout)["source"] == "snapshot"
