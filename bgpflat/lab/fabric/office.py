"""The office side of a static-nat lab (scenario C): rendered by ``bgpflat render``, installed, removed.

Without BGP nothing changes in Calico; flattening is configuration of the office side only:

* the office edge router (the lab's ``tor`` namespace) gets ``bgpflat render static-routes
  --via <node>``: every pod pool and service range via the forwarding node;
* the forwarding node gets ``bgpflat render nat`` (its own nftables table, masquerading office →
  cluster traffic) and ``bgpflat render nat --format sysctl`` (IP forwarding);
* the office resolver runs ``bgpflat render dns --dnsmasq --to <forwarding DNS>``.

The texts come from running ``bgpflat render`` against the lab's API server with the lab's flat
spec — what a user would do — and are installed as a user would install them: each route line
in the edge router, the nft file in the node, the dnsmasq lines as the resolver's config.
``remove`` takes all of it away again (forwarding stays on: lab nodes forward anyway).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bgpflat.errors import LabError
from bgpflat.lab.fabric.flatlab import OFFICE_RESOLVER, FlatLab
from bgpflat.lab.fabric.lifecycle import Lab, bgpflat_argv, child_env
from bgpflat.lab.fabric.netns import ns_argv, run

# Runs ``bgpflat <args>`` and returns the finished process; the check passes one that logs.
Runner = Callable[..., subprocess.CompletedProcess[str]]

ROUTE_LINE = re.compile(r"^ip route replace (\S+) via (\S+)$")
NFT_TABLE = re.compile(r"^table (ip|ip6|inet) (\S+)$", re.MULTILINE)
SYSCTL_LINE = re.compile(r"^([a-z0-9_.]+)\s*=\s*(\S+)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class OfficeConfigs:
    """What ``bgpflat render`` printed, one file each, in ``<state>/check/office``."""

    static_routes: Path
    nat: Path
    sysctl: Path
    dns: Path

    def routes(self) -> list[tuple[str, str]]:
        """(prefix, via) of every route line (comments skipped)."""
        found = []
        for line in self.static_routes.read_text().splitlines():
            match = ROUTE_LINE.match(line.strip())
            if match:
                found.append((match[1], match[2]))
        return found

    def nat_tables(self) -> list[tuple[str, str]]:
        return sorted(set(NFT_TABLE.findall(self.nat.read_text())))


RENDER_TIMEOUT = 60.0


def run_bgpflat(_what: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``bgpflat <args>`` as a child process, output captured."""
    return subprocess.run(
        bgpflat_argv(*args), capture_output=True, text=True, env=child_env(), timeout=RENDER_TIMEOUT, check=False
    )


def render(lab: Lab, directory: Path, bgpflat: Runner = run_bgpflat) -> OfficeConfigs:
    """``bgpflat render`` each office-side config against the lab's API server into ``directory``."""
    fabric = lab.fabric()
    topology = fabric.topology
    if topology.forwarding_node is None:
        raise LabError(f"{topology.directory / 'topology.yaml'} names no forwardingNode")
    directory.mkdir(parents=True, exist_ok=True)
    configs = OfficeConfigs(
        static_routes=directory / "static-routes.sh",
        nat=directory / "nat.nft",
        sysctl=directory / "forwarding.conf",
        dns=directory / "office-dns.conf",
    )
    inputs = ["-f", str(lab.spec_file), "--kubeconfig", str(lab.kubeconfig)]
    via = ["--via", topology.forwarding_node]
    dns_to = ["--to", topology.dns_forward] if topology.dns_forward else []
    search = topology.office.search_domain
    commands: Sequence[tuple[str, list[str]]] = (
        ("static routes", ["render", "static-routes", *inputs, *via, "--output-file", str(configs.static_routes)]),
        ("nat", ["render", "nat", *inputs, *via, "--output-file", str(configs.nat)]),
        ("sysctl", ["render", "nat", "--format", "sysctl", *inputs, *via, "--output-file", str(configs.sysctl)]),
        (
            "dns",
            ["render", "dns", "--dnsmasq", *inputs, *dns_to, "--listen", topology.office.resolver,
             *(["--search-domain", search] if search else []), "--output-file", str(configs.dns)],
        ),
    )  # fmt: skip
    for what, args in commands:
        result = bgpflat(f"render {what}", *args)
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()] or ["(no output)"]
            raise LabError(f"bgpflat {' '.join(args[:2])} failed (exit {result.returncode}): {lines[-1].strip()}")
    if not configs.routes():
        raise LabError(f"bgpflat render static-routes printed no route ({configs.static_routes})")
    return configs


