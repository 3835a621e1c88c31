"""``bgpflat bmp`` against a real GoBGP ToR: pre-policy, post-policy and Loc-RIB (RFC 9069).

Two calico/node-style BIRD 1.6 nodes (the cluster of ``test_expected_routes_bird.py``: full mesh,
eBGP to 10.0.0.100) peer with GoBGP (``gobgpd``, AS 65000) whose global import policy refuses
node-2's service range and which takes ADD-PATH from the nodes (as calico/node offers it); GoBGP
streams every table (``route-monitoring-policy = "all"``) to the
station in a third namespace. The station's tables must equal what GoBGP holds: pre-policy its
``neighbor X adj-in``, post-policy the paths from X in ``global rib``, Loc-RIB the best paths of
``global rib``. A node's withdrawal and a GoBGP restart (the station starts the router's tables
from nothing) follow; ``bmp routes --policy loc-rib`` and ``verify --source bmp:`` with each policy
read the same tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from bgpflat.core.net.prefixes import Prefix
from bgpflat.daemon.endpoint import fetch

sys.path.insert(0, str(Path(__file__).parent))
from netns import (
    Lab,
    Netns,
    bgpflat_argv,
    bgpflat_env,
    calico_bird_conf,
    skip_unless_root_and,
    wait_for,
    write_bird_statics,
)
from test_expected_routes_bird import NODES, PEER, SERVICES, cluster_snapshot

pytestmark = pytest.mark.integration

TOR_AS, NODE_AS = 65000, 64512
TOR_MON, STATION, STATION_PORT = "10.0.9.1", "10.0.9.100", 5000
NODE1, NODE2 = NODES["node-1"][0], NODES["node-2"][0]

GOBGPD_TOML = f"""
[global.config]
  as = {TOR_AS}
  router-id = "{PEER}"
[global.apply-policy.config]
  import-policy-list = ["refuse-node-2-services"]
  default-import-policy = "accept-route"
[[defined-sets.prefix-sets]]
  prefix-set-name = "services"
  [[defined-sets.prefix-sets.prefix-list]]
    ip-prefix = "{SERVICES}"
[[defined-sets.neighbor-sets]]
  neighbor-set-name = "node-2"
  neighbor-info-list = ["{NODE2}"]
[[policy-definitions]]
  name = "refuse-node-2-services"
  [[policy-definitions.statements]]
    name = "node-2-services"
    [policy-definitions.statements.conditions.match-prefix-set]
      prefix-set = "services"
    [policy-definitions.statements.conditions.match-neighbor-set]
      neighbor-set = "node-2"
    [policy-definitions.statements.actions]
      route-disposition = "reject-route"
[[bmp-servers]]
  [bmp-servers.config]
    address = "{STATION}"
    port = {STATION_PORT}
    route-monitoring-policy = "all"
""" + "".join(
    f"""
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{address}"
    peer-as = {NODE_AS}
  [neighbors.transport.config]
    local-address = "{PEER}"
  [neighbors.ebgp-multihop.config]
    enabled = true
    multihop-ttl = 64
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.add-paths.config]
      receive = true
