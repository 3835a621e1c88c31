"""The lab's top-of-rack router: FRR (zebra + bgpd) configuration and how to run it.

The ToR accepts BGP sessions from any address on the node network (``bgp listen range``) with
``remote-as external``, so whichever nodes a BGPPeer selects can peer without touching the ToR —
the office network is configured once, the cluster decides who talks. Learned routes go into the
ToR namespace's kernel table (zebra), which is what makes the office reach pods; ECMP across the
advertising nodes is allowed (``maximum-paths``) as Calico's service-advertisement docs ask.

FRR must run as user ``frr`` (started as root it exits on the ``frrvty`` group check), each daemon
with its own config file (zebra rejects bgpd's lines) and ``--log file:`` only (a ``log file``
line in the config conflicts with it); see exabgp-lab-notes §7.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ZEBRA = Path("/usr/lib/frr/zebra")
BGPD = Path("/usr/lib/frr/bgpd")
PEER_GROUP = "CALICO"


@dataclass(frozen=True, slots=True, kw_only=True)
class TorConfig:
    hostname: str
    asn: int
    router_id: str
    listen_ranges: tuple[str, ...]
    max_paths: int = 8


def render_zebra_conf(tor: TorConfig) -> str:
    return f"frr defaults traditional\nhostname {tor.hostname}\n"


def render_bgpd_conf(tor: TorConfig) -> str:
    """bgpd config: dynamic eBGP neighbours from the node network, routes into the kernel."""
    lines = [
        "frr defaults traditional",
        f"hostname {tor.hostname}",
        "!",
        f"router bgp {tor.asn}",
        f" bgp router-id {tor.router_id}",
        # Without a policy, FRR 8 refuses to exchange eBGP routes (RFC 8212); the lab ToR is open.
        " no bgp ebgp-requires-policy",
        " bgp bestpath as-path multipath-relax",
        f" neighbor {PEER_GROUP} peer-group",
        f" neighbor {PEER_GROUP} remote-as external",
        f" neighbor {PEER_GROUP} description calico-nodes",
        *(f" bgp listen range {r} peer-group {PEER_GROUP}" for r in tor.listen_ranges),
        " !",
        " address-family ipv4 unicast",
        f"  neighbor {PEER_GROUP} activate",
        f"  maximum-paths {tor.max_paths}",
        " exit-address-family",
        "!",
    ]
    return "\n".join(lines) + "\n"


def daemon_argv(binary: Path, *, runtime_dir: Path, config: Path, name: str, extra: Sequence[str] = ()) -> list[str]:
    """Command line of one FRR daemon with every runtime file under ``runtime_dir``."""
    return [
        str(binary),
        "-u",
        "frr",
        "-g",
        "frr",
        "--vty_socket",
        str(runtime_dir),
        "-P",
        "0",  # no telnet vty port: vtysh talks over the socket in runtime_dir
        "-f",
        str(config),
        "-z",
        str(runtime_dir / "zserv.api"),
        "-i",
        str(runtime_dir / f"{name}.pid"),
        "--log",
        f"file:{runtime_dir / f'{name}.log'}",
        *extra,
    ]


def vtysh_argv(runtime_dir: Path, *commands: str) -> list[str]:
    argv = ["vtysh", "--vty_socket", str(runtime_dir)]
    for command in commands:
        argv += ["-c", command]
    return argv
