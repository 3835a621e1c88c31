"""Scenario B in the lab: an OpenVPN server on a cluster node, a developer host and an office LAN as clients.

The fabric (``bgpflat.lab.fabric``) builds the cluster and, in ``topology.yaml``'s ``office``, the
internet: the developer host and a public resolver on one segment behind the internet router
(the lab's ToR, which routes the node network but knows no pod or service range). ``build`` adds
at ``lab up``, from ``topology.yaml``'s ``openvpn`` section:

* a CA with a server certificate and one client certificate per client, made with openssl into
  ``<state>/vpn/pki`` (never anywhere else, gone with ``lab down``);
* the office LAN: a gateway (its WAN on the internet segment, masquerading the LAN as office
  routers do), the VPN client host that fronts the LAN, an office host without VPN software, and
  the office resolver, which forwards everything to the public resolver until the check adds the
  cluster domain;
* the public resolver's answer for ``outsideName``: the name a public (CDN) lookup is made with.
  The cluster DNS does not know it, so an answer for it came from the office side.

``render`` runs ``bgpflat render vpn|nat|dns`` against the lab's API server; ``install_server``,
``connect`` and ``route_lan`` put those files to work exactly as printed, as a user would
(certificates beside them); ``revert`` takes all of it away again.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bgpflat.errors import LabError
from bgpflat.lab.controlplane.pki import issue, make_ca
from bgpflat.lab.fabric import services
from bgpflat.lab.fabric.flatlab import FlatLab
from bgpflat.lab.fabric.lifecycle import Lab, Progress
from bgpflat.lab.fabric.netns import NETNS_ETC, ns_argv, run
from bgpflat.lab.fabric.office import Runner, run_bgpflat
from bgpflat.lab.fabric.topology import MODE_OPENVPN, TOPOLOGY_FILE, Topology
from bgpflat.lab.processes import log_tail

MODE = MODE_OPENVPN
SERVER = "openvpn:server"
LAN_RESOLVER = "dns:office-lan"
DEVELOPER = "developer"  # the developer host's role, and its certificate's common name
# Roles of the office LAN's namespaces.
GATEWAY, VPN_CLIENT, LAN_HOST, LAN_DNS = "office-gw", "office-vpn", "office-host", "office-dns"
READY = "Initialization Sequence Completed"
START_TIMEOUT = 20.0
NFT_TABLE = re.compile(r"^table (ip|ip6|inet) (\S+) \{$", re.MULTILINE)
PUSHED_ROUTE = re.compile(r'^push "route (\S+) (\S+)"$', re.MULTILINE)
LAN_ROUTE = re.compile(r"^ip route replace (\S+) via (\S+)$", re.MULTILINE)
SEARCH = "default.svc.cluster.local svc.cluster.local cluster.local"


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """``topology.yaml``'s ``openvpn`` section: the public name and the office LAN."""

    outside_name: str
    outside_address: str
    lan_network: str
    lan_router: str  # the office gateway on the LAN
    gateway_wan: str  # … and on the internet segment
    vpn_client: str  # the LAN's VPN client host
    vpn_client_name: str  # its certificate's common name (its ccd file)
    lan_host: str
    lan_resolver: str

    @property
    def lan_length(self) -> int:
        return int(self.lan_network.split("/")[1])


