"""Scenario A's office in the lab: DHCP, the office's own DNS, and the daemons ``lab check`` installs.

``lab up edge-node`` builds the fabric like every scenario (nodes with Calico's confd and BIRD,
pods, DNAT, the cluster DNS) and then ``start`` adds the office as it was before bgpflat:

* the office router runs dnsmasq twice: as the office's **upstream DNS** (``dns:upstream``; it
  answers the scenario's outside name, standing for the public internet as seen from the office,
  and refuses everything else, so no lab query ever leaves the lab) and as the **DHCP server**
  (``dhcp:office``: addresses from a range, the developer machine's address reserved by its MAC,
  the router, and the router as DNS server);
* the developer host runs ISC ``dhclient`` on its ``eth0``, with Debian's ``dhclient-script``:
  the lease sets address and default route, and the script writes ``/etc/resolv.conf``, which
  inside ``ip netns exec`` is the namespace's ``/etc/netns/<ns>/resolv.conf``.

What ``lab check`` adds and removes again (``bgpflat.lab.setups.edge_check``): the DHCP server's
DNS options (``bgpflat render dhcp``; the developer then renews its lease), CoreDNS on the edge
node and as the office's second-level resolver (``bgpflat render dns --coredns``, the real
binary), NAT on the edge node and the office router's static route.

Every process is recorded in the fabric's state, so ``lab down`` stops it by PID.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from bgpflat.core.net.prefixes import Prefix, format_address
from bgpflat.errors import LabError
from bgpflat.lab.fabric.flatlab import OFFICE_BRIDGE, FlatLab
from bgpflat.lab.fabric.lifecycle import Lab, Progress
from bgpflat.lab.fabric.netns import NETNS_ETC, ns_argv, run, wait_for
from bgpflat.lab.fabric.topology import TOPOLOGY_FILE

UPSTREAM = "dns:upstream"
DHCP_SERVER = "dhcp:office"
DHCP_CLIENT = "dhclient:developer"
EDGE_DNS = "coredns:edge"
OFFICE_DNS = "coredns:office"
LEASE_TIMEOUT = 20.0
# Built by .ci/run: GOBIN=~/.cache/bgpflat/coredns/bin go install github.com/coredns/coredns@v1.12.4
COREDNS_CACHE = Path.home() / ".cache" / "bgpflat" / "coredns" / "bin"


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeNodeOffice:
    """The ``edgeNode`` part of ``topology.yaml`` with the office addresses it goes with."""

    router: str  # the office router: upstream DNS and DHCP server live there
    developer: str
    resolver: str
    network: str
    dhcp_range: tuple[str, str]
    outside_name: str
    outside_address: str  # the office upstream's answer
    cluster_address: str | None  # the cluster DNS's answer (the cloud's view), where the topology gives one

    @property
    def netmask(self) -> str:
        length = Prefix.parse(self.network, strict=False).length
        return format_address(4, (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF)


def office_of(fabric: FlatLab) -> EdgeNodeOffice:
    """Read the ``edgeNode`` section of the lab's ``topology.yaml`` (the rest is the fabric's)."""
    topology = fabric.topology
    path = topology.directory / TOPOLOGY_FILE
    try:
        data = (yaml.safe_load(path.read_text()) or {}).get("edgeNode") or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"cannot read {path}: {exc}") from exc
    missing = [k for k in ("dhcpRange", "outsideName", "outsideAddress") if not data.get(k)]
    if missing:
        raise LabError(f"{path}: edgeNode: missing {', '.join(missing)}")
    first, last = (str(a) for a in data["dhcpRange"])
    return EdgeNodeOffice(
        router=topology.office.router,
        developer=topology.office.developer,
        resolver=topology.office.resolver,
        network=topology.office.network,
        dhcp_range=(first, last),
        outside_name=str(data["outsideName"]),
        outside_address=str(data["outsideAddress"]),
        cluster_address=dict(topology.cluster_dns_answers).get(str(data["outsideName"])),
    )


def dhcp_dir(fabric: FlatLab) -> Path:
    return fabric.netns.state_dir / "dhcp"


def before_options(office: EdgeNodeOffice) -> str:
    """The DNS option the office DHCP server had before bgpflat: the router's own DNS."""
    return (
        "# The office's DNS before the flat network: the router (the office upstream).\n"
        f"dhcp-option=option:dns-server,{office.router}\n"
    )


