"""``verify --source bmp:DIR`` end to end: two calico/node-style BIRD nodes, an FRR ToR that refuses
one of node-2's routes, and the BMP station between them and the verdict.

The cluster snapshot and the nodes are those of ``test_expected_routes_bird.py`` (full mesh, eBGP to
10.0.0.100); here 10.0.0.100 is FRR (``bgpd -M bmp``), whose inbound route-map for node-2 refuses the
service range. What the nodes sent (pre-policy) must match the expected routes exactly; what the ToR
kept (post-policy) must not, with the refused route reported as ``filtered-by-router`` naming the
router and node-2.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from netns import Lab, bgpflat_argv, bgpflat_env, calico_bird_conf, skip_unless_root_and, wait_for
from test_bmp_frr import frr_argv
from test_expected_routes_bird import NODES, PEER, SERVICES, cluster_snapshot

pytestmark = pytest.mark.integration

TOR_MON, STATION = "10.0.9.1", "10.0.9.100"
NODE2 = NODES["node-2"][0]

BGPD_CONF = (
    f"""frr defaults traditional
hostname tor
ip prefix-list NODE2-SERVICES seq 5 permit {SERVICES}
route-map FROM-NODE-2 deny 10
 match ip address prefix-list NODE2-SERVICES
exit
route-map FROM-NODE-2 permit 20
exit
router bgp 65000
 bgp router-id {PEER}
 no bgp ebgp-requires-policy
"""
    + "".join(
        f" neighbor {address} remote-as 64512\n neighbor {address} ebgp-multihop 64\n"
        f" neighbor {address} update-source {PEER}\n"
        for address, _ in NODES.values()
    )
    + " address-family ipv4 unicast\n"
    + "".join(f"  neighbor {address} soft-reconfiguration inbound\n" for address, _ in NODES.values())
    + f"""  neighbor {NODE2} route-map FROM-NODE-2 in
 exit-address-family
 bmp targets bgpflat
  bmp connect {STATION} port 5000 min-retry 100 max-retry 1000
  bmp monitor ipv4 unicast pre-policy
  bmp monitor ipv4 unicast post-policy
 exit
exit
"""
)


@dataclass
class Setup:
    snapshot: Path
    state_dir: Path

    def verify(self, *extra: str) -> tuple[int, dict[str, Any]]:
        argv = bgpflat_argv(
            "verify", "--peer", PEER, "--snapshot", str(self.snapshot),
            "--source", f"bmp:{self.state_dir}", "--router", TOR_MON, "-o", "json", *extra,
        )  # fmt: skip
        done = subprocess.run(argv, env=bgpflat_env(), capture_output=True, text=True, timeout=200)
        return done.returncode, json.loads(done.stdout or "{}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    skip_unless_root_and("bird", "birdc", "vtysh")
    if not list(Path("/usr/lib").glob("*/frr/modules/bgpd_bmp.so")):
        pytest.skip("needs FRR with its BMP module (apt-get install frr)")
    tmp = tmp_path_factory.mktemp("bmp-verify")
    snapshot = tmp / "cluster.yaml"
    snapshot.write_text(yaml.safe_dump_all(cluster_snapshot()))
    frr_dir = Path(tempfile.mkdtemp(prefix="bgpflat-bmp-verify-frr-"))
    try:
        with Lab() as lab:
            tor, mon = lab.netns("tor"), lab.netns("mon")
            tor.run("ip", "addr", "add", f"{PEER}/32", "dev", "lo")
            tor.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
            lab.veth(tor, "t-mon", [f"{TOR_MON}/24"], mon, "m-tor", [f"{STATION}/24"])
            for index, (name, (address, block)) in enumerate(NODES.items(), start=1):
                ns = lab.netns(f"n{index}")
                gateway = address.rsplit(".", 1)[0] + ".100"
                lab.veth(ns, f"n{index}-t", [f"{address}/24"], tor, f"t-n{index}", [f"{gateway}/24"])
                ns.run("ip", "route", "add", "default", "via", gateway)
                other = next(a for n, (a, _) in NODES.items() if n != name)
                conf = calico_bird_conf(
                    directory=tmp / name,
                    router_id=address,
                    local_as=64512,
                    peers=[
                        (f"Mesh_{other.replace('.', '_')}", other, address, 64512),
                        (f"Global_{PEER.replace('.', '_')}", PEER, address, 65000),
                    ],
                    blocks=(block,),
                    service_cidrs=(SERVICES,),
                )
                lab.start(
                    ns, ["bird", "-f", "-c", str(conf), "-s", str(tmp / name / "bird.ctl")], log=tmp / f"{name}.out"
                )
            (frr_dir / "zebra.conf").write_text("hostname tor\n")
            (frr_dir / "bgpd.conf").write_text(BGPD_CONF)
            user = pwd.getpwnam("frr")
            for path in (frr_dir, *frr_dir.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
            lab.start(tor, frr_argv("/usr/lib/frr/zebra", frr_dir, "zebra"), log=tmp / "zebra.out")
            wait_for(lambda: (frr_dir / "zserv.api").exists(), timeout=15, what="zebra")
            lab.start(tor, frr_argv("/usr/lib/frr/bgpd", frr_dir, "bgpd", "-M", "bmp"), log=tmp / "bgpd.out")
            wait_for(lambda: (frr_dir / "bgpd.vty").exists(), timeout=15, what="bgpd")

            def received() -> int:
                total = 0
                for address, _ in NODES.values():
                    result = tor.run(
                        "vtysh", "--vty_socket", str(frr_dir), "-c",
                        f"show bgp ipv4 unicast neighbors {address} received-routes json", check=False,
                    )  # fmt: skip
                    if result.returncode == 0 and result.stdout.strip():
                        total += len(json.loads(result.stdout).get("receivedRoutes") or {})
                return total

            # Each node sends both blocks (one by mesh re-export) and the service range. The
            # station starts once FRR holds them all: FRR 8.4 streams routes its policy refused to
            # pre-policy only in a new BMP session's table dump (README, BMP station).
            wait_for(lambda: received() == 6, timeout=90, what="FRR to receive every node's routes")
            state_dir = tmp / "station"
            argv = bgpflat_argv("bmp", "run", "--listen", f"{STATION}:5000", "--state-dir", str(state_dir))
            lab.start(mon, argv, log=tmp / "station.out", env=bgpflat_env())
            wait_for(lambda: (state_dir / "bmp.sock").exists(), timeout=20, what="the station")
            yield Setup(snapshot, state_dir)
    finally:
        shutil.rmtree(frr_dir, ignore_errors=True)


def test_what_the_nodes_sent_the_tor_matches(setup: Setup) -> None:
    code, result = setup.verify("--policy", "pre", "--wait", "--timeout", "120", "--interval", "1", "--settle", "10")
    assert (code, result["status"]) == (0, "match"), result
    assert result["source"].endswith(f"router {TOR_MON} pre-policy")


def test_what_the_tor_refused_is_filtered_by_router(setup: Setup) -> None:
    code, result = setup.verify("--wait", "--timeout", "120", "--interval", "1", "--settle", "10")
    assert (code, result["status"]) == (1, "mismatch"), result
    [finding] = [f for f in result["diff"]["findings"] if f["fails"]]
    assert (finding["code"], finding["router"], finding["session"], finding["node"], finding["prefix"]) == (
        "filtered-by-router", TOR_MON, NODE2, "node-2", SERVICES,
    )  # fmt: skip
    assert f"filtered by router {TOR_MON} via {NODE2} (node-2)" in finding["explanation"]
