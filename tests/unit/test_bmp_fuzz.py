"""Fuzzed BMP: whatever a router sends, the station decodes it or drops that router, and stops neither.

11,500 cases in all (they run in CI with the unit tests): arbitrary bytes, valid streams with
bytes flipped, cut or spliced, valid streams fed in arbitrary chunks, and the cached fast path of
``RouterRib.ingest`` against the full decode on changed bytes. Each case must end in a
value or ``BmpError`` — any other exception would take the station's loop down — and within the
hypothesis deadline (no hang: a broken length must not make the framer wait forever for bytes that
are already there, or loop without consuming). A last test sends fuzzed streams from many routers
to a running station at once: each bad one is dropped with a reason, the good one keeps its table.
"""

from __future__ import annotations

import contextlib
import random
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgpflat.bmp.station import Station, StationOptions
from bgpflat.core.bmp.messages import Framer, decode
from bgpflat.core.bmp.rib import RouterRib
from bgpflat.core.bmp.update import BmpError, decode_open, decode_update
from bgpflat.core.net.prefixes import Prefix

sys.path.insert(0, str(Path(__file__).parent))
import bmp_wire as w
from test_bmp_station import wait_for


def fuzz(examples: int) -> settings:
    # A 2 s deadline per case: far above any real decode, and what a hang would run into.
    return settings(
        max_examples=examples,
        deadline=timedelta(seconds=2),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


P = [Prefix.parse(p) for p in ("10.244.0.0/26", "10.96.0.0/12", "192.168.7.1/32", "0.0.0.0/0")]
P6 = [Prefix.parse(p) for p in ("fd00:244::/122", "2001:db8::/32")]


def valid_stream(sys_descr: str = "Arista") -> bytes:
    return b"".join(
        [
            w.initiation(sys_descr=sys_descr),
            w.peer_up("10.0.0.1", router_add_path=3, peer_add_path=3),
            w.peer_up("fd00::1"),
            w.route_monitoring("10.0.0.1", w.update(P, path_ids=[1, 2, 3, 4], communities=[(1, 2)], large=[(1, 2, 3)])),
            w.route_monitoring("fd00::1", w.update(P6, next_hop="fd00::1")),
            w.route_monitoring("10.0.0.1", w.update(P[:1], path_ids=[1], two_octet=True), two_octet=True, post=True),
            w.route_monitoring("fd00::1", w.update(withdrawn=P6[1:2])),
            w.route_monitoring("fd00::1", w.end_of_rib(afi=2)),
            w.route_monitoring("0.0.0.0", w.update(P[:2]), loc_rib=True),
            w.statistics("10.0.0.1", [(0, 5), (7, 9)]),
            w.peer_down("fd00::1"),
            w.termination(),
        ]
    )


STREAM = valid_stream()


def dump_stream() -> bytes:
    """What FRR sends: one prefix per message, the same attributes again and again, a flap."""
    out = [w.initiation(), w.peer_up("10.0.0.1", router_add_path=1, peer_add_path=2)]
    hosts = [Prefix(4, (10 << 24) | n, 32) for n in range(12)] + P[:3]
    for policy in (False, True):
        out += [w.route_monitoring("10.0.0.1", w.update([p], as_path=(65000, 64512)), post=policy) for p in hosts]
    out += [w.route_monitoring("10.0.0.1", w.update(withdrawn=hosts[:2]))]
    out += [w.route_monitoring("10.0.0.1", w.update(hosts[2:4], communities=[(1, 1)]))]
    out += [w.peer_down("10.0.0.1"), w.peer_up("10.0.0.1")]
    out += [w.route_monitoring("10.0.0.1", w.update([p])) for p in hosts[:5]]
    return b"".join(out)


DUMP = dump_stream()


def outcome(data: bytes, *, fast: bool) -> tuple[str, dict[str, object], list[object]]:
    rib = RouterRib(address="192.0.2.1")
    error = ""
    try:
        for message in Framer().feed(data):
            rib.ingest(message) if fast else rib.handle(decode(message))
    except BmpError as exc:
        error = str(exc)
    return error, rib.to_dict(), sorted(rib.routes(), key=repr)


def ingest(data: bytes, chunks: list[int] | None = None, *, router: str = "192.0.2.1") -> RouterRib:
    """Frame, decode and apply like the station does; only ``BmpError`` may come out."""
    rib = RouterRib(address=router)
    framer = Framer()
    pieces = [data] if not chunks else _split(data, chunks)
    for piece in pieces:
        for message in framer.feed(piece):
            rib.handle(decode(message))
    return rib


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def survives(data: bytes) -> None:
    with contextlib.suppress(BmpError):
        ingest(data)


def test_the_valid_stream_decodes() -> None:
    rib = ingest(STREAM)
    assert sorted(len(routes) for routes in (rib.routes(policy="pre"), rib.routes(policy="post"))) == [1, 4]
    assert rib.terminated == "administratively closed"


@fuzz(2500)
@given(st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    survives(data)
    for decoder in (decode_open, decode_update):
        with contextlib.suppress(BmpError):
            decoder(data)


@fuzz(2500)
@given(st.binary(min_size=1, max_size=400))
def test_arbitrary_message_bodies_behind_a_valid_header(body: bytes) -> None:
    """The framer passes these on: every decoder branch gets to see garbage."""
    for kind in range(8):
        survives(w.bmp(kind, body))
        survives(w.bmp(0, w.per_peer("10.0.0.1") + w.bgp(2, body)))


@fuzz(3000)
@given(st.lists(st.tuples(st.integers(0, len(STREAM) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_valid_stream_with_bytes_changed(changes: list[tuple[int, int]]) -> None:
    data = bytearray(STREAM)
    for offset, value in changes:
        data[offset] = value
    survives(bytes(data))


@fuzz(1000)
@given(st.integers(0, len(STREAM)), st.integers(0, len(STREAM)), st.binary(max_size=64))
def test_valid_stream_cut_and_spliced(start: int, end: int, junk: bytes) -> None:
    survives(STREAM[:start] + junk + STREAM[end:])


@fuzz(1000)
@given(st.lists(st.integers(0, 10_000), max_size=40))
def test_chunking_never_changes_the_result(cuts: list[int]) -> None:
    whole = ingest(STREAM)
    chunked = ingest(STREAM, cuts)
    assert chunked.to_dict() == whole.to_dict()
    assert chunked.routes() == whole.routes()


def test_the_fast_path_is_the_full_decode() -> None:
    error, data, routes = outcome(DUMP, fast=True)
    assert not error and (data, routes) == outcome(DUMP, fast=False)[1:]
    assert len(routes) == 5 and all(route.as_path == (64512,) for _, _, route in routes)


@fuzz(1500)
@given(st.lists(st.tuples(st.integers(0, len(DUMP) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_the_fast_path_is_the_full_decode_on_changed_bytes(changes: list[tuple[int, int]]) -> None:
    data = bytearray(DUMP)
    for offset, value in changes:
        data[offset] = value
    assert outcome(bytes(data), fast=True) == outcome(bytes(data), fast=False)


def test_every_truncation_of_the_stream() -> None:
    """Each prefix of a valid stream is a router that stopped mid-message: decodes what is whole."""
    for size in range(len(STREAM) + 1):
        ingest(STREAM[:size])


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Station]:
    station = Station(StationOptions(state_dir=tmp_path / "bmp", listen=(("127.0.0.1", 0),)))
    thread = threading.Thread(target=station.run, daemon=True)
    thread.start()
    wait_for(lambda: (tmp_path / "bmp" / "bmp.sock").exists(), "the endpoint")
    yield station
    station.request_stop()
    thread.join(timeout=10)


def test_many_fuzzed_routers_at_once_leave_the_good_one_alone(station: Station) -> None:
    rng = random.Random(1729)
    port = int(station.status()["listen"][0].rsplit(":", 1)[1])

    def connect(source: str) -> socket.socket:
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        return sock

    good = connect("127.0.0.2")
    good.sendall(STREAM[: STREAM.index(w.peer_down("fd00::1"))])  # no peer-down, no termination
    bad_sockets = []
    for n in range(30):
        data = bytearray(STREAM)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        sock = connect(f"127.0.1.{n + 1}")
        sock.sendall(bytes(data) + bytes([4]) * 6)  # and a header no version-3 stream can have
        bad_sockets.append(sock)

    def all_bad_dropped() -> bool:
        routers = {r["router"]: r for r in station.status()["routers"]}
        return all(routers.get(f"127.0.1.{n + 1}", {}).get("state") == "dropped" for n in range(30))

    wait_for(all_bad_dropped, "every fuzzed router to be dropped", timeout=30)
    routers = {r["router"]: r for r in station.status()["routers"]}
    assert all(routers[f"127.0.1.{n + 1}"]["reason"].startswith("malformed BMP message: ") for n in range(30))
    assert routers["127.0.0.2"]["state"] == "up"
    expected = ingest(STREAM[: STREAM.index(w.peer_down("fd00::1"))], router="127.0.0.2")
    with station._lock:
        rib = next(r.rib for r in station._routers.values() if r.address == "127.0.0.2")
        assert rib.routes() == expected.routes()
    for sock in [good, *bad_sockets]:
        sock.close()
