"""``bgpflat bmp`` against real FRR (bgpd -M bmp): the station's tables equal what FRR holds.

GoBGP plays a Calico node (AS 64512) and sends random IPv4 and IPv6 routes to an FRR ToR (AS 65000)
whose inbound route-map refuses 10.250.0.0/16; FRR streams BMP (pre- and post-policy) to the
station in a third namespace. The station's pre-policy table must equal FRR's received-routes and
its post-policy table FRR's routes from that neighbour; withdrawals and a bgpd restart follow.
"""

from __future__ import annotations

import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bgpflat.core.net.prefixes import Prefix
from bgpflat.daemon.endpoint import fetch

sys.path.insert(0, str(Path(__file__).parent))
from netns import Lab, Netns, bgpflat_argv, bgpflat_env, skip_unless_root_and, wait_for

pytestmark = pytest.mark.integration

NODE_IP, NODE_IP6, TOR_IP, TOR_IP6 = "10.0.1.1", "fd00:1::1", "10.0.1.254", "fd00:1::fe"
TOR_MON, STATION_IP, STATION_PORT = "10.0.9.1", "10.0.9.100", 5000
NODE_AS, TOR_AS = 64512, 65000
REFUSED = Prefix.parse("10.250.0.0/16")
ZEBRA, BGPD = "/usr/lib/frr/zebra", "/usr/lib/frr/bgpd"

GOBGPD_TOML = f"""
[global.config]
  as = {NODE_AS}
  router-id = "{NODE_IP}"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{TOR_IP}"
    peer-as = {TOR_AS}
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
"""

BGPD_CONF = f"""frr defaults traditional
hostname tor1
ip prefix-list REFUSED seq 5 permit {REFUSED} le 32
route-map FROM-NODES deny 10
 match ip address prefix-list REFUSED
exit
route-map FROM-NODES permit 20
exit
router bgp {TOR_AS}
 bgp router-id {TOR_IP}
 no bgp ebgp-requires-policy
 neighbor {NODE_IP} remote-as {NODE_AS}
 address-family ipv4 unicast
  neighbor {NODE_IP} soft-reconfiguration inbound
  neighbor {NODE_IP} route-map FROM-NODES in
 exit-address-family
 address-family ipv6 unicast
  neighbor {NODE_IP} activate
  neighbor {NODE_IP} soft-reconfiguration inbound
 exit-address-family
 bmp targets bgpflat
  bmp connect {STATION_IP} port {STATION_PORT} min-retry 100 max-retry 1000
  bmp monitor ipv4 unicast pre-policy
  bmp monitor ipv4 unicast post-policy
  bmp monitor ipv6 unicast pre-policy
  bmp monitor ipv6 unicast post-policy
 exit
exit
"""


def random_prefixes(rng: random.Random, count: int) -> list[Prefix]:
    out: set[Prefix] = set()
    while len(out) < count:
        kind = rng.random()
        if kind < 0.2:
            length = rng.randint(16, 32)
            value = (10 << 24 | 250 << 16 | rng.getrandbits(16)) >> (32 - length) << (32 - length)
            out.add(Prefix(4, value, length))  # refused by the route-map
        elif kind < 0.7:
            length = rng.randint(16, 32)
            value = (10 << 24 | rng.randint(0, 249) << 16 | rng.getrandbits(16)) >> (32 - length) << (32 - length)
            out.add(Prefix(4, value, length))
        else:
            length = rng.randint(48, 64)
            value = (0x2001_0DB8 << 96 | rng.getrandbits(96)) >> (128 - length) << (128 - length)
            out.add(Prefix(6, value, length))
    return sorted(out)