def load_site(topology: Topology) -> Site:
    path = topology.directory / TOPOLOGY_FILE
    try:
        data = (yaml.safe_load(path.read_text()) or {}).get("openvpn") or {}
        lan = data["lan"]
        return Site(
            outside_name=str(data["outsideName"]),
            outside_address=str(data["outsideAddress"]),
            lan_network=str(lan["network"]),
            lan_router=str(lan["router"]),
            gateway_wan=str(lan["gatewayWan"]),
            vpn_client=str(lan["vpnClient"]),
            vpn_client_name=str(lan.get("vpnClientName") or "office-gateway"),
            lan_host=str(lan["host"]),
            lan_resolver=str(lan["resolver"]),
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise LabError(f"{path}: the openvpn section needs outsideName, outsideAddress and lan ({exc})") from exc


def client_roles(site: Site) -> dict[str, str]:
    """Certificate common name → the namespace role its client runs in."""
    return {DEVELOPER: DEVELOPER, site.vpn_client_name: VPN_CLIENT}


def vpn_dir(lab: Lab) -> Path:
    return lab.state_dir / "vpn"


# -- lab up ----------------------------------------------------------------------------------------
def build(lab: Lab, fabric: FlatLab, say: Progress) -> None:
    """What ``lab up`` adds for the OpenVPN setup (``Lab.up``'s ``extend``)."""
    site = load_site(fabric.topology)
    say("OpenVPN: certificates (openssl), the office LAN, the resolvers")
    make_pki(vpn_dir(lab) / "pki", clients=list(client_roles(site)))
    _build_office(fabric, site)
    # The public resolver: answers the public name, nothing else (the lab has no internet behind it).
    fabric.start_office_resolver(
        f"# The internet's DNS as the lab has it: one public name, answered as seen from the office.\n"
        f"address=/{site.outside_name}/{site.outside_address}\n"
    )
    start_lan_resolver(fabric, site, rendered=None)
    fabric.info["openvpn"] = {
        # What the check must find again once the clients' DNS script has run as down script.
        "resolv_conf": {role: _resolv_conf(fabric.namespace(role)) for role in client_roles(site).values()},
    }
    fabric.netns.save()


def make_pki(directory: Path, *, clients: Sequence[str]) -> None:
    """A throw-away CA, the server's certificate (serverAuth) and one per client (clientAuth)."""
    make_ca(directory, subject="/CN=bgpflat-lab-vpn-ca")
    usage = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\n"
    issue(directory, name="server", subject="/CN=server", extensions=usage + "extendedKeyUsage=serverAuth\n")
    for name in clients:
        issue(directory, name=name, subject=f"/CN={name}", extensions=usage + "extendedKeyUsage=clientAuth\n")


def _build_office(fabric: FlatLab, site: Site) -> None:
    lab, topo = fabric.netns, fabric.topology
    tor = fabric.namespace("tor")
    gateway = lab.attach_host(
        GATEWAY,
        bridge_ns=tor,
        bridge="broffice",
        port="owan",
        address=site.gateway_wan,
        length=topo.office.length,
        forwarding=True,
        gateway=topo.office.router,
    )
    lab.ip(gateway, ["link add brlan type bridge", f"addr add {site.lan_router}/{site.lan_length} dev brlan",
                     "link set brlan up"])  # fmt: skip
    # Like any office router: the LAN leaves for the internet masqueraded behind the WAN address.
    run(ns_argv(gateway, ["nft", "-f", "-"]), input=(
        "table ip office_nat {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat;\n"
        '\t\toifname "eth0" masquerade\n\t}\n}\n'
    ))  # fmt: skip
    for role, port, address in (
        (VPN_CLIENT, "lvpn", site.vpn_client),
        (LAN_HOST, "lhost", site.lan_host),
        (LAN_DNS, "ldns", site.lan_resolver),
    ):
        namespace = lab.attach_host(
            role,
            bridge_ns=gateway,
            bridge="brlan",
            port=port,
            address=address,
            length=site.lan_length,
            gateway=site.lan_router,
        )
        if role == LAN_HOST:
            # What the office's DHCP hands out (bgpflat render dns prints the same hints).
            lab.write_resolv_conf(namespace, f"nameserver {site.lan_resolver}\nsearch {SEARCH}\n"
                                             "options timeout:1 attempts:1\n")  # fmt: skip
        elif role == VPN_CLIENT:
            # Its own resolv.conf, which the client's DNS script rewrites (never the host's file).
            lab.write_resolv_conf(namespace, f"nameserver {site.lan_resolver}\noptions timeout:1 attempts:1\n")


def start_lan_resolver(fabric: FlatLab, site: Site, *, rendered: str | None) -> None:
    """(Re)start the office resolver: ``rendered`` (``bgpflat render dns --dnsmasq``) plus its upstream."""
    if any(p.name == LAN_RESOLVER for p in fabric.netns.state.processes):
        fabric.netns.stop([LAN_RESOLVER])
    path = fabric.netns.state_dir / "dns" / "office-lan.conf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        (rendered or "")
        + f"# Every other name: the office's upstream, the public resolver.\nserver={fabric.topology.office.resolver}\n"
    )
    fabric.netns.start(
        LAN_RESOLVER,
        fabric.namespace(LAN_DNS),
        services.office_resolver_argv(listen=site.lan_resolver, conf_file=path),
        log=fabric.netns.state_dir / "logs" / "dns-office-lan.log",
    )


def _resolv_conf(namespace: str) -> str:
    path = NETNS_ETC / namespace / "resolv.conf"
    return path.read_text() if path.is_file() else ""


