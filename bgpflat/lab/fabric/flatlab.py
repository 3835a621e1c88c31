"""The flat-network lab running: office ↔ ToR (FRR) ↔ Calico nodes (BIRD) ↔ pods, in network namespaces.

``FlatLab.up(topology, source, kubeconfig=…)`` builds it from a scenario's topology and the objects
of its API server: namespaces, bridges and veths, pods serving HTTP, kube-proxy-like DNAT, the
cluster DNS, per node Calico's own confd (``node_confd``: watching the API server, re-rendering
and reloading BIRD on every change, as calico-node does) and BIRD 1.6, the FRR ToR and the office
resolver. ``reconcile(objects)`` replaces the DNAT rules and reloads the cluster DNS where the
objects changed them (the follower calls it); BIRD follows the API server through confd on its
own. ``FlatLab.attach(state_dir).down()`` removes it all.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgpflat.core.office.intent import OfficeIntent
from bgpflat.core.office.tor.bmp import BmpStation
from bgpflat.core.routes.cluster import ClusterState
from bgpflat.errors import LabError
from bgpflat.lab import vxlan
from bgpflat.lab.fabric import node_confd, pods, services, tor
from bgpflat.lab.fabric.bird_control import birdc
from bgpflat.lab.fabric.netns import NetnsLab, ns_argv, run, wait_for
from bgpflat.lab.fabric.topology import (
    BGP_MODES,
    TOPOLOGY_FILE,
    Objects,
    ObjectSource,
    Topology,
    load_topology,
    office_dns_conf,
    office_intent,
)

Progress = Callable[[str], None]

PROBE_TIMEOUT = 3.0
OFFICE_RESOLVER = "dns:office"
OFFICE_BRIDGE = "broffice"  # the office LAN: a bridge in the ToR's (office router's) namespace


# -- the running lab -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class LabNode:
    name: str
    address: str
    namespace: str
    segment: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileReport:
    services_changed: bool
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpResult:
    ok: bool
    status: int | None
    body: str
    error: str
    seconds: float


def _lab_nodes(topology: Topology, objects: Objects, netns_name: Callable[[str], str]) -> list[LabNode]:
    cluster = ClusterState.from_objects(objects)
    wanted = set(topology.nodes) if topology.nodes else None
    found = []
    for node in cluster.nodes.values():
        if wanted is not None and node.name not in wanted:
            continue
        if not node.ipv4_address:
            if wanted is not None:
                raise LabError(f"node {node.name} has no projectcalico.org/IPv4Address")
            continue
        segment = topology.segment_for(node.ipv4_address)
        found.append(
            LabNode(
                name=node.name,
                address=node.ipv4_address,
                namespace=netns_name(f"node-{node.name}"),
                segment=segment.name,
            )
        )
    if wanted is not None and {n.name for n in found} != wanted:
        raise LabError(f"nodes not among the objects: {', '.join(sorted(wanted - {n.name for n in found}))}")
    if not found:
        raise LabError("the objects have no Node with an address on the lab's segments")
    return found


def _nat_outgoing_cidrs(objects: Objects) -> list[str]:
    return sorted(
        str((o.get("spec") or {}).get("cidr"))
        for o in objects
        if o.get("kind") == "IPPool"
        and (o.get("spec") or {}).get("natOutgoing")
        and ":" not in str((o.get("spec") or {}).get("cidr"))
    )


def _pool_cidrs(objects: Objects) -> list[str]:
    return sorted(
        str((o.get("spec") or {}).get("cidr"))
        for o in objects
        if o.get("kind") == "IPPool" and ":" not in str((o.get("spec") or {}).get("cidr"))
    )


class FlatLab:
    """A running (or recorded) lab: the namespace lab plus what it was built from."""

    def __init__(self, netns: NetnsLab, topology: Topology) -> None:
        self.netns = netns
        self.topology = topology

    # -- recorded layout --------------------------------------------------------------------------
    @property
    def info(self) -> dict[str, Any]:
        return self.netns.state.info

    @property
    def nodes(self) -> list[LabNode]:
        return [LabNode(**n) for n in self.info.get("nodes", [])]

    def namespace(self, role: str) -> str:
        """Namespace of a role: ``tor``, ``developer``, ``resolver``, ``verifier``, ``node-<name>``."""
        name = self.netns.namespace_name(role)
        if name not in self.netns.state.namespaces:
            raise LabError(f"no {role} namespace in this lab")
        return name

    @property
    def frr_dir(self) -> Path:
        return Path(self.info["frr_dir"])

    def bird_dir(self, node: str) -> Path:
        return self.netns.state_dir / "bird" / node

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def up(
        cls,
        topology: Topology,
        source: ObjectSource,
        *,
        kubeconfig: Path,
        state_dir: Path,
        lab_id: str | None = None,
        progress: Progress | None = None,
    ) -> FlatLab:
        """Build the lab from ``source()``'s objects; on failure, tear down what was built.

        ``source`` and ``kubeconfig`` name the same API server: the fabric is built from the
        objects, and each node's confd watches the server for what BIRD is configured with.
        """
        say = progress or (lambda _line: None)
        started = time.monotonic()
        objects = list(source())
        netns = NetnsLab.create(state_dir, lab=topology.name, lab_id=lab_id)
        lab = cls(netns, topology)
        netns.state.info.update({"topology_dir": str(topology.directory.resolve()), "nodes": []})
        netns.save()
        try:
            lab._build(objects, kubeconfig, say)
            elapsed = time.monotonic() - started
            netns.state.info["up_seconds"] = round(elapsed, 3)
            netns.save()
            say(f"lab {netns.prefix} up in {elapsed:.1f} s")
        except BaseException:
            lab.down()
            raise
        return lab

    def _build(self, objects: Objects, kubeconfig: Path, say: Progress) -> None:
        topo, lab = self.topology, self.netns
        logs = lab.state_dir / "logs"
        nodes = _lab_nodes(topo, objects, lab.namespace_name)
        self.info["nodes"] = [
            {"name": n.name, "address": n.address, "namespace": n.namespace, "segment": n.segment} for n in nodes
        ]
        lab.save()

        say("network: ToR, segments, office")
        tor_ns = lab.add_netns("tor", forwarding=True)
        commands = []
        for index, segment in enumerate(topo.segments):
            bridge = f"br{index}"
            commands += [
                f"link add {bridge} type bridge",
                f"addr add {segment.router}/{segment.length} dev {bridge}",
                f"link set {bridge} up",
            ]
            if segment.gateway != segment.router:
                commands.append(f"addr add {segment.gateway}/{segment.length} dev {bridge}")
        commands += [
            f"link add {OFFICE_BRIDGE} type bridge",
            f"addr add {topo.office.router}/{topo.office.length} dev {OFFICE_BRIDGE}",
            f"link set {OFFICE_BRIDGE} up",
        ]
        lab.ip(tor_ns, commands)
        bridges = {segment.name: f"br{index}" for index, segment in enumerate(topo.segments)}

        def attach(role: str, port: str, bridge: str, address: str | None, length: int, gateway: str | None) -> str:
            return lab.attach_host(
                role,
                bridge_ns=tor_ns,
                bridge=bridge,
                port=port,
                address=address,
                length=length,
                forwarding=role.startswith("node-"),
                gateway=gateway,
            )

        office = topo.office
        if office.dhcp:
            # Address, router and resolver come from the office DHCP server (the setup starts it).
            developer_ns = attach("developer", "odev", OFFICE_BRIDGE, None, office.length, None)
        else:
            developer_ns = attach("developer", "odev", OFFICE_BRIDGE, office.developer, office.length, office.router)
        # The office DNS server may sit on the node network (scenario C: 10.60.20.1) rather than
        # on the office LAN; it is attached wherever its address belongs.
        resolver_segment = next((s for s in topo.segments if s.contains(office.resolver)), None)
        if resolver_segment is None:
            attach("resolver", "odns", OFFICE_BRIDGE, office.resolver, office.length, office.router)
        else:
            attach(
                "resolver",
                "odns",
                bridges[resolver_segment.name],
                office.resolver,
                resolver_segment.length,
                resolver_segment.gateway,
            )
        for index, host in enumerate(topo.outside_hosts):
            host_ns = attach(
                f"host-{host.name}", f"oh{index}", OFFICE_BRIDGE, host.address, office.length, office.router
            )
            argv = [sys.executable, "-I", str(pods.HTTPD), "--name", host.name, "--namespace", "office"]
            argv += ["--ip", host.address, *(a for p in host.ports for a in ("--port", str(p)))]
            lab.start(f"httpd:office/{host.name}", host_ns, argv, log=logs / f"httpd-{host.name}.log")
        search = f"search {office.search_domain}\n" if office.search_domain else ""
        if not office.dhcp:
            # One short try: when the cluster is unreachable a lookup should fail in a second, not 10.
            lab.write_resolv_conf(developer_ns, f"nameserver {office.resolver}\n{search}options timeout:1 attempts:1\n")
        if topo.verifier is not None:
            segment = topo.segment(topo.verifier.segment)
            attach("verifier", "vpeer", bridges[segment.name], topo.verifier.address, segment.length, segment.gateway)

        say(f"nodes: {', '.join(n.name for n in nodes)}")
        for index, node in enumerate(nodes):
            segment = topo.segment(node.segment)
            attach(
                f"node-{node.name}", f"n{index}", bridges[segment.name], node.address, segment.length, segment.gateway
            )

        self._build_pods(objects, nodes, logs, say)
        self._apply_services(objects, nodes, force=True)
        self._program_vxlan(objects, nodes)
        self._start_birds(nodes, kubeconfig, logs, say)
        # Rendered in every mode, so a spec the office side cannot be rendered from fails `up`.
        intent = office_intent(topo, objects)
        if topo.mode in BGP_MODES:
            # The office side as bgpflat renders it for the state after apply; in static-nat mode
            # it is installed by `lab check` (routes, NAT and DNS all belong to that change).
            self._start_tor(tor_ns, intent)
            if services.kube_dns_address(services.services_from_objects(objects)) or topo.dns_forward:
                target = (topo.dns_forward,) if topo.dns_forward else ()
                self.start_office_resolver(office_dns_conf(topo, intent, target=target))
        self._wait_started()

    def start_office_resolver(self, conf: str) -> None:
        """Run dnsmasq as the office resolver with ``conf`` (``bgpflat render dns --dnsmasq`` output)."""
        path = self.netns.state_dir / "dns" / "office.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(conf)
        self.netns.start(
            OFFICE_RESOLVER,
            self.namespace("resolver"),
            services.office_resolver_argv(listen=self.topology.office.resolver, conf_file=path),
            log=self.netns.state_dir / "logs" / "dns-office.log",
        )

    def _build_pods(self, objects: Objects, nodes: Sequence[LabNode], logs: Path, say: Progress) -> None:
        lab = self.netns
        by_name = {n.name: n for n in nodes}
        pod_list = [p for p in pods.pods_from_objects(objects) if p.node in by_name]
        say(f"pods: {len(pod_list)}")
        self.info["pods"] = []
        kube_dns = services.kube_dns_address(services.services_from_objects(objects))
        domain = self.topology.cluster_domain
        for pod in pod_list:
            node = by_name[pod.node]
            role = f"pod-{pod.namespace}-{pod.name}"
            pod_ns = pods.wire_pod(lab, node_ns=node.namespace, pod=pod, role=role)
            if kube_dns:
                # What kubelet writes for dnsPolicy ClusterFirst: pods resolve Service names.
                search = f"{pod.namespace}.svc.{domain} svc.{domain} {domain}"
                lab.write_resolv_conf(
                    pod_ns, f"nameserver {kube_dns}\nsearch {search}\noptions ndots:5 timeout:1 attempts:2\n"
                )
            pods.start_httpd(lab, pod_ns=pod_ns, pod=pod, log_dir=logs)
            self.info["pods"].append({"name": pod.name, "namespace": pod.namespace, "ip": pod.ip, "node": pod.node})
            if pod.serves_dns:
                hosts = lab.state_dir / "dns" / "cluster.hosts"
                hosts.parent.mkdir(parents=True, exist_ok=True)
                hosts.write_text(
                    services.cluster_hosts(services.services_from_objects(objects), domain=self.topology.cluster_domain)
                )
                lab.start(
                    f"dns:cluster:{pod.name}",
                    pod_ns,
                    services.cluster_dns_argv(
                        listen=pod.ip,
                        hosts_file=hosts,
                        domain=domain,
                        cnames=services.cluster_cnames(objects, domain=domain),
                        answers=self.topology.cluster_dns_answers,
                    ),
                    log=logs / f"dns-{pod.name}.log",
                )
        lab.save()

    def _start_birds(self, nodes: Sequence[LabNode], kubeconfig: Path, logs: Path, say: Progress) -> None:
        """Per node, Calico's confd, and BIRD once confd's first render has settled."""
        say(f"confd and BIRD: {', '.join(n.name for n in nodes)}")
        rendered = {}
        for node in nodes:
            directory = self.bird_dir(node.name)
            directory.mkdir(parents=True, exist_ok=True)
            rendered[node.name] = node_confd.start(
                self.netns, node=node.name, bird_dir=directory, kubeconfig=kubeconfig, progress=say
            )
        for node in nodes:  # the confds render side by side; waiting for each in turn costs nothing more
            directory = self.bird_dir(node.name)
            node_confd.wait_first_render(self.netns, node=node.name, dests=rendered[node.name])
            node_confd.install(directory / node_confd.RENDERED, directory)
            self.netns.start(
                f"bird:{node.name}",
                node.namespace,
                ["bird", "-f", "-c", str(directory / "bird.cfg"), "-s", str(directory / node_confd.CONTROL_SOCKET)],
                log=logs / f"bird-{node.name}.log",
                cwd=directory,  # confd's bird.cfg includes bird_aggr.cfg and bird_ipam.cfg by relative path
            )

    def _start_tor(self, tor_ns: str, intent: OfficeIntent) -> None:
        topo = self.topology
        addresses = {topo.office.router, *(s.router for s in topo.segments), *(s.gateway for s in topo.segments)}
        view = tor.tor_view(intent, addresses=addresses, router_id=topo.tor_router_id)
        if view is None:
            raise LabError(f"no BGPPeer in {topo.spec_file} points at the ToR ({', '.join(sorted(addresses))})")
        if view.as_number != topo.tor_asn:
            raise LabError(f"{topo.spec_file} peers with AS {view.as_number}, the ToR has AS {topo.tor_asn}")
        if topo.verifier is not None and topo.verifier.bmp_port is not None:
            # The ToR dials the station from its own address on the verifier's segment.
            view = dataclasses.replace(view, bmp=BmpStation(topo.verifier.address, topo.verifier.bmp_port))
            self.info["bmp_router"] = topo.segment(topo.verifier.segment).router
        frr_dir = tor.start_frr(self.netns, namespace=tor_ns, view=view, hostname=topo.tor_hostname)
        self.info["frr_dir"] = str(frr_dir)
        self.netns.save()

    def _wait_started(self) -> None:
        """Every daemon is alive and the ones with control sockets answer."""
        for node in self.nodes:
            directory = self.bird_dir(node.name)
            wait_for(
                (directory / node_confd.CONTROL_SOCKET).exists, timeout=10, what=f"BIRD's control socket on {node.name}"
            )
            # A render that landed between the first copy and BIRD's start reached no BIRD: load it now.
            node_confd.install(directory / node_confd.RENDERED, directory)
        if "frr_dir" in self.info:
            wait_for(lambda: (self.frr_dir / "bgpd.vty").exists(), timeout=10, what="bgpd's vty socket")
        for record in self.netns.state.processes:
            self.netns.check_alive(record.name)

    # -- changes ----------------------------------------------------------------------------------
    def reconcile(self, objects: Objects) -> ReconcileReport:
        """Bring DNAT rules, cluster DNS and the VXLAN routes Felix would program in line with ``objects``.

        BIRD needs nothing here: each node's confd watches the API server and reloads it. New or
        removed pods and nodes are not handled here: they need ``lab up`` again.
        """
        started = time.monotonic()
        services_changed = self._apply_services(objects, self.nodes, force=False)
        self._program_vxlan(objects, self.nodes)
        return ReconcileReport(services_changed=services_changed, seconds=time.monotonic() - started)

    def _program_vxlan(self, objects: Objects, nodes: Sequence[LabNode]) -> None:
        """Per node, what Felix's VXLAN manager keeps (``bgpflat.lab.vxlan``); ``eth0`` is the uplink."""
        objects = list(objects)
        for node in nodes:
            wanted = vxlan.node_vxlan(objects, node.name)
            present = vxlan.present_routes(
                run(ns_argv(node.namespace, ["ip", "-j", "route", "show", "proto", vxlan.PROTOCOL]), check=False)
            )
            if wanted.device is None and not present:
                continue
            commands: list[str] = []
            if wanted.device is not None:
                if not run(ns_argv(node.namespace, ["ip", "-o", "link", "show", vxlan.DEVICE]), check=False).strip():
                    commands += vxlan.device_commands(wanted.device, "eth0")
                commands += vxlan.neighbour_commands(wanted.remotes)
            self.netns.ip(node.namespace, commands)
            for argv in vxlan.fdb_argvs(wanted.remotes if wanted.device is not None else ()):
                run(ns_argv(node.namespace, argv))
            self.netns.ip(node.namespace, vxlan.route_commands(wanted.routes, present, "eth0"))

    def start_daemon(self, role: str, name: str, argv: Sequence[str]) -> None:
        """Run another daemon (e.g. the verification peer in ``verifier``) under the lab's records."""
        self.netns.start(name, self.namespace(role), argv, log=self.netns.state_dir / "logs" / f"{name}.log")

    def _apply_services(self, objects: Objects, nodes: Sequence[LabNode], *, force: bool) -> bool:
        svc_list = services.services_from_objects(objects)
        ruleset = services.render_nftables(
            svc_list, pod_cidrs=_pool_cidrs(objects), nat_outgoing=_nat_outgoing_cidrs(objects)
        )
        path = self.netns.state_dir / "nftables.nft"
        changed = force or not path.is_file() or path.read_text() != ruleset
        if changed:
            path.write_text(ruleset)
            for node in nodes:
                run(ns_argv(node.namespace, ["nft", "-f", str(path)]))
        hosts = self.netns.state_dir / "dns" / "cluster.hosts"
        if hosts.is_file():
            text = services.cluster_hosts(svc_list, domain=self.topology.cluster_domain)
            self.netns.refresh()
            cluster_dns = [r for r in self.netns.state.processes if r.name.startswith("dns:cluster:")]
            cnames = services.cname_args(services.cluster_cnames(objects, domain=self.topology.cluster_domain))
            if hosts.read_text() != text:
                hosts.write_text(text)
                changed = True
                for record in cluster_dns:
                    self.netns.signal(record.name, signal.SIGHUP)  # dnsmasq re-reads its hosts files
            for record in cluster_dns:
                if [a for a in record.argv if a.startswith("--cname=")] != cnames:
                    argv = [a for a in record.argv if not a.startswith("--cname=")] + cnames
                    self.netns.stop([record.name])
                    self.netns.start(record.name, record.namespace, argv, log=Path(record.log))
                    changed = True
        return changed

    # -- looking at it ----------------------------------------------------------------------------
    def birdc(self, node: str, *command: str) -> str:
        """A ``birdc`` command against the node's BIRD (its control socket needs no namespace)."""
        return birdc(self.bird_dir(node) / node_confd.CONTROL_SOCKET, *command, where=f" on {node}")

    def vtysh(self, *commands: str) -> str:
        return run(tor.vtysh_argv(self.frr_dir, *commands))

    def tor_bgp_routes(self) -> dict[str, list[str]]:
        """Prefix → next hops of the BGP routes in the ToR's kernel table (what the office uses)."""
        out = run(ns_argv(self.namespace("tor"), ["ip", "-j", "route", "show", "proto", "bgp"]))
        routes: dict[str, list[str]] = {}
        for entry in json.loads(out or "[]"):
            prefix = entry["dst"] if "/" in entry["dst"] else f"{entry['dst']}/32"
            hops = (
                [entry["gateway"]] if "gateway" in entry else [h.get("gateway", "") for h in entry.get("nexthops", [])]
            )
            routes[prefix] = sorted(h for h in hops if h)
        return routes

    def tor_bgp_paths(self) -> set[tuple[str, str, str, tuple[int, ...]]]:
        """Every path in the ToR's BGP table: (prefix, neighbour, next hop, AS path)."""
        data = json.loads(self.vtysh("show bgp ipv4 unicast json") or "{}")
        paths = set()
        for prefix, entries in (data.get("routes") or {}).items():
            for entry in entries:
                as_path = tuple(int(a) for a in str(entry.get("path") or "").split() if a.isdigit())
                for hop in entry.get("nexthops") or ():
                    paths.add((prefix, str(entry.get("peerId", "")), str(hop.get("ip", "")), as_path))
        return paths

    def tor_sessions(self) -> dict[str, str]:
        """Neighbour address → BGP state on the ToR."""
        data = json.loads(self.vtysh("show bgp ipv4 unicast summary json") or "{}")
        peers = data.get("peers", {}) if isinstance(data, dict) else {}
        return {address: str(peer.get("state", "")) for address, peer in peers.items()}

    def http_get(self, role: str, url: str, *, timeout: float = PROBE_TIMEOUT) -> HttpResult:
        """GET ``url`` from inside a lab namespace, resolving names with that namespace's resolv.conf."""
        code = (
            "import sys, urllib.request\n"
            "try:\n"
            "    r = urllib.request.urlopen(sys.argv[1], timeout=float(sys.argv[2]))\n"
            "    print(r.status); sys.stdout.write(r.read().decode(errors='replace'))\n"
            "except Exception as exc:\n"
            "    print('ERR'); print(f'{type(exc).__name__}: {exc}'); sys.exit(1)\n"
        )
        started = time.monotonic()
        argv = ns_argv(self.namespace(role), [sys.executable, "-I", "-c", code, url, str(timeout)])
        output = run(argv, check=False, timeout=timeout + 10)
        seconds = time.monotonic() - started
        first, _, rest = output.partition("\n")
        if first.strip().isdigit():
            status = int(first)
            return HttpResult(ok=200 <= status < 400, status=status, body=rest, error="", seconds=seconds)
        return HttpResult(ok=False, status=None, body="", error=rest.strip() or output.strip(), seconds=seconds)

    def status(self) -> dict[str, Any]:
        state = self.netns.state
        return {
            "lab": self.netns.prefix,
            "state_dir": str(self.netns.state_dir),
            "topology": self.info.get("topology_dir"),
            "up_seconds": self.info.get("up_seconds"),
            "nodes": self.info.get("nodes", []),
            "pods": self.info.get("pods", []),
            "namespaces": state.namespaces,
            "processes": [
                {"name": p.name, "pid": p.pid, "namespace": p.namespace, "running": p.alive(), "log": p.log}
                for p in state.processes
            ],
        }

    # -- teardown ---------------------------------------------------------------------------------
    @classmethod
    def attach(cls, state_dir: Path) -> FlatLab:
        netns = NetnsLab.attach(state_dir)
        directory = Path(str(netns.state.info.get("topology_dir") or ""))
        if not (directory / TOPOLOGY_FILE).is_file():
            raise LabError(f"the lab in {state_dir} names no readable topology ({directory})")
        return cls(netns, load_topology(directory))

    def down(self) -> None:
        self.netns.teardown()