"""
    for address, _ in NODES.values()
)

Path_ = tuple[str, str, tuple[int, ...]]  # (prefix, next hop, AS path)


@dataclass
class Setup:
    lab: Lab
    tor: Netns
    mon: Netns
    nodes: dict[str, Netns]
    tmp: Path
    snapshot: Path
    state_dir: Path
    gobgpd: subprocess.Popen[Any] | None = None
    station: subprocess.Popen[Any] | None = None
    bird_dirs: dict[str, Path] = field(default_factory=dict)

    def start_gobgpd(self) -> None:
        argv = ["gobgpd", "-f", str(self.tmp / "gobgpd.toml"), "-p", "--api-hosts", "127.0.0.1:50051"]
        self.gobgpd = self.lab.start(self.tor, [*argv, "--pprof-disable"], log=self.tmp / "gobgpd.log")
        wait_for(lambda: self.tor.run("gobgp", "global", check=False).returncode == 0, timeout=15, what="gobgpd")

    def start_station(self) -> None:
        argv = bgpflat_argv("bmp", "run", "--listen", f"{STATION}:{STATION_PORT}", "--state-dir", str(self.state_dir))
        self.station = self.lab.start(self.mon, argv, log=self.tmp / "station.out", env=bgpflat_env())
        wait_for(lambda: (self.state_dir / "bmp.sock").exists(), timeout=20, what="the station")

    def announce(self, node: str, blocks: tuple[str, ...]) -> None:
        """``node`` announces ``blocks`` (and the service range) and withdraws its other blocks."""
        write_bird_statics(self.bird_dirs[node], blocks=blocks, service_cidrs=(SERVICES,))
        self.nodes[node].run("birdc", "-s", str(self.bird_dirs[node] / "bird.ctl"), "configure")

    def gobgp(self, *args: str) -> Any:
        result = self.tor.run("gobgp", *args, "-j", check=False)
        return json.loads(result.stdout or "null") if result.returncode == 0 else None

    def gobgp_table(self, which: str, node: str | None = None) -> set[Path_]:
        """GoBGP's pre-policy (adj-in of ``node``), post-policy (global RIB paths from ``node``) or
        Loc-RIB (the global RIB's best paths)."""
        if which == "pre":
            data = self.gobgp("neighbor", str(node), "adj-in") or {}
        else:
            data = self.gobgp("global", "rib") or {}
        out = set()
        for prefix, paths in data.items():
            for path in paths:
                if which == "post" and path.get("neighbor-ip") != node:
                    continue
                if which == "loc-rib" and not path.get("best"):
                    continue
                attrs = {a["type"]: a for a in path["attrs"]}
                hops = [asn for segment in attrs.get(2, {}).get("as_paths", []) for asn in segment["asns"]]
                out.add((str(Prefix.parse(prefix)), attrs[3]["nexthop"], tuple(hops)))
        return out

    def station_table(self, policy: str, node: str | None = None) -> set[Path_]:
        try:
            routes = fetch(f"unix:{self.state_dir / 'bmp.sock'}", "/routes", role="bmp station")["routes"]
        except Exception:
            return set()
        return {
            (r["prefix"], r["next_hop"], tuple(r["as_path"]))
            for r in routes
            if r["policy"] == policy and (node is None or r["peer"] == node)
        }

    def tables(self) -> dict[str, tuple[set[Path_], set[Path_]]]:
        """Per table: (the station's, GoBGP's)."""
        out = {}
        for node in (NODE1, NODE2):
            for policy in ("pre", "post"):
                out[f"{policy} {node}"] = (self.station_table(policy, node), self.gobgp_table(policy, node))
        out["loc-rib"] = (self.station_table("loc-rib"), self.gobgp_table("loc-rib"))
        return out

    def status(self) -> dict[str, Any]:
        return fetch(f"unix:{self.state_dir / 'bmp.sock'}", "/status", role="bmp station")

    def bgpflat(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(bgpflat_argv(*args), env=bgpflat_env(), capture_output=True, text=True, timeout=200)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    skip_unless_root_and("bird", "birdc", "gobgpd", "gobgp")
    tmp = tmp_path_factory.mktemp("bmp-gobgp")
    snapshot = tmp / "cluster.yaml"
    snapshot.write_text(yaml.safe_dump_all(cluster_snapshot()))
    (tmp / "gobgpd.toml").write_text(GOBGPD_TOML)
    with Lab() as lab:
        tor, mon = lab.netns("tor"), lab.netns("mon")
        tor.run("ip", "addr", "add", f"{PEER}/32", "dev", "lo")
        tor.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        lab.veth(tor, "t-mon", [f"{TOR_MON}/24"], mon, "m-tor", [f"{STATION}/24"])
        setup = Setup(lab, tor, mon, {}, tmp, snapshot, tmp / "station")
        setup.start_station()
        setup.start_gobgpd()
        for index, (name, (address, block)) in enumerate(NODES.items(), start=1):
            ns = setup.nodes[name] = lab.netns(f"n{index}")
            gateway = address.rsplit(".", 1)[0] + ".100"
            lab.veth(ns, f"n{index}-t", [f"{address}/24"], tor, f"t-n{index}", [f"{gateway}/24"])
            ns.run("ip", "route", "add", "default", "via", gateway)
            other = next(a for n, (a, _) in NODES.items() if n != name)
            setup.bird_dirs[name] = tmp / name
            conf = calico_bird_conf(
                directory=tmp / name,
                router_id=address,
                local_as=NODE_AS,
                peers=[
                    (f"Mesh_{other.replace('.', '_')}", other, address, NODE_AS),
                    (f"Global_{PEER.replace('.', '_')}", PEER, address, TOR_AS),
                ],
                blocks=(block,),
                service_cidrs=(SERVICES,),
            )
            lab.start(ns, ["bird", "-f", "-c", str(conf), "-s", str(tmp / name / "bird.ctl")], log=tmp / f"{name}.out")
        # Each node sends both blocks (one by mesh re-export) and the service range, once its mesh
        # session is up too: the tests start from that whole table.
        wait_for(
            lambda: all(len(setup.gobgp_table("pre", node)) == 3 for node in (NODE1, NODE2)),
            timeout=90,
            interval=0.5,
            what="GoBGP to receive every node's routes",
        )
        yield setup


def converged(setup: Setup) -> bool:
    tables = setup.tables()
    return all(station == gobgp and gobgp for station, gobgp in tables.values())


def wait_converged(setup: Setup, what: str) -> None:
    wait_for(lambda: converged(setup), timeout=60, interval=0.5, what=what)


def test_every_table_equals_what_gobgp_holds(setup: Setup) -> None:
    wait_converged(setup, "the station's tables to equal GoBGP's")
    services = Prefix.parse(SERVICES)
    assert services not in {Prefix.parse(p) for p, _, _ in setup.station_table("post", NODE2)}  # refused
    assert services in {Prefix.parse(p) for p, _, _ in setup.station_table("pre", NODE2)}
    assert (SERVICES, NODE1, (NODE_AS,)) in setup.station_table("loc-rib")  # node-1's path is the best
    [router] = setup.status()["routers"]
    assert (router["router"], router["sys_name"], router["state"]) == (TOR_MON, "GoBGP", "up")
    tables = {(p["peer"], policy): t for p in router["peers"] for policy, t in p["tables"].items()}
    assert set(tables) == {(NODE1, "pre"), (NODE1, "post"), (NODE2, "pre"), (NODE2, "post"), ("0.0.0.0", "loc-rib")}
    assert all(t["complete"] for t in tables.values())  # GoBGP sent no End-of-RIB: complete without


def test_bmp_routes_loc_rib_names_the_node_gobgp_selected(setup: Setup) -> None:
    wait_converged(setup, "the station's tables")
    done = setup.bgpflat("bmp", "routes", "--state-dir", str(setup.state_dir), "--policy", "loc-rib", "-o", "json")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)["routes"]
    best = {
        (str(Prefix.parse(prefix)), path["neighbor-ip"])
        for prefix, paths in setup.gobgp("global", "rib").items()
        for path in paths
        if path.get("best")
    }
    assert {(r["prefix"], r["session"]) for r in records} == best
    assert {(r["router"], r["policy"]) for r in records} == {(TOR_MON, "loc-rib")}


def verify(setup: Setup, policy: str) -> tuple[int, dict[str, Any]]:
    done = setup.bgpflat(
        "verify", "--peer", PEER, "--snapshot", str(setup.snapshot), "--source", f"bmp:{setup.state_dir}",
        "--router", TOR_MON, "--policy", policy, "--wait", "--timeout", "60", "--interval", "0.5", "--settle", "2",
        "-o", "json",
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout or "{}")


def test_verify_reads_each_table(setup: Setup) -> None:
    """What the nodes sent GoBGP matches; what it kept lacks node-2's refused service range; its
    Loc-RIB still has a best path for every expected prefix (node-1's for the service range)."""
    code, result = verify(setup, "pre")
    assert code == 0, result
    code, result = verify(setup, "post")
    assert code == 1, result
    [finding] = [f for f in result["diff"]["findings"] if f["fails"]]
    assert (finding["code"], finding["router"], finding["session"], finding["prefix"]) == (
        "filtered-by-router", TOR_MON, NODE2, SERVICES,
    )  # fmt: skip
    code, result = verify(setup, "loc-rib")
    assert (code, result["status"], result["source"].endswith(f"router {TOR_MON} Loc-RIB")) == (0, "match", True)


def test_a_withdrawal_reaches_every_table(setup: Setup) -> None:
    wait_converged(setup, "the station's tables")
    block = NODES["node-1"][1]
    setup.announce("node-1", ())
    wait_for(
        lambda: converged(setup) and block not in {p for p, _, _ in setup.station_table("loc-rib")},
        timeout=60,
        interval=0.5,
        what="the withdrawal to reach the station",
    )
    assert not [path for path in setup.station_table("pre") if path[0] == block]  # node-2's re-export went too


def test_a_gobgp_restart_rebuilds_the_tables_from_scratch(setup: Setup) -> None:
    wait_converged(setup, "the station's tables")
    assert setup.gobgpd is not None
    setup.lab.stop(setup.gobgpd)
    wait_for(lambda: setup.station_table("pre") == set(), timeout=30, what="the station to drop GoBGP's tables")
    assert [r["state"] for r in setup.status()["routers"]] == ["disconnected"]
    # Changed while the router was away: node-1 announces its block again.
    setup.announce("node-1", (NODES["node-1"][1],))
    setup.start_gobgpd()
    wait_for(
        lambda: converged(setup) and len(setup.station_table("loc-rib")) == 3,
        timeout=90,
        interval=0.5,
        what="the tables after GoBGP restarted",
    )
    assert verify(setup, "loc-rib")[0] == 0
    events = [json.loads(line)["event"] for line in (setup.state_dir / "events.jsonl").read_text().splitlines()]
    assert events.count("router-connected") == 2 and "router-disconnected" in events


def test_a_new_station_session_gets_gobgps_table_dump(setup: Setup) -> None:
    """A station that starts again beside a running GoBGP gets every table whole, End-of-RIB per
    monitored peer and table included (none for Loc-RIB: GoBGP sends none), and the table dump's
    paths without ADD-PATH identifier. GoBGP never reads its BMP socket, so it notices that the
    station went away only when a write fails: node-1 announces a new block. (Not one it had
    before: GoBGP 3.10 remembers across BMP sessions which post-policy paths it sent, and would
    not send that one again.)"""
    wait_converged(setup, "the station's tables")
    assert setup.station is not None
    setup.lab.stop(setup.station)
    setup.start_station()
    setup.announce("node-1", (NODES["node-1"][1], "10.244.1.0/26"))
    wait_for(
        lambda: converged(setup) and len(setup.station_table("loc-rib")) == 4,
        timeout=60,
        interval=0.5,
        what="the table dump of a new BMP session",
    )
    [router] = setup.status()["routers"]
    eor = {(p["peer"], policy): t["eor"] for p in router["peers"] for policy, t in p["tables"].items()}
    assert eor == {
        **{(node, policy): ["ipv4 unicast"] for node in (NODE1, NODE2) for policy in ("pre", "post")},
        ("0.0.0.0", "loc-rib"): [],
    }
