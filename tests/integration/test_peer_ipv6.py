"""``bgpflat peer`` over IPv6 transport against BIRD 1.6's ``bird6``, configured like calico/node.

Calico runs a second BIRD (``bird6``) for IPv6: its own sessions, over IPv6 addresses, carrying
only ``ipv6 unicast``. The peer listens on an IPv6 address only (the router id must then be
given), and its table must equal what bird6 exports on the session.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.routes.table import RouteTable
from bgpflat.peer.endpoint import fetch

sys.path.insert(0, str(Path(__file__).parent))
from netns import Lab, Netns, skip_unless_root_and, start_peer, wait_for
from test_peer_bird import parse_bird_export

pytestmark = pytest.mark.integration

NODE_IP, PEER_IP = "fd00:bf6::1", "fd00:bf6::100"
# calico/node names a global peer after its address, with the colons made underscores.
PROTOCOL = "Global_fd00_bf6__100"
POOL = "fd5f:a1b2:c3d4::/48"
BLOCKS = ("fd5f:a1b2:c3d4:0:1234:5678:9abc:0/122", "fd5f:a1b2:c3d4:0:1234:5678:9abc:40/122")
SERVICES = ("fd00:96::/108",)


def bird6_conf(directory: Path) -> Path:
    """bird6.cfg the way calico/node's confd templates write it (aggregation, pool filter)."""
    directory.mkdir(parents=True, exist_ok=True)
    routes = "".join(f"   route {cidr} blackhole;\n" for cidr in (*BLOCKS, *SERVICES))
    aggr = "".join(
        f"      if ( net = {block} ) then {{ accept; }}\n      if ( net ~ {block} ) then {{ reject; }}\n"
        for block in BLOCKS
    )
    accepts = "".join(f"  if ( net ~ {cidr} ) then {{ accept; }}\n" for cidr in (*SERVICES, POOL))
    conf = directory / "bird6.conf"
    conf.write_text(
        "protocol static {\n" + routes + "}\n"
        "function calico_aggr ()\n{\n" + aggr + "}\n"
        "filter calico_export_to_bgp_peers {\n  calico_aggr();\n" + accepts + "  reject;\n}\n"
        "router id 10.0.0.1;\n"
        f'log "{directory}/bird6.log" all;\n'
        "protocol kernel { learn; persist; scan time 2; import all; export all; graceful restart; }\n"
        "protocol device { scan time 2; }\n"
        'protocol direct { debug { states }; interface -"cali*", -"kube-ipvs*", "*"; }\n'
        "template bgp bgp_template {\n"
        "  debug { states };\n"
        '  description "Connection to BGP peer";\n'
        "  local as 64512;\n"
        "  multihop;\n  gateway recursive;\n  import all;\n"
        "  export filter calico_export_to_bgp_peers;\n"
        "  add paths on;\n  graceful restart;\n"
        "  connect delay time 2;\n  connect retry time 5;\n  error wait time 5,30;\n"
        "}\n"
        f"protocol bgp {PROTOCOL} from bgp_template {{ neighbor {PEER_IP} as 65000; source address {NODE_IP}; }}\n"
    )
    return conf


@dataclass
class Setup:
    node: Netns
    bird_dir: Path
    state_dir: Path
    bird: Any

    def birdc6(self, *args: str) -> str:
        return self.node.run("birdc6", "-s", str(self.bird_dir / "bird6.ctl"), *args).stdout

    def session(self) -> dict[str, Any]:
        status = fetch(f"unix:{self.state_dir / 'peer.sock'}", "/status")
        return next(s for s in status["sessions"] if s["peer"] == NODE_IP)

    def learned(self) -> RouteTable:
        records = fetch(f"unix:{self.state_dir / 'peer.sock'}", "/routes")["routes"]
        return RouteTable(r for r in RouteTable.from_records(records) if r.session == NODE_IP)

    def exported(self) -> RouteTable:
        return parse_bird_export(self.birdc6("show", "route", "export", PROTOCOL, "all"), session=NODE_IP)

    def events(self) -> list[dict[str, Any]]:
        text = (self.state_dir / "events.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    skip_unless_root_and("bird6", "birdc6", "exabgp")
    with Lab() as lab:
        node = lab.netns("node6")
        peer = lab.netns("peer6")
        lab.veth(node, "n-peer", [f"{NODE_IP}/64"], peer, "p-node", [f"{PEER_IP}/64"])
        bird_dir = tmp_path / "node"
        conf = bird6_conf(bird_dir)
        bird = lab.start(
            node, ["bird6", "-f", "-c", str(conf), "-s", str(bird_dir / "bird6.ctl")], log=tmp_path / "bird6.out"
        )
        state_dir = tmp_path / "state"
        start_peer(
            lab,
            peer,
            listen=PEER_IP,
            neighbor=NODE_IP,
            state_dir=state_dir,
            extra=["--router-id", "10.0.0.100", "--hold-time", "9"],
            log=tmp_path / "peer.out",
        )
        wait_for(lambda: (state_dir / "peer.sock").exists(), timeout=20, what="the peer endpoint")
        yield Setup(node, bird_dir, state_dir, bird)


def test_ipv6_session_learns_bird6s_export_and_empties_when_bird6_stops(setup: Setup) -> None:
    expected = {Prefix.parse(p) for p in (*BLOCKS, *SERVICES)}

    def converged() -> bool:
        try:
            session = setup.session()
            exported = setup.exported()
            return (
                session["state"] == "up"
                and session["eor_complete"]
                and set(exported.prefixes()) == expected
                and setup.learned() == exported
            )
        except Exception:
            return False

    wait_for(converged, timeout=45, what="the peer to learn bird6's export over IPv6")
    table = setup.learned()
    assert set(table.prefixes()) == expected
    for route in table:
        assert route.next_hop == NODE_IP and route.as_path == (64512,)
        assert route.path_id is not None  # bird6 negotiates ADD-PATH like bird does
    session = setup.session()
    assert "ipv6 unicast" in session["eor"]
    eors = [e for e in setup.events() if e["event"] == "eor" and e.get("peer") == NODE_IP]
    assert any(e["family"] == "ipv6 unicast" for e in eors), eors

    seen = len(setup.events())
    Lab.stop(setup.bird)
    wait_for(lambda: setup.session()["state"] in {"down", "connecting"}, timeout=15, what="the session to go down")
    assert len(setup.learned()) == 0
    assert setup.session()["paths"] == 0
    downs = [e for e in setup.events()[seen:] if e["event"] == "down"]
    assert downs and downs[0]["flushed"] == len(expected)