def _forwarding_namespace(fabric: FlatLab) -> str:
    node = fabric.topology.forwarding_node
    if node is None:
        raise LabError("the lab has no forwarding node")
    return fabric.namespace(f"node-{node}")


def install(fabric: FlatLab, configs: OfficeConfigs) -> str:
    """Routes into the edge router, NAT and forwarding into the forwarding node, DNS into the resolver."""
    done = install_forwarding(fabric, configs)
    if any(p.name == OFFICE_RESOLVER for p in fabric.netns.state.processes):
        fabric.netns.stop([OFFICE_RESOLVER])
    fabric.start_office_resolver(configs.dns.read_text())
    return f"{done}; office resolver forwards per {configs.dns.name}"


def install_forwarding(fabric: FlatLab, configs: OfficeConfigs, *, nat: bool = True) -> str:
    """The static routes into the edge router; the sysctl and (with ``nat``) the NAT into the forwarding node."""
    routes = configs.routes()
    fabric.netns.ip(fabric.namespace("tor"), [f"route replace {prefix} via {via}" for prefix, via in routes])
    node_ns = _forwarding_namespace(fabric)
    if nat:
        run(ns_argv(node_ns, ["nft", "-f", str(configs.nat)]))
    settings = {}
    for line in configs.sysctl.read_text().splitlines():
        match = SYSCTL_LINE.match(line.strip())
        if match:
            settings[match[1]] = match[2]
    fabric.netns.sysctl(node_ns, settings)
    tables = ", ".join(name for _, name in configs.nat_tables()) if nat else "none"
    return (
        f"{len(routes)} static route(s) on the edge router ({', '.join(p for p, _ in routes)} via "
        f"{routes[0][1]}); nft table {tables} and {', '.join(settings) or 'no sysctl'} on "
        f"{fabric.topology.forwarding_node}"
    )


def remove(fabric: FlatLab, configs: OfficeConfigs) -> str:
    """Undo ``install``: delete the routes and the NAT table, stop the office resolver."""
    tor_ns = fabric.namespace("tor")
    routes = configs.routes()
    for prefix, via in routes:
        run(ns_argv(tor_ns, ["ip", "route", "del", prefix, "via", via]), check=False)
    tables = remove_nat(fabric, configs)
    fabric.netns.stop([OFFICE_RESOLVER])
    left = [p for p, _ in routes if p in installed_routes(fabric)]
    if left:
        raise LabError(f"the edge router still routes {', '.join(left)}")
    return f"removed {len(routes)} static route(s), nft table(s) {', '.join(tables)}, the office resolver"


def remove_nat(fabric: FlatLab, configs: OfficeConfigs) -> list[str]:
    """Delete the forwarding node's NAT tables (those ``configs.nat`` creates); returns their names."""
    node_ns = _forwarding_namespace(fabric)
    tables = configs.nat_tables()
    for family, name in tables:
        run(ns_argv(node_ns, ["nft", "delete", "table", family, name]), check=False)
    still = [name for family, name in tables if name in run(ns_argv(node_ns, ["nft", "list", "tables", family]))]
    if still:
        raise LabError(f"{fabric.topology.forwarding_node} still has nft table {', '.join(still)}")
    return [name for _, name in tables]


def installed_routes(fabric: FlatLab) -> set[str]:
    """Destinations of the static routes in the edge router's table."""
    out = run(ns_argv(fabric.namespace("tor"), ["ip", "-o", "route", "show", "proto", "boot"]))
    return {line.split()[0] for line in out.splitlines() if " via " in line}
