"""The receive-only ExaBGP config text."""

from __future__ import annotations

import base64
import re

import pytest

from bgpflat.core.exabgp.config import PeerConfig, neighbor, render
from bgpflat.errors import SpecError

COLLECTOR = "/usr/bin/python3 /opt/bgpflat/collector.py /run/peer/collector.sock"


def config(**overrides: object) -> PeerConfig:
    values: dict[str, object] = {
        "local_as": 65000,
        "router_id": "10.0.0.100",
        "local_addresses": ("10.0.0.100",),
        "neighbors": (neighbor("10.0.0.1", peer_as=64512, description="node1"),),
    }
    values.update(overrides)
    return PeerConfig(**values)  # type: ignore[arg-type]


def stanza(text: str, head: str) -> str:
    match = re.search(r"^" + re.escape(head) + r" \{\n(.*?)^\}", text, re.M | re.S)
    assert match, f"no {head!r} stanza in\n{text}"
    return match.group(1)


def test_announces_nothing_and_only_receives() -> None:
    text = render(config(), collector_command=COLLECTOR)
    for forbidden in ("static", "announce", "route ", "send", "flow"):
        assert forbidden not in text.replace(
            "# Written by bgpflat peer run: a receive-only verification peer. It announces nothing.", ""
        )
    assert "receive {" in text and "adj-rib-in false;" in text
    assert f"run {COLLECTOR};" in text


def test_per_neighbor_keys_stay_out_of_the_template() -> None:
    # A template value overrides the neighbor's (exabgp-lab-notes §4 gotcha).
    text = render(config(), collector_command=COLLECTOR)
    template = stanza(text, "template")
    assert "local-address" not in template and "router-id" not in template
    node = stanza(text, "neighbor 10.0.0.1")
    assert "local-address 10.0.0.100;" in node and "router-id 10.0.0.100;" in node
    assert "peer-as 64512;" in node and "passive" not in node


def test_ranges_are_passive_and_listen() -> None:
    text = render(
        config(neighbors=(neighbor("10.1.0.0/24", peer_as=64512),), listen_port=1790), collector_command=COLLECTOR
    )
    node = stanza(text, "neighbor 10.1.0.0/24")
    assert "passive true;" in node and "listen 1790;" in node


def test_add_path_and_families() -> None:
    text = render(config(), collector_command=COLLECTOR)
    assert "add-path receive;" in text and "ipv4 unicast;" in text and "ipv6 unicast;" in text
    assert "add-path" not in render(config(add_path=False), collector_command=COLLECTOR)


def test_ipv6_neighbor_uses_the_ipv6_local_address() -> None:
    text = render(
        config(
            local_addresses=("10.0.0.100", "fd00::100"),
            neighbors=(neighbor("FD00:0::1", peer_as=64512), neighbor("10.0.0.1", peer_as=64512)),
        ),
        collector_command=COLLECTOR,
    )
    assert "local-address fd00::100;" in stanza(text, "neighbor fd00::1")


def test_md5_password_is_base64_so_any_character_is_safe() -> None:
    password = 'p"a;s{s} w'
    text = render(config(md5_password=password), collector_command=COLLECTOR)
    node = stanza(text, "neighbor 10.0.0.1")
    encoded = re.search(r'md5-password "([^"]+)";', node)
    assert encoded and base64.b64decode(encoded.group(1)).decode() == password
    assert "md5-base64 true;" in node


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"neighbors": ()}, "no neighbors"),
        ({"local_as": 0}, "local AS"),
        ({"router_id": "fd00::1"}, "router id"),
        ({"local_addresses": ("fd00::100",)}, "no local address of its family"),
        ({"local_addresses": ("10.0.0.100", "10.0.0.101")}, "one local address per address family"),
        ({"hold_time": 2}, "hold time"),
        ({"md5_password": "x" * 81}, "80 characters"),
        ({"families": ("ipv4 flow",)}, "unsupported families"),
    ],
)
def test_invalid_configs_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        render(config(**overrides), collector_command=COLLECTOR)


def test_bad_neighbor_text_is_refused() -> None:
    with pytest.raises(SpecError):
        neighbor("10.0.0.300", peer_as=64512)
    with pytest.raises(SpecError, match="host bits"):
        neighbor("10.1.0.1/24", peer_as=64512)
