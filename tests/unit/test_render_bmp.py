"""``render tor --bmp IP:PORT``: the station lands in the router config; a typo is one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpflat.cli import main

LAB = Path(__file__).resolve().parents[2] / "labs" / "calico-bgp"
INPUTS = ["-f", str(LAB / "bgpflat.yaml"), "--snapshot", str(LAB / "cluster.yaml")]


def test_frr_streams_both_policies_to_the_station(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "tor", "--vendor", "frr", "--bmp", "10.0.9.100:5000", *INPUTS]) == 0
    out = capsys.readouterr().out
    assert " bmp connect 10.0.9.100 port 5000 min-retry 1000 max-retry 30000\n" in out
    assert "bmp monitor ipv4 unicast pre-policy" in out and "bmp monitor ipv4 unicast post-policy" in out
    assert out.count("soft-reconfiguration inbound\n") == 2  # one per node (and the comment saying why)


def test_without_bmp_nothing_changes(capsys: pytest.CaptureFixture[str]) -> None:
    for vendor in ("frr", "junos", "eos", "cisco-ios", "nxos", "bird"):
        assert main(["render", "tor", "--vendor", vendor, *INPUTS]) == 0
        assert "bmp" not in capsys.readouterr().out.lower()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tor:5000", "--bmp: 'tor' is not an IP address"),
        ("10.0.9.100", "--bmp: '10.0.9.100' is not IP:PORT"),
        ("10.0.9.100:70000", "is not IP:PORT"),
    ],
)
def test_a_bad_station_is_one_line(capsys: pytest.CaptureFixture[str], value: str, message: str) -> None:
    assert main(["render", "tor", "--vendor", "frr", "--bmp", value, *INPUTS]) == 2
    assert message in capsys.readouterr().err