def hints(lab: Lab) -> list[str]:
    fabric = lab.fabric()
    site = load_site(fabric.topology)
    node = fabric.topology.forwarding_node
    office = fabric.topology.office
    return [
        f"VPN side:     bgpflat render vpn --openvpn --part server|client|client-dns|ccd|lan --scenario "
        f"labs/{lab.record.scenario} --via {node} (lab check starts the server on {node} and both clients,"
        " then stops them)",
        f"certificates: {vpn_dir(lab) / 'pki'}",
        f"developer:    ip netns exec {fabric.namespace(DEVELOPER)} curl http://whoami   ({office.developer} on "
        f"the internet, resolver {office.resolver}; answers while its VPN client runs)",
        f"office LAN:   {site.lan_network}: VPN client {site.vpn_client}, host {site.lan_host}, "
        f"resolver {site.lan_resolver}; ip netns exec {fabric.namespace(LAN_HOST)} curl http://whoami",
    ]


# -- lab check: render, install, remove -----------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class VpnConfigs:
    """What ``bgpflat render`` printed, one file each."""

    server: Path
    ccd: Path
    clients: dict[str, Path]  # common name → its profile
    client_dns: Path
    nat: Path
    sysctl: Path
    lan: Path
    lan_dns: Path

    def pushed_routes(self) -> list[str]:
        """The prefixes the server config pushes to its clients (``push "route ADDRESS MASK"``)."""
        return [
            str(ipaddress.IPv4Network(f"{address}/{mask}"))
            for address, mask in PUSHED_ROUTE.findall(self.server.read_text())
        ]

    def lan_routes(self) -> list[tuple[str, str]]:
        return LAN_ROUTE.findall(self.lan.read_text())

    def nat_tables(self) -> list[tuple[str, str]]:
        return sorted(set(NFT_TABLE.findall(self.nat.read_text())))


def render(lab: Lab, directory: Path, bgpflat: Runner = run_bgpflat) -> VpnConfigs:
    """``bgpflat render vpn|nat|dns`` for the lab's cluster (a ``bgpflat snapshot`` of it), into ``directory``."""
    fabric = lab.fabric()
    site = load_site(fabric.topology)
    node = fabric.topology.forwarding_node or ""
    directory.mkdir(parents=True, exist_ok=True)
    configs = VpnConfigs(
        server=directory / "server.conf",
        ccd=directory / site.vpn_client_name,
        clients={name: directory / f"client-{name}.conf" for name in client_roles(site)},
        client_dns=directory / "vpn-dns",
        nat=directory / "nat.nft",
        sysctl=directory / "forwarding.conf",
        lan=directory / "lan-routes.sh",
        lan_dns=directory / "office-dns.conf",
    )
    # One read of the API server, nine renders from it: `render` takes a snapshot as well as a cluster.
    snapshot = directory / "cluster.json"
    taken = bgpflat("snapshot", "snapshot", "-o", str(snapshot), "--kubeconfig", str(lab.kubeconfig))
    if taken.returncode != 0:
        lines = [line for line in taken.stderr.splitlines() if line.strip()] or ["(no output)"]
        raise LabError(f"bgpflat snapshot failed (exit {taken.returncode}): {lines[-1]}")
    inputs = ["-f", str(lab.spec_file), "--snapshot", str(snapshot)]
    vpn = ["render", "vpn", "--openvpn", *inputs]
    lan_client = ["--client", site.vpn_client_name]
    commands: list[tuple[str, list[str], Path]] = [
        ("vpn server", [*vpn, "--part", "server", "--via", node, *lan_client], configs.server),
        ("vpn ccd", [*vpn, "--part", "ccd", *lan_client], configs.ccd),
        ("vpn client-dns", [*vpn, "--part", "client-dns"], configs.client_dns),
        ("vpn lan", [*vpn, "--part", "lan", "--lan-gateway", site.vpn_client, *lan_client], configs.lan),
        ("nat", ["render", "nat", *inputs, "--via", node], configs.nat),
        ("sysctl", ["render", "nat", "--format", "sysctl", *inputs, "--via", node], configs.sysctl),
        ("dns", ["render", "dns", "--dnsmasq", *inputs, "--listen", site.lan_resolver], configs.lan_dns),
    ]
    commands += [
        (f"vpn client {name}", [*vpn, "--part", "client", "--via", node, "--client", name], path)
        for name, path in configs.clients.items()
    ]
    for what, args, path in commands:
        result = bgpflat(f"render {what}", *args, "--output-file", str(path))
        if result.returncode != 0:
            lines = [line for line in result.stderr.splitlines() if line.strip()] or ["(no output)"]
            raise LabError(f"bgpflat {' '.join(args[:2])} ({what}) failed (exit {result.returncode}): {lines[-1]}")
    if not configs.lan_routes():
        raise LabError(f"bgpflat render vpn --part lan printed no route ({configs.lan})")
    return configs