# -- up ---------------------------------------------------------------------------------------------
def start(lab: Lab, fabric: FlatLab, say: Progress) -> None:
    """``lab up``'s part for scenario A: office upstream DNS, DHCP server, the developer's DHCP client."""
    office = office_of(fabric)
    router_ns = fabric.namespace("tor")
    logs = fabric.netns.state_dir / "logs"
    say(f"office: upstream DNS and DHCP server on {office.router}, DHCP client on the developer host")
    fabric.netns.start(
        UPSTREAM,
        router_ns,
        [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            f"--listen-address={office.router}", "--bind-interfaces", "--pid-file=", "--user=root",
            "--log-facility=-", "--log-queries",
            f"--address=/{office.outside_name}/{office.outside_address}",
        ],
        log=logs / "dns-upstream.log",
    )  # fmt: skip
    directory = dhcp_dir(fabric)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "before.conf").write_text(before_options(office))
    shutil.copyfile(directory / "before.conf", directory / "options.conf")
    developer_ns = fabric.namespace("developer")
    mac = json.loads(run(["ip", "-n", developer_ns, "-j", "link", "show", "eth0"]))[0]["address"]
    first, last = office.dhcp_range
    fabric.netns.start(
        DHCP_SERVER,
        router_ns,
        [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--no-resolv", "--no-hosts",
            f"--interface={OFFICE_BRIDGE}", "--bind-interfaces", "--pid-file=", "--user=root",
            f"--dhcp-range={first},{last},{office.netmask},1h",
            # The developer machine keeps the scenario's address: a reservation by its MAC.
            f"--dhcp-host={mac},{office.developer}",
            f"--dhcp-option=option:router,{office.router}",
            f"--dhcp-leasefile={directory / 'dnsmasq.leases'}", "--dhcp-authoritative",
            # The DNS options, the part bgpflat renders: swapped by `lab check` (install, revert).
            f"--conf-file={directory / 'options.conf'}",
            "--log-facility=-", "--log-dhcp",
        ],
        log=logs / "dhcp-office.log",
    )  # fmt: skip
    (directory / "dhclient.conf").write_text(
        "# What the developer machine asks the office DHCP server for (no host name: the lab's\n"
        "# namespaces share the host's UTS namespace, and dhclient-script would set it).\n"
        "request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, domain-search;\n"
        "initial-interval 1;\n"
    )
    # Before the client runs: without this file `ip netns exec` bind-mounts nothing, and
    # dhclient-script would write the host's /etc/resolv.conf.
    fabric.netns.write_resolv_conf(developer_ns, "# written by dhclient-script from the DHCP lease\n")
    start_client(fabric)
    wait_lease(fabric, office, nameserver=office.router, search=None)


def start_client(fabric: FlatLab) -> None:
    directory = dhcp_dir(fabric)
    namespace = fabric.namespace("developer")
    if not (NETNS_ETC / namespace / "resolv.conf").is_file():
        # dhclient-script writes /etc/resolv.conf: without the namespace's own file, the host's.
        raise LabError(f"{NETNS_ETC / namespace / 'resolv.conf'} is missing; not starting dhclient")
    fabric.netns.start(
        DHCP_CLIENT,
        namespace,
        [
            "dhclient", "-4", "-d", "-v",
            "-cf", str(directory / "dhclient.conf"),
            "-lf", str(directory / "dhclient.leases"),
            "-pf", str(directory / "dhclient.pid"),
            "eth0",
        ],
        log=fabric.netns.state_dir / "logs" / "dhclient-developer.log",
    )  # fmt: skip


def restart(fabric: FlatLab, name: str) -> None:
    """Stop a recorded process and start it again with the same command line."""
    record = fabric.netns.process(name)
    fabric.netns.stop([name])
    fabric.netns.start(name, record.namespace, record.argv, log=Path(record.log))


def renew(fabric: FlatLab, office: EdgeNodeOffice, *, nameserver: str, search: str | None) -> str:
    """The developer machine reconnects: its DHCP client starts again (INIT-REBOOT with the lease it
    holds) and takes the server's current options."""
    restart(fabric, DHCP_CLIENT)
    return wait_lease(fabric, office, nameserver=nameserver, search=search)


def developer_resolv_conf(fabric: FlatLab) -> str:
    path = NETNS_ETC / fabric.namespace("developer") / "resolv.conf"
    try:
        return path.read_text()
    except OSError:
        return ""


def developer_address(fabric: FlatLab) -> str | None:
    data = json.loads(run(["ip", "-n", fabric.namespace("developer"), "-j", "-4", "addr", "show", "eth0"]) or "[]")
    addresses = [a["local"] for entry in data for a in entry.get("addr_info", [])]
    return addresses[0] if addresses else None


