"""``bgpflat peer`` against BIRD 1.6 configured the way calico/node configures it.

The truth is BIRD's own view: ``birdc show route export <protocol> all`` lists exactly what BIRD
sends on the session, with the attributes after the export filter. The peer's table must equal it
through announces, withdraws, an ExaBGP kill -9 in the middle of a feed, a session reset, and BIRD
going away.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.table import Route, RouteTable
from bgpflat.peer.endpoint import fetch

sys.path.insert(0, str(Path(__file__).parent))
from netns import (
    Lab,
    Netns,
    bgpflat_argv,
    bgpflat_env,
    calico_bird_conf,
    skip_unless_root_and,
    start_peer,
    wait_for,
    write_bird_bulk,
    write_bird_statics,
)

pytestmark = pytest.mark.integration

NODE_IP, PEER_IP = "10.0.0.1", "10.0.0.100"
PROTOCOL = "Global_10_0_0_100"
BLOCKS = ("10.244.0.0/26", "10.244.0.64/26")
SERVICES = ("10.96.0.0/12",)
BULK = 20_000


def bgpflat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(bgpflat_argv(*args), env=bgpflat_env(), capture_output=True, text=True, timeout=60)


@dataclass
class Setup:
    lab: Lab
    node: Netns
    peer: Netns
    bird_dir: Path
    state_dir: Path
    bird: subprocess.Popen[Any]
    peer_proc: subprocess.Popen[Any]
    peer_log: Path

    def birdc(self, *args: str) -> str:
        return self.node.run("birdc", "-s", str(self.bird_dir / "bird.ctl"), *args).stdout

    def status(self) -> dict[str, Any]:
        return fetch(f"unix:{self.state_dir / 'peer.sock'}", "/status")

    def session(self) -> dict[str, Any]:
        return next(s for s in self.status()["sessions"] if s["peer"] == NODE_IP)

    def learned(self) -> RouteTable:
        records = fetch(f"unix:{self.state_dir / 'peer.sock'}", "/routes")["routes"]
        return RouteTable(r for r in RouteTable.from_records(records) if r.session == NODE_IP)

    def exported(self) -> RouteTable:
        return parse_bird_export(self.birdc("show", "route", "export", PROTOCOL, "all"), session=NODE_IP)

    def events(self) -> list[dict[str, Any]]:
        text = (self.state_dir / "events.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]


def parse_bird_export(text: str, *, session: str) -> RouteTable:
    """Routes from ``birdc show route export P all`` (BIRD 1.6 text)."""
    routes: list[Route] = []
    current: dict[str, Any] | None = None

    def flush() -> None:
        if current is not None:
            routes.append(
                Route(
                    Prefix.parse(current["prefix"]),
                    current.get("next_hop", ""),
                    session,
                    tuple(int(a) for a in current.get("as_path", "").split()),
                    current.get("origin", "igp"),
                    tuple(sorted(current.get("communities", ()))),
                    tuple(sorted(current.get("large", ()))),
                )
            )

    for line in text.splitlines():
        if not line.strip() or line.startswith("BIRD "):
            continue
        if not line[0].isspace():
            flush()
            current = {"prefix": line.split()[0]}
            continue
        assert current is not None
        key, _, value = line.strip().partition(": ")
        if key == "BGP.as_path":
            current["as_path"] = value
        elif key == "BGP.next_hop":
            current["next_hop"] = value.split()[0]
        elif key == "BGP.origin":
            current["origin"] = value.lower()
        elif key == "BGP.community":
            current["communities"] = [tuple(int(x) for x in c.split(",")) for c in re.findall(r"\((\d+,\d+)\)", value)]
        elif key == "BGP.large_community":
            current["large"] = [tuple(int(x) for x in c.split(", ")) for c in re.findall(r"\((\d+, \d+, \d+)\)", value)]
    flush()
    return RouteTable(routes)


def converged(setup: Setup) -> bool:
    try:
        session = setup.session()
        return (
            session["state"] == "up"
            and session["eor_complete"]
            and not session["stale"]
            and setup.learned() == setup.exported()
        )
    except Exception:
        return False


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    skip_unless_root_and("bird", "birdc")
    tmp = tmp_path_factory.mktemp("peer-bird")
    with Lab() as lab:
        node = lab.netns("node")
        peer = lab.netns("peer")
        lab.veth(node, "n-peer", [f"{NODE_IP}/24"], peer, "p-node", [f"{PEER_IP}/24"])
        bird_dir = tmp / "node"
        conf = calico_bird_conf(
            directory=bird_dir,
            router_id=NODE_IP,
            local_as=64512,
            peers=[(PROTOCOL, PEER_IP, NODE_IP, 65000)],
            blocks=BLOCKS,
            service_cidrs=SERVICES,
        )
        bird = lab.start(node, ["bird", "-f", "-c", str(conf), "-s", str(bird_dir / "bird.ctl")], log=tmp / "bird.out")
        state_dir = tmp / "state"
        peer_log = tmp / "peer.out"
        peer_proc = start_peer(
            lab, peer, listen=PEER_IP, neighbor=NODE_IP, state_dir=state_dir, extra=["--hold-time", "9"], log=peer_log
        )
        setup = Setup(lab, node, peer, bird_dir, state_dir, bird, peer_proc, peer_log)
        wait_for(lambda: (state_dir / "peer.sock").exists(), timeout=20, what="the peer endpoint")
        yield setup


def test_learned_table_equals_birds_export(setup: Setup) -> None:
    wait_for(lambda: converged(setup), timeout=30, what="the peer to learn BIRD's export")
    table = setup.learned()
    assert {str(p) for p in table.prefixes()} == {*BLOCKS, *SERVICES}
    (block,) = table.paths(NODE_IP, Prefix.parse("10.244.0.0/26"))
    assert block.communities == ((64512, 100),) and block.large_communities == ((64512, 1, 2),)
    assert block.next_hop == NODE_IP and block.as_path == (64512,)
    assert block.path_id is not None  # Calico's BIRD negotiates ADD-PATH


def test_cli_routes_and_status(setup: Setup) -> None:
    routes = bgpflat("peer", "routes", "--state-dir", str(setup.state_dir), "-o", "json")
    assert routes.returncode == 0, routes.stderr
    data = json.loads(routes.stdout)
    assert data["source"] == "live"
    assert RouteTable.from_records(data["routes"]) == setup.exported()
    table = bgpflat("peer", "routes", "--state-dir", str(setup.state_dir))
    assert "10.244.0.0/26" in table.stdout and "64512:100" in table.stdout
    status = bgpflat("peer", "status", "--state-dir", str(setup.state_dir))
    assert status.returncode == 0
    line = next(line for line in status.stdout.splitlines() if NODE_IP in line)
    assert "up" in line and "ipv4✓" in line and " 3 " in line


def test_receive_only(setup: Setup) -> None:
    assert setup.birdc("show", "route", "protocol", PROTOCOL).strip().splitlines()[1:] == []
    details = setup.birdc("show", "protocols", "all", PROTOCOL)
    assert re.search(r"Routes:\s+0 imported", details), details


def test_withdraw_and_reannounce(setup: Setup) -> None:
    write_bird_statics(setup.bird_dir, blocks=BLOCKS[:1], service_cidrs=SERVICES)
    setup.birdc("configure")
    wait_for(
        lambda: Prefix.parse(BLOCKS[1]) not in setup.learned().prefixes(),
        timeout=30,
        what="the withdraw to reach the peer",
    )
    assert setup.learned() == setup.exported()
    write_bird_statics(setup.bird_dir, blocks=BLOCKS, service_cidrs=SERVICES)
    setup.birdc("configure")
    wait_for(lambda: converged(setup) and len(setup.learned()) == 3, timeout=30, what="the re-announce")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_kill_9_of_exabgp_mid_feed_converges_back(setup: Setup) -> None:
    status = setup.status()
    exabgp_pid = status["exabgp"]["pid"]
    restarts = status["exabgp"]["restarts"]
    (collector_pid,) = _children(exabgp_pid)
    # Freeze the collector so that the feed is stuck between ExaBGP and bgpflat, then send it.
    os.kill(collector_pid, signal.SIGSTOP)
    try:
        write_bird_bulk(setup.bird_dir, BULK)
        setup.birdc("configure")
        wait_for(
            lambda: re.search(rf"Routes:.*\b{BULK + 3} exported", setup.birdc("show", "protocols", "all", PROTOCOL)),
            timeout=30,
            what="BIRD to export the bulk routes",
        )
        os.kill(exabgp_pid, signal.SIGKILL)
    finally:
        os.kill(collector_pid, signal.SIGCONT)
    # What was in the pipe arrives, then the stream ends: a partial table, marked stale.
    stale = wait_for(lambda: (s := setup.session())["stale"] and s, timeout=30, what="the table marked stale")
    assert 3 <= stale["paths"] < BULK + 3, stale
    wait_for(
        lambda: converged(setup) and len(setup.learned()) == BULK + 3,
        timeout=60,
        what="the table to converge after ExaBGP's restart",
    )
    after = setup.status()["exabgp"]
    assert after["restarts"] == restarts + 1 and after["pid"] != exabgp_pid
    exits = [e for e in setup.events() if e["event"] == "exabgp-exited"]
    assert exits and exits[-1]["code"] == -signal.SIGKILL


def test_session_reset_converges_back(setup: Setup) -> None:
    seen = len(setup.events())
    ups_before = sum(1 for e in setup.events() if e["event"] == "up")
    setup.birdc("restart", PROTOCOL)
    wait_for(
        lambda: sum(1 for e in setup.events() if e["event"] == "up") > ups_before,
        timeout=30,
        what="the session to come back up",
    )
    wait_for(
        lambda: converged(setup) and len(setup.learned()) == BULK + 3,
        timeout=30,
        what="the table to converge after the reset",
    )
    assert [e["event"] for e in setup.events()[seen:] if e["event"] in {"down", "up"}][:2] == ["down", "up"]


def test_stopping_bird_empties_the_session(setup: Setup) -> None:
    seen = len(setup.events())
    Lab.stop(setup.bird)
    # After "down", ExaBGP keeps trying to reconnect, which the peer shows as "connecting".
    wait_for(lambda: setup.session()["state"] in {"down", "connecting"}, timeout=30, what="the session to go down")
    assert len(setup.learned()) == 0
    assert setup.session()["paths"] == 0
    downs = [e for e in setup.events()[seen:] if e["event"] == "down"]
    assert downs and downs[0]["flushed"] == BULK + 3


def test_sigterm_stops_the_peer_cleanly(setup: Setup) -> None:
    code = Lab.stop(setup.peer_proc, signal.SIGTERM, timeout=20)
    assert code == 0
    assert setup.peer.pids() == []  # ExaBGP and its collector are gone too
    snapshot = json.loads((setup.state_dir / "snapshot.json").read_text())
    assert snapshot["running"] is False and snapshot["routes"] == []
    assert not (setup.state_dir / "peer.sock").exists()
    log = setup.peer_log.read_text()
    assert "bgpflat peer: stopped" in log and "Traceback" not in log
    # Reading the state of a stopped peer falls back to its last snapshot.
    status = bgpflat("peer", "status", "--state-dir", str(setup.state_dir), "-o", "json")
    assert status.returncode == 0 and json.loads(status.stdout)["source"] == "snapshot"
    assert "not running" in status.stderr
