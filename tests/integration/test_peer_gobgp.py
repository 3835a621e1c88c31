"""``bgpflat peer`` against GoBGP, an independent BGP implementation, sending random routes.

IPv4 and IPv6 prefixes (multiprotocol over one IPv4 session) with random communities, large
communities, origins and AS paths, including 4-byte ASNs. The peer's table must equal exactly what
GoBGP was told to send, and GoBGP must have received nothing from the peer.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.table import Route, RouteTable, make_communities, make_large_communities
from bgpflat.peer.endpoint import fetch

sys.path.insert(0, str(Path(__file__).parent))
from netns import Lab, Netns, skip_unless_root_and, start_peer, wait_for

pytestmark = pytest.mark.integration

SPEAKER_IP, SPEAKER_IP6 = "10.0.2.1", "fd00:2::1"
PEER_IP, PEER_IP6 = "10.0.2.100", "fd00:2::100"
SPEAKER_AS, PEER_AS = 65010, 65000
PER_FAMILY = 12

GOBGPD_TOML = f"""
[global.config]
  as = {SPEAKER_AS}
  router-id = "{SPEAKER_IP}"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{PEER_IP}"
    peer-as = {PEER_AS}
  [neighbors.graceful-restart.config]
    enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
"""


def random_routes(rng: random.Random) -> list[Route]:
    """Distinct random prefixes with random attributes, as the peer should see them."""
    routes: list[Route] = []
    seen: set[Prefix] = set()
    while len(routes) < 2 * PER_FAMILY:
        v6 = len(routes) >= PER_FAMILY
        length = rng.randint(33, 64) if v6 else rng.randint(8, 32)
        bits = 128 if v6 else 32
        value = rng.getrandbits(bits) >> (bits - length) << (bits - length)
        if v6:
            value = (0x2001_0DB8 << 96) | (value & ((1 << 96) - 1))  # keep to the documentation range
        prefix = Prefix(6 if v6 else 4, value, length)
        if prefix in seen:
            continue
        seen.add(prefix)
        as_path = tuple(
            rng.choice([rng.randint(64512, 65534), rng.randint(4_200_000_000, 4_294_967_294)])
            for _ in range(rng.randint(0, 4))
        )
        routes.append(
            Route(
                prefix,
                SPEAKER_IP6 if v6 else SPEAKER_IP,  # eBGP: GoBGP sends itself as next hop for IPv4
                SPEAKER_IP,
                (SPEAKER_AS, *as_path),
                rng.choice(["igp", "egp", "incomplete"]),
                make_communities((rng.randint(1, 65000), rng.randint(0, 65535)) for _ in range(rng.randint(0, 3))),
                make_large_communities(
                    (rng.randint(1, 2**32 - 1), rng.randint(0, 2**32 - 1), rng.randint(0, 2**32 - 1))
                    for _ in range(rng.randint(0, 2))
                ),
            )
        )
    return routes


def gobgp_add_args(route: Route) -> list[str]:
    family = "ipv6" if route.prefix.version == 6 else "ipv4"
    args = ["gobgp", "global", "rib", "-a", family, "add", str(route.prefix), "origin", route.origin]
    if route.as_path[1:]:
        args += ["aspath", " ".join(str(a) for a in route.as_path[1:])]
    if route.prefix.version == 6:
        args += ["nexthop", SPEAKER_IP6]
    if route.communities:
        args += ["community", ",".join(f"{a}:{b}" for a, b in route.communities)]
    if route.large_communities:
        args += ["large-community", ",".join(f"{a}:{b}:{c}" for a, b, c in route.large_communities)]
    return args


@dataclass
class Setup:
    speaker: Netns
    state_dir: Path
    sent: list[Route]

    def learned(self) -> RouteTable:
        return RouteTable.from_records(fetch(f"unix:{self.state_dir / 'peer.sock'}", "/routes")["routes"])

    def session(self) -> dict[str, Any]:
        status = fetch(f"unix:{self.state_dir / 'peer.sock'}", "/status")
        return next(s for s in status["sessions"] if s["peer"] == SPEAKER_IP)

    def converged(self) -> bool:
        try:
            session = self.session()
            return session["state"] == "up" and session["eor_complete"] and self.learned() == RouteTable(self.sent)
        except Exception:
            return False


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    skip_unless_root_and("gobgpd", "gobgp", "ss")
    tmp = tmp_path_factory.mktemp("peer-gobgp")
    seed = int(os.environ.get("BGPFLAT_TEST_SEED", random.randrange(1 << 30)))
    print(f"random routes seed: BGPFLAT_TEST_SEED={seed}")
    sent = random_routes(random.Random(seed))
    with Lab() as lab:
        speaker = lab.netns("spk")
        peer = lab.netns("peer")
        lab.veth(
            speaker,
            "s-peer",
            [f"{SPEAKER_IP}/24", f"{SPEAKER_IP6}/64"],
            peer,
            "p-spk",
            [f"{PEER_IP}/24", f"{PEER_IP6}/64"],
        )
        (tmp / "gobgpd.toml").write_text(GOBGPD_TOML)
        lab.start(
            speaker,
            ["gobgpd", "-f", str(tmp / "gobgpd.toml"), "-p", "--api-hosts", "127.0.0.1:50051", "--pprof-disable"],
            log=tmp / "gobgpd.log",
        )
        wait_for(lambda: speaker.run("gobgp", "global", check=False).returncode == 0, timeout=15, what="gobgpd's API")
        for route in sent:
            speaker.run(*gobgp_add_args(route))
        state_dir = tmp / "state"
        start_peer(
            lab,
            peer,
            listen=PEER_IP,
            neighbor=SPEAKER_IP,
            local_as=str(PEER_AS),
            peer_as=str(SPEAKER_AS),
            state_dir=state_dir,
            log=tmp / "peer.out",
        )
        wait_for(lambda: (state_dir / "peer.sock").exists(), timeout=20, what="the peer endpoint")
        yield Setup(speaker, state_dir, sent)


def test_table_equals_what_gobgp_sent(setup: Setup) -> None:
    wait_for(setup.converged, timeout=30, what="the peer to learn GoBGP's routes")
    session = setup.session()
    assert sorted(session["families"]) == ["ipv4 unicast", "ipv6 unicast"]
    assert set(session["eor"]) == {"ipv4 unicast", "ipv6 unicast"}
    assert session["prefixes"] == 2 * PER_FAMILY


def test_receive_only(setup: Setup) -> None:
    for family in ("ipv4", "ipv6"):
        result = setup.speaker.run("gobgp", "neighbor", PEER_IP, "adj-in", "-a", family, check=False)
        assert "Network not in table" in result.stdout + result.stderr, result
    state = json.loads(setup.speaker.run("gobgp", "neighbor", PEER_IP, "-j").stdout)
    assert all(not afi["state"].get("received") for afi in state["afi_safis"])


def test_withdraw_is_seen(setup: Setup) -> None:
    gone = setup.sent.pop()  # an IPv6 route
    setup.speaker.run("gobgp", "global", "rib", "-a", "ipv6", "del", str(gone.prefix))
    wait_for(setup.converged, timeout=30, what="the withdraw to reach the peer")
    assert gone.prefix not in setup.learned().prefixes()


def test_session_reset_converges_back(setup: Setup) -> None:
    before = setup.session()["up_since"]
    # Kill the TCP connection under both speakers (GoBGP's own "reset" idles it for 30 s).
    setup.speaker.run("ss", "-K", "dst", PEER_IP)
    wait_for(
        lambda: setup.converged() and setup.session()["up_since"] != before,
        timeout=60,
        what="the session to come back with the same table",
    )
