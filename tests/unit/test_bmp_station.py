"""``bgpflat bmp run`` over loopback TCP: several routers, a misbehaving one, reconnects, the CLI."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bgpflat.bmp.station import Station, StationOptions
from bgpflat.cli import main
from bgpflat.core.net.prefixes import Prefix
from bgpflat.daemon.endpoint import fetch

sys.path.insert(0, str(Path(__file__).parent))
import bmp_wire as w

NODE = "10.0.0.1"
P1, P2 = Prefix.parse("10.244.0.0/26"), Prefix.parse("10.96.0.0/12")


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


class Running:
    def __init__(self, station: Station, state_dir: Path) -> None:
        self.station = station
        self.state_dir = state_dir
        self.events: list[dict[str, Any]] = []

    @property
    def port(self) -> int:
        return int(self.station.status()["listen"][0].rsplit(":", 1)[1])

    def router(self, source: str) -> socket.socket:
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", self.port))
        return sock

    def routes(self, router: str) -> list[dict[str, Any]]:
        data = fetch(f"unix:{self.state_dir / 'bmp.sock'}", "/routes", role="bmp station")
        return [r for r in data["routes"] if r["router"] == router]

    def router_state(self, router: str) -> dict[str, Any] | None:
        return next((r for r in self.station.status()["routers"] if r["router"] == router), None)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    state_dir = tmp_path / "bmp"
    station = Station(StationOptions(state_dir=state_dir, listen=(("127.0.0.1", 0),), snapshot_quiet=0.05))
    run = Running(station, state_dir)
    station._notify = run.events.append  # the CLI passes its printer here
    thread = threading.Thread(target=station.run, daemon=True)
    thread.start()
    wait_for(lambda: (state_dir / "bmp.sock").exists(), "the endpoint")
    yield run
    station.request_stop()
    thread.join(timeout=10)
    assert not thread.is_alive()


def table_dump(*prefixes: Prefix) -> bytes:
    return (
        w.initiation()
        + w.peer_up(NODE)
        + w.route_monitoring(NODE, w.update(list(prefixes)))
        + w.route_monitoring(NODE, w.end_of_rib())
    )


def test_a_bad_router_is_dropped_and_the_others_keep_their_tables(running: Running) -> None:
    good = running.router("127.0.0.2")
    good.sendall(table_dump(P1, P2))
    wait_for(lambda: len(running.routes("127.0.0.2")) == 2, "the good router's table")
    bad = running.router("127.0.0.3")
    bad.sendall(table_dump(P1) + w.route_monitoring(NODE, w.bgp(2, b"\x00\x00\x00\x04\x40\x01\x01\x07")))
    state = wait_for(lambda: (s := running.router_state("127.0.0.3")) and s["state"] == "dropped" and s, "the drop")
    assert state["reason"].startswith("malformed BMP message: ORIGIN")
    assert bad.recv(10) == b""  # the station closed the connection
    assert any(e["event"] == "router-dropped" and e["router"] == "127.0.0.3" for e in running.events)
    logged = [json.loads(line) for line in (running.state_dir / "events.jsonl").read_text().splitlines()]
    assert any(e["event"] == "router-dropped" and "ORIGIN" in e["reason"] for e in logged)
    assert [r["prefix"] for r in running.routes("127.0.0.2")] == [str(P2), str(P1)]
    assert running.routes("127.0.0.3") == []
    good.close()
    bad.close()


def test_a_router_that_reconnects_rebuilds_its_tables(running: Running) -> None:
    first = running.router("127.0.0.2")
    first.sendall(table_dump(P1, P2))
    wait_for(lambda: len(running.routes("127.0.0.2")) == 2, "the first table")
    first.close()
    wait_for(lambda: (s := running.router_state("127.0.0.2")) and s["state"] == "disconnected", "the close")
    assert running.routes("127.0.0.2") == []
    second = running.router("127.0.0.2")
    second.sendall(table_dump(P2))
    wait_for(lambda: [r["prefix"] for r in running.routes("127.0.0.2")] == [str(P2)], "the table rebuilt")
    second.close()


def test_the_station_never_writes_to_a_router(running: Running) -> None:
    sock = running.router("127.0.0.2")
    sock.sendall(table_dump(P1))
    wait_for(lambda: running.routes("127.0.0.2"), "the table")
    sock.settimeout(0.3)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.close()


def test_cli_routes_and_status(running: Running, capsys: pytest.CaptureFixture[str]) -> None:
    sock = running.router("127.0.0.2")
    sock.sendall(
        table_dump(P1, P2)
        + w.route_monitoring(NODE, w.update([P1]), post=True)
        + w.route_monitoring(NODE, w.end_of_rib(), post=True)
    )
    wait_for(lambda: len(running.routes("127.0.0.2")) == 3, "the tables")
    state = str(running.state_dir)
    assert main(["bmp", "routes", "--state-dir", state, "--policy", "post", "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["source"] == "live"
    assert data["routes"] == [
        {
            "prefix": str(P1),
            "next_hop": NODE,
            "session": NODE,
            "as_path": [64512],
            "origin": "igp",
            "communities": [],
            "large_communities": [],
            "router": "127.0.0.2",
            "peer": NODE,
            "policy": "post",
        }
    ]
    assert main(["bmp", "status", "--state-dir", state, "--router", "127.0.0.2", "-o", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    [peer] = status["routers"][0]["peers"]
    assert peer["tables"]["pre"] == {"paths": 2, "prefixes": 2, "eor": ["ipv4 unicast"], "complete": True}
    assert peer["received_open"]["as"] == 64512 and peer["sent_open"]["as"] == 65000
    assert main(["bmp", "status", "--state-dir", state]) == 0
    text = capsys.readouterr().out
    assert "127.0.0.2 tor1" in text and "ipv4✓" in text
    sock.close()


def test_status_reads_the_snapshot_when_the_station_is_gone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bmp", "routes", "--state-dir", str(tmp_path)]) == 2
    assert "no bmp station state in" in capsys.readouterr().err


def test_bad_listen_address_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bmp", "run", "--listen", "tor:5000", "--state-dir", str(tmp_path)]) == 2
    assert "--listen 'tor:5000': 'tor' is not an IP address" in capsys.readouterr().err


def test_connect_dials_a_listening_router_and_dials_again(tmp_path: Path) -> None:
    """``--connect``: the router listens (FRR's ``bmp listener``); the station dials, and again."""
    router = socket.socket()
    router.bind(("127.0.0.1", 0))
    router.listen(4)
    router.settimeout(10)
    port = router.getsockname()[1]
    station = Station(
        StationOptions(state_dir=tmp_path / "bmp", connect=(("127.0.0.1", port),), backoff=(0.1,), snapshot_quiet=0.05)
    )
    thread = threading.Thread(target=station.run, daemon=True)
    thread.start()
    try:
        first, _ = router.accept()
        first.sendall(table_dump(P1, P2))
        wait_for(lambda: len(station.routes()["routes"]) == 2, "the table over the dialled session")
        first.settimeout(0.3)
        with pytest.raises(TimeoutError):
            first.recv(1)  # nothing is ever sent to the router
        first.close()
        second, _ = router.accept()  # dialled again after the router closed
        second.sendall(table_dump(P1))
        wait_for(lambda: [r["prefix"] for r in station.routes()["routes"]] == [str(P1)], "the rebuilt table")
        second.close()
    finally:
        station.request_stop()
        thread.join(timeout=10)
        router.close()
    events = [json.loads(line)["event"] for line in (tmp_path / "bmp" / "events.jsonl").read_text().splitlines()]
    assert events.count("router-connected") == 2 and events[-1] == "station-stopped"
    snapshot = json.loads((tmp_path / "bmp" / "snapshot.json").read_text())
    assert snapshot["running"] is False and snapshot["connect"] == [f"127.0.0.1:{port}"]


def test_the_last_snapshot_keeps_the_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_dir = tmp_path / "bmp"
    station = Station(StationOptions(state_dir=state_dir, listen=(("127.0.0.1", 0),)))
    thread = threading.Thread(target=station.run, daemon=True)
    thread.start()
    wait_for(lambda: (state_dir / "bmp.sock").exists(), "the endpoint")
    run = Running(station, state_dir)
    sock = run.router("127.0.0.2")
    sock.sendall(table_dump(P1, P2))
    wait_for(lambda: len(run.routes("127.0.0.2")) == 2, "the table")
    station.request_stop()
    thread.join(timeout=10)
    sock.close()
    assert main(["bmp", "routes", "--state-dir", str(state_dir), "-o", "json"]) == 0
    out, err = capsys.readouterr()
    assert [r["prefix"] for r in json.loads(out)["routes"]] == [str(P2), str(P1)]
    assert "bgpflat bmp: station not running; showing the snapshot written at" in err
    assert main(["bmp", "routes", "--state-dir", str(state_dir), "--peer", NODE, "--policy", "pre"]) == 0
    table = capsys.readouterr().out
    assert "BMP routes (2 paths)" in table and "10.244.0.0/26" in table and "127.0.0.2" in table


def _scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    with urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_routers_peers_routes_messages_and_malformed(tmp_path: Path) -> None:
    station = Station(
        StationOptions(state_dir=tmp_path / "bmp", listen=(("127.0.0.1", 0),), metrics_listen="127.0.0.1:0")
    )
    run = Running(station, tmp_path / "bmp")
    thread = threading.Thread(target=station.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: station._metrics is not None, "the metrics server")
        assert station._metrics is not None
        address = station._metrics.address
        good = run.router("127.0.0.2")
        good.sendall(table_dump(P1, P2) + w.route_monitoring(NODE, w.update([P1]), post=True))
        wait_for(lambda: len(run.routes("127.0.0.2")) == 3, "the tables")
        bad = run.router("127.0.0.3")
        bad.sendall(w.initiation() + w.route_monitoring(NODE, w.bgp(2, b"\x00\x00\x00\x04\x40\x01\x01\x07")))
        wait_for(lambda: (s := run.router_state("127.0.0.3")) and s["state"] == "dropped", "the drop")
        seen = _scrape(address)
        router = (("router", "127.0.0.2"),)
        assert seen[("bgpflat_bmp_routers", (("state", "up"),))] == 1
        assert seen[("bgpflat_bmp_routers", (("state", "dropped"),))] == 1
        assert seen[("bgpflat_bmp_router_up", router)] == 1
        assert seen[("bgpflat_bmp_router_up", (("router", "127.0.0.3"),))] == 0
        assert seen[("bgpflat_bmp_monitored_peers", (*router, ("state", "up")))] == 1
        assert seen[("bgpflat_bmp_routes", (("peer", NODE), ("policy", "pre"), *router))] == 2
        assert seen[("bgpflat_bmp_routes", (("peer", NODE), ("policy", "post"), *router))] == 1
        assert seen[("bgpflat_bmp_messages_received_total", (*router, ("type", "route-monitoring")))] == 3
        assert seen[("bgpflat_bmp_messages_received_total", (*router, ("type", "peer-up")))] == 1
        assert seen[("bgpflat_bmp_malformed_messages_total", (("router", "127.0.0.3"),))] == 1
        good.close()
        bad.close()
    finally:
        station.request_stop()
        thread.join(timeout=10)
    assert not thread.is_alive()