@dataclass
class Setup:
    lab: Lab
    node: Netns
    tor: Netns
    mon: Netns
    frr_dir: Path
    state_dir: Path
    sent: list[Prefix]
    bgpd: subprocess.Popen[Any] | None = None
    station_process: subprocess.Popen[Any] | None = None

    def start_station(self) -> None:
        argv = bgpflat_argv(
            "bmp", "run", "--listen", f"{STATION_IP}:{STATION_PORT}", "--state-dir", str(self.state_dir)
        )
        self.station_process = self.lab.start(
            self.mon, argv, log=self.state_dir.parent / "station.out", env=bgpflat_env()
        )
        wait_for(lambda: (self.state_dir / "bmp.sock").exists(), timeout=20, what="the station's endpoint")

    def vtysh(self, command: str) -> Any:
        # check=False: while bgpd starts, vtysh fails; that reads as an empty table.
        result = self.tor.run("vtysh", "--vty_socket", str(self.frr_dir), "-c", command, check=False)
        return json.loads(result.stdout or "{}") if result.returncode == 0 else {}

    def frr_table(self, which: str) -> set[tuple[str, str]]:
        """(family, prefix) FRR holds from the node: received-routes (pre) or routes (post)."""
        out = set()
        for family in ("ipv4", "ipv6"):
            data = self.vtysh(f"show bgp {family} unicast neighbors {NODE_IP} {which} json")
            table = data.get("receivedRoutes" if which == "received-routes" else "routes") or {}
            out |= {(family, str(Prefix.parse(p))) for p in table}
        return out

    def station(self, policy: str) -> set[tuple[str, str]]:
        data = fetch(f"unix:{self.state_dir / 'bmp.sock'}", "/routes", role="bmp station")
        return {
            ("ipv6" if ":" in r["prefix"] else "ipv4", r["prefix"])
            for r in data["routes"]
            if r["policy"] == policy and r["peer"] == NODE_IP
        }

    def station_routes(self) -> list[dict[str, Any]]:
        return fetch(f"unix:{self.state_dir / 'bmp.sock'}", "/routes", role="bmp station")["routes"]

    def expected(self, policy: str) -> set[tuple[str, str]]:
        kept = [p for p in self.sent if policy == "pre" or not REFUSED.contains(p)]
        return {("ipv6" if p.version == 6 else "ipv4", str(p)) for p in kept}

    def converged(self) -> bool:
        try:
            return self.station("pre") == self.expected("pre") and self.station("post") == self.expected("post")
        except Exception:
            return False

    def gobgp(self, *args: str) -> None:
        self.node.run("gobgp", *args)

    def announce(self, prefix: Prefix) -> None:
        if prefix.version == 4:
            self.gobgp("global", "rib", "-a", "ipv4", "add", str(prefix), "community", "64512:100")
        else:
            self.gobgp("global", "rib", "-a", "ipv6", "add", str(prefix), "nexthop", NODE_IP6)

    def node_table(self) -> list[Prefix]:
        out = []
        for family in ("ipv4", "ipv6"):
            data = json.loads(self.node.run("gobgp", "global", "rib", "-a", family, "-j").stdout or "{}")
            out += [Prefix.parse(p) for p in data]
        return out

    def withdraw(self, prefix: Prefix) -> None:
        self.gobgp("global", "rib", "-a", "ipv6" if prefix.version == 6 else "ipv4", "del", str(prefix))

    def start_bgpd(self) -> subprocess.Popen[Any]:
        argv = frr_argv(BGPD, self.frr_dir, "bgpd", "-M", "bmp")
        self.bgpd = self.lab.start(self.tor, argv, log=self.frr_dir / "bgpd.out")
        wait_for(lambda: (self.frr_dir / "bgpd.vty").exists(), timeout=15, what="bgpd's vty socket")
        return self.bgpd


