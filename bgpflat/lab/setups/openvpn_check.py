"""``bgpflat lab check openvpn``: the VPN rendered by bgpflat, started, proven, stopped, proven gone.

Nothing in Calico changes; the steps, each timed, stopping at the first failure:

``lab healthy``          every recorded process runs, every namespace exists, the API server is ready
``unreachable before``   neither the developer host nor the office host reaches the whoami pod, its
                         cluster IP or its name (the internet router has no route into the cluster)
``render``               ``bgpflat render vpn --openvpn`` (server, client profiles, client-dns
                         script, ccd, lan), ``render nat`` (nftables and sysctl) and ``render dns
                         --dnsmasq`` (office resolver) from a ``bgpflat snapshot`` of the lab's
                         API server, into ``<state>/check/vpn/``
``server``               NAT and forwarding on the server node, ``openvpn`` with the rendered
                         server config and the lab's certificates, up
``connect developer``    the developer host's client up: pushed routes on tun0, its resolv.conf
                         rewritten by the rendered DNS script
``http pod IP``, ``http cluster IP``, ``http name``   from the developer host through the tunnel
``outside name``         the public name resolves to the public resolver's answer, the public
                         resolver saw the query, and the cluster DNS saw none (though it logged
                         the whoami lookups of ``http name``)
``connect office LAN``   the LAN's VPN client up, the gateway routes the cluster ranges to it
                         (``--part lan``), the office resolver forwards the cluster domain
``office http pod IP``, ``office http cluster IP``, ``office http name``, ``office outside name``
                         the same from the office host, which runs no VPN software
``revert``               clients, LAN routes and forwarding, server and NAT gone; no tun device
                         left, every resolv.conf as it was
``unreachable after``    nothing answers either host any more

When a step after ``render`` fails, the revert still runs (as ``revert (cleanup)``).
"""

from __future__ import annotations

import re
from pathlib import Path

from bgpflat.errors import LabError
from bgpflat.lab.fabric.check import CHECK_SERVICE, CheckReport, LabCheck, Targets, wait_until
from bgpflat.lab.fabric.flatlab import OFFICE_RESOLVER
from bgpflat.lab.fabric.netns import ns_argv, run
from bgpflat.lab.setups import openvpn


class OpenVpnCheck(LabCheck):
    """Flattening is a VPN: render it with bgpflat, start it, prove it, stop it."""

    def run(self) -> CheckReport:
        if not self._step("lab healthy", self._healthy):
            return self.report
        targets = self._targets()
        site = openvpn.load_site(self.fabric.topology)
        hosts = (openvpn.DEVELOPER, openvpn.LAN_HOST)
        if not self._step("unreachable before", lambda: self._nowhere(targets, hosts)):
            return self.report
        rendered: list[openvpn.VpnConfigs] = []
        if not self._step("render", lambda: self._render(rendered)):
            return self.report
        configs = rendered[0]
        ok = self._step("server", lambda: openvpn.install_server(self.lab, configs))
        ok = ok and self._step("connect developer", lambda: openvpn.connect(self.lab, configs, openvpn.DEVELOPER))
        ok = ok and self._reach_all("", targets, openvpn.DEVELOPER, site)
        ok = ok and self._step("connect office LAN", lambda: self._connect_lan(configs, site))
        ok = ok and self._reach_all("office ", targets, openvpn.LAN_HOST, site)
        if not self._step("revert" if ok else "revert (cleanup)", lambda: openvpn.revert(self.lab, configs)):
            return self.report
        if ok:
            self._step("unreachable after", lambda: self._nowhere(targets, hosts))
        return self.report

    def _render(self, rendered: list[openvpn.VpnConfigs]) -> str:
        directory = self.log_dir / "vpn"
        rendered.append(openvpn.render(self.lab, directory, self._bgpflat))
        return f"server, client profiles, client-dns, ccd, lan, nat, sysctl and office DNS configs in {directory}"

    def _connect_lan(self, configs: openvpn.VpnConfigs, site: openvpn.Site) -> str:
        client = openvpn.connect(self.lab, configs, site.vpn_client_name)
        return f"{client}; {openvpn.route_lan(self.lab, configs)}"

    def _reach_all(self, label: str, targets: Targets, role: str, site: openvpn.Site) -> bool:
        ok = self._step(f"{label}http pod IP", lambda: self._reachable(targets, f"http://{targets.pod_ip}/", role=role))
        ok = ok and self._step(
            f"{label}http cluster IP",
            lambda: self._reachable(targets, f"http://{targets.cluster_ip}/", any_pod=True, role=role),
        )
        ok = ok and self._step(
            f"{label}http name", lambda: self._reachable(targets, targets.name_url, any_pod=True, role=role)
        )
        return ok and self._step(f"{label}outside name", lambda: self._outside_name(role, site))

    def _nowhere(self, targets: Targets, roles: tuple[str, ...]) -> str:
        return "; ".join(f"{role}: {self._unreachable(targets, pod_only=False, role=role)}" for role in roles)

    # -- DNS: which resolver answered ----------------------------------------------------------------
    def _queries(self, process: str, name: str) -> int:
        """Queries for exactly ``name`` in the logs of the lab's dnsmasq ``process`` (``…:`` ends a prefix)."""
        pattern = re.compile(rf"query\[\w+\] {re.escape(name)} from ")
        self.fabric.netns.refresh()
        logs = {
            p.log
            for p in self.fabric.netns.state.processes
            if p.name == process or (process.endswith(":") and p.name.startswith(process))
        }
        return sum(len(pattern.findall(Path(log).read_text(errors="replace"))) for log in logs if Path(log).is_file())

    def _outside_name(self, role: str, site: openvpn.Site) -> str:
        name = site.outside_name
        cluster_before = self._queries("dns:cluster:", name)
        public_before = self._queries(OFFICE_RESOLVER, name)

        def probe() -> tuple[bool, str]:
            out = run(ns_argv(self.fabric.namespace(role), ["getent", "ahostsv4", name]), check=False)
            answer = out.split()[0] if out.split() else "no answer"
            expected = site.outside_address
            return answer == expected, f"{name} → {answer} (the public resolver says {expected})"

        message = wait_until(probe, timeout=10.0)
        cluster = self._queries("dns:cluster:", name) - cluster_before
        public = self._queries(OFFICE_RESOLVER, name) - public_before
        if cluster:
            raise LabError(f"{message}, but the cluster DNS was asked {cluster} time(s)")
        if not public:
            raise LabError(f"{message}, but the public resolver was never asked")
        # The count is worth something only if the cluster DNS logs the names it is asked: the
        # `http name` step before this one asked it for whoami.
        service = f"{CHECK_SERVICE}.default.svc.{self.fabric.topology.cluster_domain}"
        if not self._queries("dns:cluster:", service):
            raise LabError(f"{message}, but the cluster DNS logged no query at all, not even for {service}")
        return f"{message}; public resolver asked {public} time(s), the cluster DNS never"