def _place(directory: Path, files: dict[str, Path]) -> None:
    """``directory`` (fresh) holding ``files`` under their new names, keys 0600 as OpenVPN wants them."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    directory.chmod(0o700)
    for name, source in files.items():
        shutil.copyfile(source, directory / name)
        (directory / name).chmod(0o600 if name.endswith(".key") else 0o644)


def _start_openvpn(fabric: FlatLab, name: str, role: str, directory: Path, config: str) -> None:
    """``openvpn --cd DIR --config FILE`` in ``role``'s namespace, until it logs that it is up.

    Its log is appended to by every start, so only what this start wrote counts.
    """
    log = fabric.netns.state_dir / "logs" / f"{name.replace(':', '-')}.log"
    offset = log.stat().st_size if log.is_file() else 0
    record = fabric.netns.start(
        name, fabric.namespace(role), ["openvpn", "--cd", str(directory), "--config", config], log=log
    )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with log.open("rb") as stream:
            stream.seek(offset)
            if READY.encode() in stream.read():
                return
        if not record.alive() or time.monotonic() > deadline:
            why = "exited" if not record.alive() else f"is not up after {START_TIMEOUT:g} s"
            raise LabError(f"OpenVPN {name} {why}; {log} ends:\n{log_tail(log, 8)}")
        time.sleep(0.1)


def install_server(lab: Lab, configs: VpnConfigs) -> str:
    """NAT and forwarding on the server node, then the OpenVPN server with its certificates and ccd."""
    fabric = lab.fabric()
    site = load_site(fabric.topology)
    node_ns = fabric.namespace(f"node-{fabric.topology.forwarding_node}")
    run(ns_argv(node_ns, ["nft", "-f", str(configs.nat)]))
    settings = dict(re.findall(r"^([a-z0-9_.]+)\s*=\s*(\S+)$", configs.sysctl.read_text(), re.MULTILINE))
    fabric.netns.sysctl(node_ns, settings)
    pki = vpn_dir(lab) / "pki"
    directory = vpn_dir(lab) / "server"
    _place(directory, {"server.conf": configs.server, "ca.crt": pki / "ca.crt", "server.crt": pki / "server.crt",
                       "server.key": pki / "server.key"})  # fmt: skip
    (directory / "ccd").mkdir()
    shutil.copyfile(configs.ccd, directory / "ccd" / site.vpn_client_name)
    _start_openvpn(fabric, SERVER, f"node-{fabric.topology.forwarding_node}", directory, "server.conf")
    tables = ", ".join(name for _, name in configs.nat_tables())
    return (
        f"openvpn server on {fabric.topology.forwarding_node} ({directory / 'server.conf'}); nft table "
        f"{tables}, {', '.join(settings) or 'no sysctl'}"
    )


def connect(lab: Lab, configs: VpnConfigs, name: str) -> str:
    """Start client ``name`` in its namespace with its profile, certificate and the DNS script."""
    fabric = lab.fabric()
    role = client_roles(load_site(fabric.topology))[name]
    pki = vpn_dir(lab) / "pki"
    directory = vpn_dir(lab) / f"client-{name}"
    _place(directory, {"client.conf": configs.clients[name], "ca.crt": pki / "ca.crt",
                       f"{name}.crt": pki / f"{name}.crt", f"{name}.key": pki / f"{name}.key",
                       "vpn-dns": configs.client_dns})  # fmt: skip
    (directory / "vpn-dns").chmod(0o755)
    _start_openvpn(fabric, f"openvpn:{name}", role, directory, "client.conf")
    namespace = fabric.namespace(role)
    routes = run(ns_argv(namespace, ["ip", "-o", "route", "show", "dev", "tun0"]))
    pushed = sorted(line.split()[0] for line in routes.splitlines() if " via " in line)
    missing = sorted(set(configs.pushed_routes()) - set(pushed))
    if missing:
        raise LabError(f"{name} is up but has no route into the tunnel for {', '.join(missing)} (pushed by the server)")
    resolv = [line for line in _resolv_conf(namespace).splitlines() if not line.startswith("#")]
    return f"{name} in {role}: tun0 routes {', '.join(pushed) or 'none'}; resolv.conf {' / '.join(resolv)}"


def route_lan(lab: Lab, configs: VpnConfigs) -> str:
    """The office LAN through its VPN client: forwarding on it, routes on the gateway, DNS on the resolver."""
    fabric = lab.fabric()
    site = load_site(fabric.topology)
    # `render vpn --part lan` asks for forwarding on the VPN client in its comment.
    fabric.netns.sysctl(fabric.namespace(VPN_CLIENT), {"net.ipv4.ip_forward": "1"})
    routes = configs.lan_routes()
    fabric.netns.ip(fabric.namespace(GATEWAY), [f"route replace {prefix} via {via}" for prefix, via in routes])
    start_lan_resolver(fabric, site, rendered=configs.lan_dns.read_text())
    return (
        f"gateway routes {', '.join(p for p, _ in routes)} via {site.vpn_client}; office resolver per "
        f"{configs.lan_dns.name}"
    )


def revert(lab: Lab, configs: VpnConfigs) -> str:
    """Stop the clients (their down scripts restore resolv.conf), the LAN routes and DNS, the server, NAT."""
    fabric = lab.fabric()
    site = load_site(fabric.topology)
    running = {p.name for p in fabric.netns.state.processes}
    clients = [f"openvpn:{name}" for name in client_roles(site) if f"openvpn:{name}" in running]
    fabric.netns.stop(clients)
    fabric.netns.sysctl(fabric.namespace(VPN_CLIENT), {"net.ipv4.ip_forward": "0"})
    gateway = fabric.namespace(GATEWAY)
    for prefix, via in configs.lan_routes():
        run(ns_argv(gateway, ["ip", "route", "del", prefix, "via", via]), check=False)
    start_lan_resolver(fabric, site, rendered=None)
    fabric.netns.stop([SERVER])
    node_ns = fabric.namespace(f"node-{fabric.topology.forwarding_node}")
    for family, name in configs.nat_tables():
        run(ns_argv(node_ns, ["nft", "delete", "table", family, name]), check=False)
    problems = leftovers(fabric, configs)
    if problems:
        _restore_dns(lab, fabric)  # so that the next check starts clean; this one has failed
        raise LabError("; ".join(problems))
    return f"stopped {len(clients)} client(s) and the server; LAN routes, office DNS forwarding and NAT removed"


def _restore_dns(lab: Lab, fabric: FlatLab) -> None:
    """What a client's DNS script undoes on down, for a client that died before it could run it."""
    recorded: dict[str, str] = (fabric.info.get("openvpn") or {}).get("resolv_conf") or {}
    for name, role in client_roles(load_site(fabric.topology)).items():
        for state in (vpn_dir(lab) / f"client-{name}").glob("vpn-dns.*"):
            pid_file = state / "dnsmasq.pid"
            pid = pid_file.read_text().strip() if pid_file.is_file() else ""
            # The stub's command line names its own state directory: the PID is still that dnsmasq.
            with contextlib.suppress(OSError, ValueError):
                if str(state) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    os.kill(int(pid), signal.SIGTERM)
            shutil.rmtree(state, ignore_errors=True)
        if role in recorded:
            (NETNS_ETC / fabric.namespace(role) / "resolv.conf").write_text(recorded[role])


