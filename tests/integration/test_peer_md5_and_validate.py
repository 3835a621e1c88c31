"""TCP MD5 between the peer and a Calico-style BIRD, and ExaBGP's own verdict on the config."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bgpflat.core.exabgp.config import PeerConfig, neighbor, render
from bgpflat.peer.endpoint import fetch
from bgpflat.peer.process import exabgp_environment

sys.path.insert(0, str(Path(__file__).parent))
from netns import REPO, Lab, calico_bird_conf, skip_unless_root_and, start_peer, wait_for

pytestmark = pytest.mark.integration

NODE_IP, PEER_IP = "10.0.0.1", "10.0.0.100"


def test_exabgp_accepts_the_generated_config(tmp_path: Path) -> None:
    config = PeerConfig(
        local_as=65000,
        router_id="10.0.0.100",
        local_addresses=("10.0.0.100", "fd00::100"),
        neighbors=(
            neighbor("10.0.0.1", peer_as=64512, description="node1"),
            neighbor("10.1.0.0/24", peer_as=64512),
            neighbor("fd00::1", peer_as=64512),
        ),
        md5_password='a "quoted"; {password}',
    )
    conf = tmp_path / "exabgp.conf"
    conf.write_text(render(config, collector_command=f"{sys.executable} /dev/null"))
    result = subprocess.run(
        [sys.executable, "-m", "exabgp", "validate", "-nv", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        env=exabgp_environment(),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for name in ("10.0.0.1", "10.1.0.0/24", "fd00::1"):
        assert f"✓ neighbor  {name}" in output
    assert "local-address 10.0.0.100;" in output and "local-address fd00::100;" in output


def test_md5_password_must_match(tmp_path: Path) -> None:
    skip_unless_root_and("bird", "exabgp")
    with Lab() as lab:
        node = lab.netns("node")
        peer = lab.netns("peer")
        lab.veth(node, "n-peer", [f"{NODE_IP}/24"], peer, "p-node", [f"{PEER_IP}/24"])
        conf = calico_bird_conf(
            directory=tmp_path / "node",
            router_id=NODE_IP,
            local_as=64512,
            peers=[("Global_10_0_0_100", PEER_IP, NODE_IP, 65000)],
        )
        conf.write_text(
            conf.read_text().replace(f"source address {NODE_IP};", f'source address {NODE_IP}; password "s3cr et";')
        )
        lab.start(node, ["bird", "-f", "-c", str(conf), "-s", str(tmp_path / "bird.ctl")], log=tmp_path / "bird.out")
        env = {**os.environ, "PYTHONPATH": str(REPO)}

        def established(state_dir: Path) -> bool:
            if not (state_dir / "peer.sock").exists():
                return False
            return fetch(f"unix:{state_dir / 'peer.sock'}", "/status")["sessions"][0]["state"] == "up"

        # The right password first: BIRD backs off after failed sessions (error wait 5..30 s),
        # which would only slow the positive case down.
        right = start_peer(
            lab,
            peer,
            listen=PEER_IP,
            neighbor=NODE_IP,
            state_dir=tmp_path / "a",
            env={**env, "BGPFLAT_PEER_PASSWORD": "s3cr et"},
        )
        wait_for(lambda: established(tmp_path / "a"), timeout=30, what="the MD5-protected session")
        Lab.stop(right)
        wrong = tmp_path / "wrong"
        wrong.write_text("not it\n")
        start_peer(
            lab,
            peer,
            listen=PEER_IP,
            neighbor=NODE_IP,
            state_dir=tmp_path / "b",
            extra=["--password-file", str(wrong)],
            env=env,
        )
        wait_for(lambda: (tmp_path / "b" / "peer.sock").exists(), timeout=20, what="the second peer")
        time.sleep(6)  # BIRD retries every 5 s; ExaBGP connects out at once
        assert not established(tmp_path / "b")