def frr_argv(binary: str, runtime: Path, name: str, *extra: str) -> list[str]:
    return [
        binary, "-u", "frr", "-g", "frr", "--vty_socket", str(runtime), "-P", "0",
        "-f", str(runtime / f"{name}.conf"), "-z", str(runtime / "zserv.api"),
        "-i", str(runtime / f"{name}.pid"), "--log", f"file:{runtime / f'{name}.log'}", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    skip_unless_root_and("gobgpd", "gobgp", "vtysh")
    if not Path(BGPD).exists() or not list(Path("/usr/lib").glob("*/frr/modules/bgpd_bmp.so")):
        pytest.skip("needs FRR with its BMP module (apt-get install frr)")
    tmp = tmp_path_factory.mktemp("bmp-frr")
    seed = int(os.environ.get("BGPFLAT_TEST_SEED", random.randrange(1 << 30)))
    print(f"random routes seed: BGPFLAT_TEST_SEED={seed}")
    sent = random_prefixes(random.Random(seed), 40)
    # FRR drops to user frr, which cannot enter pytest's root-only tmp: a directory of its own.
    frr_dir = Path(tempfile.mkdtemp(prefix="bgpflat-bmp-frr-"))
    try:
        with Lab() as lab:
            node, tor, mon = lab.netns("node"), lab.netns("tor"), lab.netns("mon")
            lab.veth(
                node, "n-tor", [f"{NODE_IP}/24", f"{NODE_IP6}/64"], tor, "t-node", [f"{TOR_IP}/24", f"{TOR_IP6}/64"]
            )
            lab.veth(tor, "t-mon", [f"{TOR_MON}/24"], mon, "m-tor", [f"{STATION_IP}/24"])
            state_dir = tmp / "station"
            (frr_dir / "zebra.conf").write_text("hostname tor1\n")
            (frr_dir / "bgpd.conf").write_text(BGPD_CONF)
            user = pwd.getpwnam("frr")
            for path in (frr_dir, *frr_dir.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
            lab.start(tor, frr_argv(ZEBRA, frr_dir, "zebra"), log=frr_dir / "zebra.out")
            wait_for(lambda: (frr_dir / "zserv.api").exists(), timeout=15, what="zebra's socket")
            (tmp / "gobgpd.toml").write_text(GOBGPD_TOML)
            lab.start(
                node,
                ["gobgpd", "-f", str(tmp / "gobgpd.toml"), "-p", "--api-hosts", "127.0.0.1:50051", "--pprof-disable"],
                log=tmp / "gobgpd.log",
            )
            wait_for(lambda: node.run("gobgp", "global", check=False).returncode == 0, timeout=15, what="gobgpd")
            setup = Setup(lab, node, tor, mon, frr_dir, state_dir, sent)
            for prefix in sent:
                setup.announce(prefix)
            setup.start_bgpd()
            # The station comes up once FRR holds the whole table, as it would beside a running
            # ToR: FRR 8.4 streams pre-policy routes that its inbound policy refuses only in the
            # table dump of a new BMP session, never as live updates (see README, BMP station).
            wait_for(
                lambda: setup.frr_table("received-routes") == setup.expected("pre"), timeout=60, what="FRR's adj-in"
            )
            setup.start_station()
            yield setup
    finally:
        shutil.rmtree(frr_dir, ignore_errors=True)


def test_pre_and_post_policy_equal_what_frr_holds(setup: Setup) -> None:
    wait_for(setup.converged, timeout=60, what="the station to hold FRR's tables")
    assert setup.station("pre") == setup.frr_table("received-routes")
    assert setup.station("post") == setup.frr_table("routes")
    assert setup.station("post") < setup.station("pre")  # the route-map refused some


def test_attributes_are_what_the_node_sent(setup: Setup) -> None:
    wait_for(setup.converged, timeout=60, what="the station's tables")
    routes = [r for r in setup.station_routes() if r["policy"] == "pre"]
    v4 = next(r for r in routes if ":" not in r["prefix"])
    v6 = next(r for r in routes if ":" in r["prefix"])
    assert (v4["session"], v4["next_hop"], v4["as_path"], v4["communities"]) == (
        NODE_IP, NODE_IP, [NODE_AS], ["64512:100"]
    )  # fmt: skip
    assert (v6["next_hop"], v6["as_path"]) == (NODE_IP6, [NODE_AS])


def test_status_shows_both_opens_and_end_of_rib(setup: Setup) -> None:
    wait_for(setup.converged, timeout=60, what="the station's tables")
    status = fetch(f"unix:{setup.state_dir / 'bmp.sock'}", "/status", role="bmp station")
    [router] = [r for r in status["routers"] if r["state"] == "up"]
    assert router["router"] == TOR_MON and router["sys_descr"].startswith("FRRouting")
    [peer] = [p for p in router["peers"] if p["peer"] == NODE_IP]
    assert peer["sent_open"]["as"] == TOR_AS and peer["received_open"]["as"] == NODE_AS
    assert peer["received_open"]["router_id"] == NODE_IP
    assert set(peer["tables"]) == {"pre", "post"}


def test_withdrawals_reach_both_tables(setup: Setup) -> None:
    wait_for(setup.converged, timeout=60, what="the station's tables")
    # Routes the route-map refused are left alone: FRR streams no live pre-policy update for them.
    gone = [p for p in setup.sent if p.version == 6][:2]
    gone += [p for p in setup.sent if p.version == 4 and not REFUSED.contains(p)][:2]
    for prefix in gone:
        setup.withdraw(prefix)
        setup.sent.remove(prefix)
    wait_for(setup.converged, timeout=60, what="the withdrawals to reach the station")
    assert setup.station("pre") == setup.frr_table("received-routes")


def test_a_router_restart_rebuilds_the_tables(setup: Setup) -> None:
    wait_for(setup.converged, timeout=60, what="the station's tables")
    assert setup.bgpd is not None
    setup.lab.stop(setup.bgpd, signal.SIGTERM)
    wait_for(lambda: setup.station("pre") == set(), timeout=30, what="the station to drop the router's tables")
    setup.withdraw(next(p for p in setup.sent if not REFUSED.contains(p)))  # changed while the router was away
    setup.sent = [p for p in setup.sent if p in set(setup.node_table())]
    setup.start_bgpd()
    wait_for(lambda: setup.frr_table("routes") == setup.expected("post"), timeout=90, what="FRR's table")

    def ipv4(table: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return {item for item in table if item[0] == "ipv4"}

    # Live updates: FRR 8.4 streams the IPv4 post-policy table as it holds it. (Its IPv6
    # post-policy routes learned after the BMP session came up arrive as withdrawals, and
    # refused routes never reach pre-policy: both are FRR's, see README, BMP station.)
    wait_for(
        lambda: ipv4(setup.station("post")) == ipv4(setup.frr_table("routes")),
        timeout=60,
        what="the live IPv4 post-policy table after the restart",
    )
    # A new BMP session (the station restarted) gets FRR's table dump: everything again.
    assert setup.station_process is not None
    setup.lab.stop(setup.station_process)
    setup.start_station()
    wait_for(setup.converged, timeout=60, what="the tables after the station restarted")
    assert setup.station("pre") == setup.frr_table("received-routes")
    assert setup.station("post") == setup.frr_table("routes")
    events = [json.loads(line) for line in (setup.state_dir / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("router-connected") >= 3