def leftovers(fabric: FlatLab, configs: VpnConfigs) -> list[str]:
    """What of the VPN is still there after ``revert``: tun devices, routes, NAT, rewritten resolv.conf."""
    info: dict[str, Any] = fabric.info.get("openvpn") or {}
    node_ns = fabric.namespace(f"node-{fabric.topology.forwarding_node}")
    found = []
    for role in (DEVELOPER, VPN_CLIENT, f"node-{fabric.topology.forwarding_node}"):
        namespace = fabric.namespace(role)
        if run(ns_argv(namespace, ["ip", "-o", "link", "show", "type", "tun"])).strip():
            found.append(f"a tun device in {role}")
    for role, text in (info.get("resolv_conf") or {}).items():
        if _resolv_conf(fabric.namespace(role)) != text:
            found.append(f"{role}'s resolv.conf is not what it was before the VPN")
    routes = run(ns_argv(fabric.namespace(GATEWAY), ["ip", "-o", "route"]))
    destinations = {line.split()[0] for line in routes.splitlines() if line.strip()}
    found += [f"gateway route {p}" for p, _ in configs.lan_routes() if p in destinations]
    tables = run(ns_argv(node_ns, ["nft", "list", "tables"])).split()
    found += [f"nft table {name}" for _, name in configs.nat_tables() if name in tables]
    return found
