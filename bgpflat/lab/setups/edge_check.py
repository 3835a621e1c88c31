"""``bgpflat lab check edge-node``: scenario A rendered by bgpflat, installed, run both ways, removed.

Nothing changes in Calico. The steps, each timed, stopping at the first failure (which names it);
whatever failed, the revert runs (as ``revert (cleanup)``) so the lab is left as it was found:

``lab healthy``           every recorded process runs, every namespace exists, the API server is ready
``unreachable before``    the developer host (DHCP: the router as resolver, no search domain) reaches
                          neither the whoami pod, nor its cluster IP, nor ``http://whoami``
``render``                ``bgpflat snapshot`` of the lab's API server, then ``bgpflat render`` from it, into
                          ``<state>/check/office/``:
                          ``dhcp --dnsmasq`` (the office resolver and the search domain),
                          ``dns --coredns`` twice (the edge node: cluster.local to kube-dns, other
                          names to the cluster's resolver; the office's second-level resolver:
                          cluster.local to the edge node, other names to the office upstream),
                          ``nat``, ``nat --format sysctl`` and ``static-routes --via <edge node>``
``dhcp``                  the rendered lines replace the DHCP server's DNS option; the developer host
                          renews its lease and its resolv.conf (written by dhclient-script) names
                          the office resolver and the search domain
``install``               CoreDNS (the real binary) on the edge node and as the office resolver, the
                          static route on the office router, NAT and forwarding on the edge node
``nat: http pod IP``      GET the whoami pod by IP; the pod sees the edge node's address
``nat: http cluster IP``, ``nat: http name``   … its cluster IP, and ``http://whoami`` by short name
``outside name``          the scenario's outside name (a CDN) resolves on the developer host to the
                          office upstream's answer; the office upstream logged the query and the
                          cluster DNS did not. As a control, the same name asked at the edge node
                          does reach the cluster DNS and gets its other answer (``clusterDnsAnswers``,
                          the cloud's view): a resolver that sent every name to the edge node would
                          be caught
``routed: no nat``        the NAT table goes; the office router's route stays (plain routing)
``routed: http pod IP``   the pod now sees the developer host's own address
``routed: http cluster IP``, ``routed: http name``   as above
``revert``                route, NAT and both CoreDNS gone, the DHCP server's DNS option back to the
                          router's; the developer host renews (resolver: the router, no search domain)
``unreachable after``     pod IP, cluster IP, ``http://whoami`` and its full name fail from the
                          developer host; neither the edge node nor the office resolver answer DNS
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from bgpflat.adapters import files
from bgpflat.errors import LabError
from bgpflat.lab.fabric import office, services
from bgpflat.lab.fabric.check import (
    CHECK_SERVICE,
    CONVERGE_TIMEOUT,
    PROBE_TIMEOUT,
    CheckReport,
    LabCheck,
    Targets,
    wait_until,
)
from bgpflat.lab.fabric.lifecycle import Lab
from bgpflat.lab.setups import edge_node
from bgpflat.lab.setups.edge_node import EdgeNodeOffice

LOG_SETTLE = 2.0  # dnsmasq logs a query as it answers it; give the log file that long to show it


class EdgeNodeCheck(LabCheck):
    """Scenario A: DHCP, two CoreDNS, NAT or routing through the edge node; see the module docstring."""

    def __init__(self, lab: Lab, **options: Any) -> None:
        super().__init__(lab, **options)
        edge_node.coredns_binary()  # without it the check cannot run (exit 2), rather than fail a step
        self.office: EdgeNodeOffice = edge_node.office_of(self.fabric)
        self.directory = self.log_dir / "office"

    def run(self) -> CheckReport:
        if not self._step("lab healthy", self._healthy):
            return self.report
        targets = self._targets()
        fqdn = f"http://{CHECK_SERVICE}.{self.fabric.topology.office.search_domain}/"
        urls = [f"http://{targets.pod_ip}/", f"http://{targets.cluster_ip}/", targets.name_url]
        if not self._step("unreachable before", lambda: self._unreachable_all(urls)):
            return self.report
        configs: list[office.OfficeConfigs] = []
        if not self._step("render", lambda: self._render(configs)):
            return self.report
        rendered = configs[0]
        edge_ip = self._edge_address()
        ok = self._step("dhcp", lambda: self._install_dhcp())
        ok = ok and self._step("install", lambda: self._install(rendered))
        ok = ok and self._probes("nat", edge_ip, targets, urls)
        ok = ok and self._step("outside name", lambda: self._outside_name(edge_ip))
        ok = ok and self._step("routed: no nat", lambda: self._remove_nat(rendered))
        ok = ok and self._probes("routed", self.office.developer, targets, urls)
        if not self._step("revert" if ok else "revert (cleanup)", lambda: self._revert(rendered)):
            return self.report
        if ok:
            self._step("unreachable after", lambda: self._unreachable_all([*urls, fqdn], dns=[edge_ip]))
        return self.report

    def _probes(self, variant: str, client: str, targets: Targets, urls: list[str]) -> bool:
        """The three HTTP steps of one variant; the pod must see ``client`` as the source."""
        ok = self._step(f"{variant}: http pod IP", partial(self._client, urls[0], client))
        ok = ok and self._step(f"{variant}: http cluster IP", partial(self._reachable, targets, urls[1], any_pod=True))
        return ok and self._step(f"{variant}: http name", partial(self._reachable, targets, urls[2], any_pod=True))

    # -- steps ------------------------------------------------------------------------------------
    def _render(self, configs: list[office.OfficeConfigs]) -> str:
        topology = self.fabric.topology
        lab, directory = self.lab, self.directory
        node = topology.forwarding_node
        if node is None or topology.dns_forward is None:
            raise LabError(f"{topology.directory / 'topology.yaml'} needs forwardingNode and office.dnsForward")
        directory.mkdir(parents=True, exist_ok=True)
        # One read of the cluster, six configs from it: the same state for all, one load on the API server.
        snapshot = directory / "cluster.json"
        result = self._bgpflat("snapshot", "snapshot", "-o", str(snapshot), "--kubeconfig", str(lab.kubeconfig))
        if result.returncode != 0:
            raise LabError(f"bgpflat snapshot failed (exit {result.returncode}): {self._last_error(result)}")
        objects = files.load_snapshot(snapshot).objects
        cluster_dns = services.kube_dns_address(services.services_from_objects(objects))
        if cluster_dns is None:
            raise LabError(f"{snapshot} has no kube-system/kube-dns Service with a cluster IP")
        inputs = ["-f", str(lab.spec_file), "--snapshot", str(snapshot)]
        search = ["--search-domain", topology.office.search_domain] if topology.office.search_domain else []
        paths = {
            "dhcp": directory / "dhcp-options.conf",
            "edge": directory / "edge-node.Corefile",
            "resolver": directory / "office-resolver.Corefile",
            "nat": directory / "nat.nft",
            "sysctl": directory / "forwarding.conf",
            "routes": directory / "static-routes.sh",
        }
        commands = {
            "dhcp": ["render", "dhcp", "--dnsmasq", "--dns-server", topology.office.resolver, *search],
            # The edge node's other names go where the cluster's own go: kube-dns here (in a cloud,
            # the cloud's resolver). That is the view the office must not get for public names.
            "edge": ["render", "dns", "--coredns", "--listen", self._edge_address(), "--upstream", cluster_dns],
            "resolver": [
                "render", "dns", "--coredns", "--to", topology.dns_forward, "--upstream", self.office.router,
                "--listen", topology.office.resolver, *search,
            ],
            "nat": ["render", "nat", "--via", node],
            "sysctl": ["render", "nat", "--format", "sysctl", "--via", node],
            "routes": ["render", "static-routes", "--via", node],
        }  # fmt: skip
        # Six `bgpflat render` processes side by side: each spends most of its time starting up.
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            results = {
                what: pool.submit(self._bgpflat, f"render {what}", *args, *inputs, "--output-file", str(paths[what]))
                for what, args in commands.items()
            }
        for what, args in commands.items():
            result = results[what].result()
            if result.returncode != 0:
                raise LabError(
                    f"bgpflat {' '.join(args[:2])} failed (exit {result.returncode}): {self._last_error(result)}"
                )
        rendered = office.OfficeConfigs(
            static_routes=paths["routes"], nat=paths["nat"], sysctl=paths["sysctl"], dns=paths["resolver"]
        )
        if not rendered.routes():
            raise LabError(f"bgpflat render static-routes printed no route ({paths['routes']})")
        configs.append(rendered)
        return f"DHCP options, two Corefiles, nftables, sysctl and static routes from {snapshot.name} in {directory}"

    def _install_dhcp(self) -> str:
        dhcp = edge_node.dhcp_dir(self.fabric)
        shutil.copyfile(self.directory / "dhcp-options.conf", dhcp / "options.conf")
        edge_node.restart(self.fabric, edge_node.DHCP_SERVER)
        search = self.fabric.topology.office.search_domain or None
        return edge_node.renew(self.fabric, self.office, nameserver=self.office.resolver, search=search)

    def _install(self, rendered: office.OfficeConfigs) -> str:
        fabric = self.fabric
        edge_node.start_coredns(fabric, edge_node.EDGE_DNS, self._edge_role(), self.directory / "edge-node.Corefile")
        edge_node.start_coredns(fabric, edge_node.OFFICE_DNS, "resolver", rendered.dns)
        name = f"{CHECK_SERVICE}.{fabric.topology.office.search_domain}"
        for server in (self._edge_address(), self.office.resolver):
            wait_until(partial(self._answers, server, name), timeout=CONVERGE_TIMEOUT)
        done = office.install_forwarding(fabric, rendered)
        return f"CoreDNS on {fabric.topology.forwarding_node} and the office resolver answer {name}; {done}"

    def _remove_nat(self, rendered: office.OfficeConfigs) -> str:
        tables = office.remove_nat(self.fabric, rendered)
        return f"nft table(s) {', '.join(tables)} deleted on {self.fabric.topology.forwarding_node}; the route stays"

    def _client(self, url: str, client: str) -> str:
        """GET ``url`` from the developer host until it answers; the pod must report ``client``."""

        def probe() -> tuple[bool, str]:
            answer = self.fabric.http_get("developer", url, timeout=PROBE_TIMEOUT)
            if not answer.ok:
                return False, f"GET {url}: {answer.error or answer.status}"
            fields = dict(line.split(": ", 1) for line in answer.body.splitlines() if ": " in line)
            seen = fields.get("RemoteAddr", "?")
            if seen != client:
                return False, f"GET {url}: {fields.get('Hostname', '?')} saw client {seen}, not {client}"
            return True, f"GET {url} → {answer.status} from {fields.get('Hostname', '?')}, client {seen}"

        return wait_until(probe, timeout=CONVERGE_TIMEOUT)

    def _outside_name(self, edge_ip: str) -> str:
        fabric, name = self.fabric, self.office.outside_name
        cluster_log, upstream_log = edge_node.cluster_dns_log(fabric), edge_node.upstream_log(fabric)
        cluster_before = edge_node.queries_seen(cluster_log, name)
        upstream_before = edge_node.queries_seen(upstream_log, name)
        found = edge_node.resolve(fabric, "developer", name)
        if found != [self.office.outside_address]:
            wanted, cloud = self.office.outside_address, self.office.cluster_address
            view = " (the cluster DNS's answer: it went through the edge node)" if cloud and found == [cloud] else ""
            raise LabError(f"{name} resolved to {found or 'nothing'} on the developer host, not {wanted}{view}")
        wait_until(
            lambda: (
                edge_node.queries_seen(upstream_log, name) > upstream_before,
                "the office upstream logged no query",
            ),
            timeout=LOG_SETTLE,
        )
        time.sleep(0.2)  # a query that did reach the cluster DNS would be logged by now
        leaked = edge_node.queries_seen(cluster_log, name) - cluster_before
        if leaked:
            raise LabError(f"the cluster DNS saw {leaked} query(ies) for {name}: it went through the edge node")
        # The control: the edge node, asked directly, does send the name to the cluster DNS, and
        # gets the cluster's answer, not the office's.
        rcode, answers = edge_node.dns_query(fabric, "developer", edge_ip, name)
        cloud = self.office.cluster_address
        if cloud and answers != [cloud]:
            raise LabError(f"the edge node answered {name} with {rcode} {answers}, not the cluster DNS's {cloud}")
        wait_until(
            lambda: (
                edge_node.queries_seen(cluster_log, name) > cluster_before,
                f"the edge node answered {rcode} {' '.join(answers)} without asking the cluster DNS",
            ),
            timeout=LOG_SETTLE,
        )
        return (
            f"{name} → {found[0]} from the office upstream {self.office.router}, no query at the cluster DNS; "
            f"asked at the edge node {edge_ip} it goes to the cluster DNS ({' '.join(answers) or rcode})"
        )

    def _revert(self, rendered: office.OfficeConfigs) -> str:
        fabric = self.fabric
        done = office.remove(fabric, rendered)
        fabric.netns.stop([edge_node.EDGE_DNS, edge_node.OFFICE_DNS])
        dhcp = edge_node.dhcp_dir(fabric)
        shutil.copyfile(dhcp / "before.conf", dhcp / "options.conf")
        edge_node.restart(fabric, edge_node.DHCP_SERVER)
        lease = edge_node.renew(fabric, self.office, nameserver=self.office.router, search=None)
        return f"{done}; both CoreDNS stopped; DHCP back to the router's DNS: {lease}"

    def _unreachable_all(self, urls: list[str], *, dns: list[str] | None = None) -> str:
        """Nothing in ``urls`` answers the developer host, nor do the DNS servers in ``dns``."""
        servers = [*(dns or []), *([self.office.resolver] if dns is not None else [])]
        name = f"{CHECK_SERVICE}.{self.fabric.topology.office.search_domain}"

        def probe() -> tuple[bool, str]:
            answered = [u for u in urls if self.fabric.http_get("developer", u, timeout=PROBE_TIMEOUT).ok]
            for server in servers:
                rcode, _ = edge_node.dns_query(self.fabric, "developer", server, name, timeout=0.5)
                if rcode == "NOERROR":
                    answered.append(f"DNS at {server}")
            if answered:
                return False, f"still answering: {', '.join(answered)}"
            return True, f"no answer from {', '.join([*urls, *(f'DNS at {s}' for s in servers)])}"

        return wait_until(probe, timeout=CONVERGE_TIMEOUT)

    # -- helpers ----------------------------------------------------------------------------------
    def _answers(self, server: str, name: str) -> tuple[bool, str]:
        rcode, answers = edge_node.dns_query(self.fabric, "developer", server, name)
        return rcode == "NOERROR" and bool(answers), f"{server} answered {name} with {rcode} {' '.join(answers)}"

    def _edge_role(self) -> str:
        return f"node-{self.fabric.topology.forwarding_node}"

    def _edge_address(self) -> str:
        node = self.fabric.topology.forwarding_node
        for lab_node in self.fabric.nodes:
            if lab_node.name == node:
                return lab_node.address
        raise LabError(f"the edge node {node} is not among the lab's nodes")