def wait_lease(fabric: FlatLab, office: EdgeNodeOffice, *, nameserver: str, search: str | None) -> str:
    """Until the lease is applied: the reserved address on eth0, the resolver (and search) in resolv.conf."""

    def applied() -> bool:
        fabric.netns.check_alive(DHCP_CLIENT)
        text = developer_resolv_conf(fabric).split("\n")
        # dhclient passes the domain-search option as absolute names ("default.svc.cluster.local.").
        searched = [d.rstrip(".") for line in text if line.startswith("search ") for d in line.split()[1:]]
        has_search = search in searched if search else True
        no_search = search is not None or not any(line.startswith("search ") for line in text)
        # The file first: reading it is cheap, asking `ip` for the address is not.
        return (
            f"nameserver {nameserver}" in text
            and has_search
            and no_search
            and developer_address(fabric) == office.developer
        )

    try:
        wait_for(applied, timeout=LEASE_TIMEOUT, what="the developer host's DHCP lease")
    except LabError as exc:
        conf = developer_resolv_conf(fabric).strip().replace("\n", " / ")
        raise LabError(f"{exc}: address {developer_address(fabric)}, resolv.conf: {conf or '(empty)'}") from exc
    lines = [line for line in developer_resolv_conf(fabric).splitlines() if line and not line.startswith("#")]
    return f"{office.developer}/{Prefix.parse(office.network, strict=False).length} leased; " + " / ".join(lines)


# -- DNS --------------------------------------------------------------------------------------------
def coredns_binary() -> str:
    found = shutil.which("coredns") or shutil.which("coredns", path=str(COREDNS_CACHE))
    if found is None:
        raise LabError(
            f"CoreDNS is not installed (fix: GOBIN={COREDNS_CACHE} go install github.com/coredns/coredns@v1.12.4, "
            "as .ci/run does)"
        )
    return found


def start_coredns(fabric: FlatLab, name: str, role: str, corefile: Path) -> None:
    fabric.netns.start(
        name,
        fabric.namespace(role),
        [coredns_binary(), "-conf", str(corefile)],
        log=fabric.netns.state_dir / "logs" / f"{name.replace(':', '-')}.log",
    )


# A DNS query over UDP, stdlib only, run inside a namespace: prints the rcode and the A records.
_DNS_QUERY = """
import random, socket, struct, sys
server, name, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
ident = random.randrange(65536)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(timeout)
try:
    sock.sendto(struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question, (server, 53))
    data = sock.recv(4096)
except OSError as exc:
    print("ERR", type(exc).__name__)
    sys.exit(1)
count, at, found = struct.unpack(">H", data[6:8])[0], 12 + len(question), []
for _ in range(count):
    while data[at] and data[at] & 0xC0 != 0xC0:
        at += data[at] + 1
    at += 2 if data[at] & 0xC0 == 0xC0 else 1
    kind, _, _, length = struct.unpack(">HHIH", data[at:at + 10])
    at += 10
    if kind == 1 and length == 4:
        found.append(socket.inet_ntoa(data[at:at + 4]))
    at += length
print(data[3] & 15, *found)
"""
RCODES = {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}


def dns_query(fabric: FlatLab, role: str, server: str, name: str, *, timeout: float = 1.0) -> tuple[str, list[str]]:
    """Ask ``server`` for ``name``'s A records from ``role``'s namespace: (rcode or error, addresses)."""
    argv = ns_argv(fabric.namespace(role), [sys.executable, "-I", "-c", _DNS_QUERY, server, name, str(timeout)])
    words = run(argv, check=False, timeout=timeout + 10).split()
    if not words or not words[0].isdigit():
        return (" ".join(words) or "no answer", [])
    return (RCODES.get(int(words[0]), words[0]), words[1:])


def resolve(fabric: FlatLab, role: str, name: str) -> list[str]:
    """``name``'s IPv4 addresses as the namespace's resolver (its resolv.conf) finds them."""
    out = run(ns_argv(fabric.namespace(role), ["getent", "ahostsv4", name]), check=False, timeout=20)
    return sorted({line.split()[0] for line in out.splitlines() if line.strip()})


def queries_seen(log: Path, name: str) -> int:
    """How many queries for ``name`` a dnsmasq started with ``--log-queries`` has logged."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if "query[" in line and f"] {name} from " in line)


def cluster_dns_log(fabric: FlatLab) -> Path:
    fabric.netns.refresh()
    records = [p for p in fabric.netns.state.processes if p.name.startswith("dns:cluster:")]
    if not records:
        raise LabError("the lab runs no cluster DNS (no pod behind kube-system/kube-dns)")
    return Path(records[0].log)


def upstream_log(fabric: FlatLab) -> Path:
    return Path(fabric.netns.process(UPSTREAM).log)
