"""The lab's top-of-rack router: FRR (zebra + bgpd) configuration and how to run it.

The namespace lab's ToR runs what ``bgpflat render tor --vendor frr`` prints for the scenario's
flat spec laid over the cluster's objects (``render_bgpd_from_intent``): one neighbour per node a
BGPPeer selects, prefix lists accepting only the pod pools and advertised service ranges, ECMP
across the advertising nodes. The office network is thus configured the way a user would
configure it — from bgpflat's output, before ``apply`` — and the lab proves that output works.
The lab composes around the renderer only what a router's own config file holds anyway: the
hostname, and several BGPPeers whose ``peerIP`` is one of the ToR's addresses (one per rack in
``ipip-migration``) merged into one ``router bgp`` — a real ToR is one router, not one per address.
Learned routes go into the ToR namespace's kernel table (zebra), which is what makes the office
reach pods.

``render_bgpd_conf`` (an open ToR: ``bgp listen range`` for every node segment) is what the
containerlab topologies ship, where no cluster exists yet when the ToR's config is written.

FRR must run as user ``frr`` (started as root it exits on the ``frrvty`` group check), each daemon
with its own config file (zebra rejects bgpd's lines) and ``--log file:`` only (a ``log file``
line in the config conflicts with it); see exabgp-lab-notes §7.

With a BMP station (``verifier.bmpPort``), the config is ``render tor --bmp IP:PORT``'s and bgpd
loads FRR's BMP module (``-M bmp``), which Debian's frr ships as ``bgpd_bmp.so``.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from bgpflat.core.office.intent import OfficeIntent
from bgpflat.core.office.tor.frr import render_frr
from bgpflat.core.office.tor.router import RouterView, router_view
from bgpflat.errors import LabError
from bgpflat.lab.fabric.netns import NetnsLab, wait_for

ZEBRA = Path("/usr/lib/frr/zebra")
BGPD = Path("/usr/lib/frr/bgpd")
BMP_MODULE = "bgpd_bmp.so"
PEER_GROUP = "CALICO"


@dataclass(frozen=True, slots=True, kw_only=True)
class TorConfig:
    hostname: str
    asn: int
    router_id: str
    listen_ranges: tuple[str, ...]
    max_paths: int = 8


def render_zebra_conf(hostname: str) -> str:
    return f"frr defaults traditional\nhostname {hostname}\n"


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


def tor_view(intent: OfficeIntent, *, addresses: Collection[str], router_id: str) -> RouterView | None:
    """The ToR as one router: every BGPPeer whose ``peerIP`` is one of ``addresses``, merged.

    None when no BGPPeer points at the ToR (a scenario without BGP, or one not flattened yet).
    BGPPeers to other addresses (e.g. the lab's verification peer) are other routers.
    """
    held = sorted({p.peer_ip for p in intent.peers if p.peer_ip in addresses})
    if not held:
        return None
    views = [router_view(intent, peer=address) for address in held]
    first = views[0]
    if len({v.as_number for v in views}) > 1:
        raise LabError(f"the BGPPeers to the ToR ({', '.join(held)}) disagree on its AS")
    neighbours = {n.address: n for view in views for n in view.neighbours}
    return dataclasses.replace(
        first,
        name="-".join(v.name for v in views),
        router_ip=router_id,
        neighbours=tuple(sorted(neighbours.values(), key=lambda n: (len(n.address), n.address))),
        max_prefixes=max(v.max_prefixes for v in views),
        reflect=any(v.reflect for v in views),
    )


def render_bgpd_from_intent(view: RouterView, *, hostname: str) -> str:
    """bgpd's config: ``bgpflat render tor --vendor frr`` output with the router's hostname."""
    text = render_frr(view)
    marker = "frr defaults traditional\n"
    if marker not in text:
        return f"hostname {hostname}\n{text}"
    return text.replace(marker, f"{marker}hostname {hostname}\n", 1)


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


def start_frr(lab: NetnsLab, *, namespace: str, view: RouterView, hostname: str) -> Path:
    """Write the ToR's zebra and bgpd configs and start both daemons in ``namespace``; their directory."""
    # FRR drops to user frr, which cannot enter a root-only state directory (pytest's tmp,
    # ~root): its files live in a directory of their own, recorded for teardown.
    frr_dir = Path(tempfile.mkdtemp(prefix=f"bgpflat-{lab.prefix}-frr-"))
    lab.record_path(frr_dir)
    (frr_dir / "zebra.conf").write_text(render_zebra_conf(hostname))
    (frr_dir / "bgpd.conf").write_text(render_bgpd_from_intent(view, hostname=hostname))
    try:
        user = pwd.getpwnam("frr")
    except KeyError as exc:
        raise LabError("FRR's user 'frr' does not exist; install frr (apt-get install frr)") from exc
    for path in (frr_dir, *frr_dir.iterdir()):
        os.chown(path, user.pw_uid, user.pw_gid)
    frr_dir.chmod(0o750)
    lab.start(
        "zebra",
        namespace,
        daemon_argv(ZEBRA, runtime_dir=frr_dir, config=frr_dir / "zebra.conf", name="zebra"),
        log=lab.state_dir / "logs" / "zebra.out",
    )
    wait_for(lambda: (frr_dir / "zserv.api").exists(), timeout=10, what="zebra's zserv.api socket")
    if view.bmp is not None and not list(Path("/usr/lib").glob(f"*/frr/modules/{BMP_MODULE}")):
        raise LabError(
            f"FRR's BMP module {BMP_MODULE} is missing under /usr/lib/*/frr/modules; install frr 8.4 or later"
        )
    lab.start(
        "bgpd",
        namespace,
        daemon_argv(
            BGPD,
            runtime_dir=frr_dir,
            config=frr_dir / "bgpd.conf",
            name="bgpd",
            extra=("-M", "bmp") if view.bmp is not None else (),
        ),
        log=lab.state_dir / "logs" / "bgpd.out",
    )
    return frr_dir
