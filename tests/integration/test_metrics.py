"""Prometheus metrics, scraped by a real Prometheus server and read back through its HTTP API.

* ``bgpflat peer run --metrics-listen``: the peer learns from a calico/node-style BIRD; Prometheus
  (in the peer's namespace, where the metrics port listens) must report the prefixes the peer
  learned, the session up, End-of-RIB, and the withdraw when BIRD drops a block.
* ``bgpflat verify --watch 1 --metrics-listen``: against a real kube-apiserver seeded with the
  reference scenario, with the learned routes in a file. Dropping a route from the file shows as a
  missing route of that node, putting it back as 0; a new block in the cluster (seen through the
  watch, not a re-list) shows as missing routes, and deleting it again as 0.
* ``bgpflat bmp run --metrics-listen``: a router's BMP session over loopback; paths per table, the
  router and its monitored peer up, messages by type, the router gone when its session ends.
* The alert rules in deploy/prometheus pass ``promtool check rules``, and every metric they use
  is one bgpflat exports.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from netns import REPO, Lab, bgpflat_argv, bgpflat_env, calico_bird_conf, skip_unless_root_and, start_peer
from prometheus import Prometheus, free_port, skip_unless_prometheus

pytestmark = pytest.mark.integration

NODE_IP, PEER_IP = "10.0.0.1", "10.0.0.100"
PROTOCOL = "Global_10_0_0_100"
BLOCKS = ("10.244.0.0/26", "10.244.0.64/26")
SERVICES = ("10.96.0.0/12",)
METRICS_PORT = 9473
RULES = REPO / "deploy" / "prometheus" / "bgpflat-rules.yaml"


def test_peer_metrics_scraped_by_prometheus(tmp_path: Path) -> None:
    skip_unless_root_and("bird", "birdc")
    skip_unless_prometheus()
    with Lab("bfm") as lab:
        node = lab.netns("node")
        peer = lab.netns("peer")
        lab.veth(node, "n-peer", [f"{NODE_IP}/24"], peer, "p-node", [f"{PEER_IP}/24"])
        peer.run("ip", "link", "set", "lo", "up")
        bird_dir = tmp_path / "node"
        conf = calico_bird_conf(
            directory=bird_dir,
            router_id=NODE_IP,
            local_as=64512,
            peers=[(PROTOCOL, PEER_IP, NODE_IP, 65000)],
            blocks=BLOCKS,
            service_cidrs=SERVICES,
        )
        lab.start(node, ["bird", "-f", "-c", str(conf), "-s", str(bird_dir / "bird.ctl")], log=tmp_path / "bird.out")
        state_dir = tmp_path / "state"
        start_peer(
            lab,
            peer,
            listen=PEER_IP,
            neighbor=NODE_IP,
            state_dir=state_dir,
            extra=["--metrics-listen", f"127.0.0.1:{METRICS_PORT}"],
            log=tmp_path / "peer.out",
        )
        with Prometheus(
            tmp_path / "prometheus", targets=[f"127.0.0.1:{METRICS_PORT}"], prefix=["ip", "netns", "exec", peer.name]
        ) as prom:
            where = f'neighbor="{NODE_IP}"'
            prom.wait_for_value(f'bgpflat_peer_end_of_rib{{{where},family="ipv4 unicast"}}', 1)
            prom.wait_for_value(f'bgpflat_peer_prefixes{{{where},family="ipv4 unicast"}}', 3)
            # What Prometheus holds is what the peer itself says it learned.
            status = _peer_status(state_dir)
            (session,) = [s for s in status["sessions"] if s["peer"] == NODE_IP]
            assert session["prefixes"] == 3
            assert prom.value(f'bgpflat_peer_prefixes{{{where},family="ipv6 unicast"}}') == 0
            assert prom.value('bgpflat_peer_sessions{state="up"}') == 1
            assert prom.value(f'bgpflat_peer_session_state{{{where},state="up",peer_as="64512"}}') == 1
            assert (prom.value(f"bgpflat_peer_updates_received_total{{{where}}}") or 0) >= 1
            assert prom.value("bgpflat_peer_exabgp_restarts_total") == 0
            assert prom.value("bgpflat_peer_malformed_lines_total") == 0
            assert prom.value("bgpflat_peer_exabgp_up") == 1

            # BIRD withdraws one block: one prefix fewer, one withdraw counted.
            (bird_dir / "statics.cfg").write_text(
                "protocol static {\n" + "".join(f"   route {c} blackhole;\n" for c in (BLOCKS[0], *SERVICES)) + "}\n"
            )
            node.run("birdc", "-s", str(bird_dir / "bird.ctl"), "configure")
            prom.wait_for_value(f'bgpflat_peer_prefixes{{{where},family="ipv4 unicast"}}', 2)
            assert (prom.value(f"bgpflat_peer_withdraws_received_total{{{where}}}") or 0) >= 1
            assert prom.target_health() == ["up"]


def _peer_status(state_dir: Path) -> dict[str, Any]:
    result = subprocess.run(
        bgpflat_argv("peer", "status", "--state-dir", str(state_dir), "-o", "json"),
        env=bgpflat_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


PEER = "10.200.20.254"
# The scenario's flat spec holds the BGPPeer to the switch; it is laid over the cluster.
SPEC = str(REPO / "labs" / "calico-bgp" / "bgpflat.yaml")


def _expected_records(kubeconfig: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        bgpflat_argv("routes", "expected", "--peer", PEER, "-f", SPEC, "--kubeconfig", kubeconfig, "-o", "json"),
        env=bgpflat_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    routes: list[dict[str, Any]] = json.loads(result.stdout)["routes"]
    return [{k: v for k, v in r.items() if k not in ("reasons", "reason", "node")} for r in routes]


V1 = "crd.projectcalico.org/v1"
# (kind, the object copied, its new name): a second block of node-2, 10.233.93.0/24.
NEW_BLOCK = (
    ("IPAMBlock", "10-233-92-0-24", "10-233-93-0-24"),
    ("BlockAffinity", "node-2-10-233-92-0-24", "node-2-10-233-93-0-24"),
)


def _renamed(client: Any, kind: str, old: str, new: str) -> dict[str, Any]:
    found = client.get_object(V1, kind, old)
    assert found is not None
    spec = {**found["spec"], "cidr": "10.233.93.0/24"}
    return {"apiVersion": V1, "kind": kind, "metadata": {"name": new}, "spec": spec}


def test_verify_watch_metrics_follow_the_cluster(kube_v1: Any, tmp_path: Path) -> None:
    skip_unless_prometheus()
    kube_v1.seed_scenario("calico-bgp")
    kubeconfig = str(kube_v1.kubeconfig)
    records = _expected_records(kubeconfig)
    assert len(records) >= 6, records
    learned = tmp_path / "learned.json"
    learned.write_text(json.dumps({"routes": records}))
    port = free_port()
    log = (tmp_path / "verify.log").open("w")
    verify = subprocess.Popen(
        bgpflat_argv(
            "verify",
            "--peer",
            PEER,
            "--kubeconfig",
            kubeconfig,
            "-f",
            SPEC,
            "--learned",
            str(learned),
            "--watch",
            "1",
            "--metrics-listen",
            f"127.0.0.1:{port}",
        ),
        env=bgpflat_env(),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        with Prometheus(tmp_path / "prometheus", targets=[f"127.0.0.1:{port}"]) as prom:
            prom.wait_for_value(f'bgpflat_verify_status{{peer="{PEER}",status="match"}}', 1)
            assert prom.value("sum(bgpflat_verify_missing_routes)") == 0
            assert prom.value("sum(bgpflat_verify_expected_routes)") == len(records)
            assert (prom.value("bgpflat_verify_last_success_timestamp_seconds") or 0) > time.time() - 60

            # The peer loses one route: missing 1 for that route's node, then 0 when it is back.
            dropped = records[0]
            learned.write_text(json.dumps({"routes": records[1:]}))
            node = f'session="{dropped["session"]}"'
            prom.wait_for_value(f"bgpflat_verify_missing_routes{{{node}}}", 1)
            assert prom.value('bgpflat_verify_status{status="mismatch"}') == 1
            assert prom.value("sum(bgpflat_verify_missing_routes)") == 1
            learned.write_text(json.dumps({"routes": records}))
            prom.wait_for_value("sum(bgpflat_verify_missing_routes)", 0)
            prom.wait_for_value('bgpflat_verify_status{status="match"}', 1)

            # The cluster changes: node-2 gets a new block, which both ingress nodes should now
            # send (missing 2), and loses it again (0). The watch sees both; nothing here asks
            # verify to read the cluster again.
            with kube_v1.client() as client:
                added = [_renamed(client, kind, old, new) for kind, old, new in NEW_BLOCK]
                for manifest in added:
                    client.create_object(manifest)
                prom.wait_for_value("sum(bgpflat_verify_missing_routes)", 2)
                assert prom.value('sum(bgpflat_verify_missing_routes{node="node-1"})') == 1
                for manifest in added:
                    client.delete_object(V1, manifest["kind"], manifest["metadata"]["name"])
                prom.wait_for_value("sum(bgpflat_verify_missing_routes)", 0)
                prom.wait_for_value('bgpflat_verify_status{status="match"}', 1)
            assert (prom.value('bgpflat_verify_runs_total{status="mismatch"}') or 0) >= 1
    finally:
        if verify.poll() is None:
            verify.send_signal(signal.SIGTERM)
        code = verify.wait(timeout=20)
        log.close()
    text = (tmp_path / "verify.log").read_text()
    assert code == 0, text
    assert "verify --watch: stopped" in text
    # Followed by watching, without a hitch: no watch failed, no connection was thrown away.
    assert "watch of" not in text and "Connection pool is full" not in text, text


def test_bmp_station_metrics_scraped_by_prometheus(tmp_path: Path) -> None:
    """The station as `bgpflat bmp run` runs it; the router is a loopback socket sending what FRR
    would (tests/unit/bmp_wire.py writes the bytes from the RFCs)."""
    skip_unless_prometheus()
    sys.path.insert(0, str(REPO / "tests" / "unit"))
    import bmp_wire as w

    from bgpflat.core.net.prefixes import Prefix

    listen, metrics = free_port(), free_port()
    log = (tmp_path / "bmp.log").open("w")
    station = subprocess.Popen(
        bgpflat_argv(
            "bmp",
            "run",
            "--listen",
            f"127.0.0.1:{listen}",
            "--state-dir",
            str(tmp_path / "bmp"),
            "--metrics-listen",
            f"127.0.0.1:{metrics}",
        ),
        env=bgpflat_env(),
        stderr=log,
    )
    try:
        with Prometheus(tmp_path / "prometheus", targets=[f"127.0.0.1:{metrics}"]) as prom:
            prom.wait_for_value('bgpflat_bmp_routers{state="up"}', 0)
            node = "10.0.0.1"
            router = socket.create_connection(("127.0.0.1", listen), timeout=5)
            prefixes = [Prefix.parse("10.244.0.0/26"), Prefix.parse("10.96.0.0/12")]
            router.sendall(
                w.initiation()
                + w.peer_up(node)
                + w.route_monitoring(node, w.update(prefixes))
                + w.route_monitoring(node, w.end_of_rib())
                + w.route_monitoring(node, w.update(prefixes[:1]), post=True)
            )
            at = 'router="127.0.0.1",peer="10.0.0.1"'
            prom.wait_for_value(f'bgpflat_bmp_routes{{{at},policy="pre"}}', 2)
            assert prom.value(f'bgpflat_bmp_routes{{{at},policy="post"}}') == 1
            assert prom.value('bgpflat_bmp_routers{state="up"}') == 1
            assert prom.value('bgpflat_bmp_monitored_peers{router="127.0.0.1",state="up"}') == 1
            assert prom.value('bgpflat_bmp_messages_received_total{type="route-monitoring"}') == 3
            router.close()
            prom.wait_for_value('bgpflat_bmp_router_up{router="127.0.0.1"}', 0)
    finally:
        station.send_signal(signal.SIGTERM)
        code = station.wait(timeout=20)
        log.close()
    assert code == 0, (tmp_path / "bmp.log").read_text()


def test_alert_rules_pass_promtool_and_use_exported_metrics() -> None:
    skip_unless_prometheus()
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    exported = _exported_names()
    rules = yaml.safe_load(RULES.read_text())
    used = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"\bbgpflat_[a-z_]+", rule["expr"])
    }
    assert used and used <= exported, used - exported


def _exported_names() -> set[str]:
    """Every metric name the three exporters define (counters with their ``_total``)."""
    names: set[str] = set()
    for path in ("bgpflat/peer/metrics.py", "bgpflat/bmp/metrics.py", "bgpflat/daemon/verify_metrics.py"):
        text = (REPO / path).read_text()
        for name, kind in re.findall(r'"(bgpflat_[a-z_]+)",\s*(GAUGE|COUNTER)', text):
            names.add(name + "_total" if kind == "COUNTER" else name)
    return names
