"""An example for every command's ``--help`` (and the man page), kept together so that one look shows
whether they still agree with the flags; ``tests/unit/test_cli_help.py`` runs each example's flags
through the parser and fails on a command without one.

Keys are the command path after ``bgpflat``; values are lines of ``command  # what it does``.
"""

from __future__ import annotations

import argparse

D = "labs/calico-bgp"

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": (
        f"bgpflat plan -f {D}/bgpflat.yaml --snapshot {D}/cluster.yaml   # the quick start",
        "bgpflat COMMAND --help                                          # each command's flags and examples",
    ),
    "plan": (
        f"bgpflat plan -f {D}/bgpflat.yaml --snapshot {D}/cluster.yaml   # no cluster needed",
        "bgpflat plan -f bgpflat.yaml --context prod --out plan.json    # save it for `bgpflat apply plan.json`",
        "bgpflat plan -f manifests/ --detailed-exitcode                  # CI: exit 0 no changes, 2 changes",
    ),
    "apply": (
        "bgpflat apply plan.json                                         # exactly the saved plan",
        "bgpflat apply -f bgpflat.yaml --context prod                    # plan now, ask, apply",
        "kubectl get ippools -o yaml | bgpflat apply -f - --yes          # manifests from stdin",
    ),
    "rollback": ("bgpflat rollback .bgpflat/backups/20261121T064105Z-prod.yaml   # undo that apply",),
    "snapshot": ("bgpflat snapshot --context prod --output-file cluster.yaml    # for plan/routes --snapshot",),
    "validate": (
        "bgpflat validate -f ippool.yaml -f bgppeer.yaml                 # Calico's own rules",
        "bgpflat validate -f manifests/ --calico-version v3.30.7 -o json",
    ),
    "routes": (f"bgpflat routes expected --peer 10.200.20.254 --snapshot {D}/cluster.yaml -f {D}/bgpflat.yaml",),
    "routes expected": (
        f"bgpflat routes expected --peer 10.200.20.254 --snapshot {D}/cluster.yaml -f {D}/bgpflat.yaml",
        "bgpflat routes expected --peer 10.200.20.254 --peer-as 65200 -o wide   # before the BGPPeer exists",
    ),
    "verify": (
        "bgpflat verify --peer 10.200.20.250 --state-dir bgpflat-peer --wait --junit verify.xml",
        "bgpflat verify --peer 10.200.20.254 --snapshot cluster.yaml --learned learned.json -o json",
    ),
    "peer": ("sudo bgpflat peer run --listen 10.200.20.250 --from-cluster   # then: bgpflat peer status",),
    "peer run": (
        "sudo bgpflat peer run --listen 10.200.20.250 --local-as 65000 --neighbor-range 10.200.20.0/24 --peer-as 64513",
        "sudo bgpflat peer run --listen 10.200.20.250 --from-snapshot cluster.yaml --watch",
    ),
    "peer routes": ("bgpflat peer routes --state-dir bgpflat-peer -o json        # what the peer learned",),
    "peer status": ("bgpflat peer status --state-dir bgpflat-peer                # sessions, uptime, End-of-RIB",),
    "bmp": ("bgpflat bmp run --listen 10.200.20.250:5000 --state-dir bgpflat-bmp   # then: bgpflat bmp status",),
    "bmp run": (
        "bgpflat bmp run --listen 10.200.20.250:5000 --state-dir bgpflat-bmp   # routers connect here",
        "bgpflat bmp run --connect 10.200.20.254:5000 --state-dir bgpflat-bmp  # or dial a router",
    ),
    "bmp status": ("bgpflat bmp status --state-dir bgpflat-bmp --router 10.200.20.254",),
    "bmp routes": ("bgpflat bmp routes --state-dir bgpflat-bmp --policy post -o json",),
    "render": (f"bgpflat render tor --vendor frr --scenario {D} > frr.conf",),
    "render tor": (
        f"bgpflat render tor --vendor frr --scenario {D} > frr.conf",
        f"bgpflat render tor --vendor junos -f {D}/bgpflat.yaml --snapshot {D}/cluster.yaml",
    ),
    "render static-routes": (
        "bgpflat render static-routes --via node-1 --format linux --scenario labs/forwarding-node",
    ),
    "render nat": ("bgpflat render nat --via node-1 --format nftables --scenario labs/forwarding-node",),
    "render vpn": (
        "bgpflat render vpn --openvpn --scenario labs/openvpn",
        "bgpflat render vpn --openvpn --part client --client developer --via node-2 --scenario labs/openvpn",
        "bgpflat render vpn --openvpn --part lan --lan 192.168.1.0/24 --lan-gateway 192.168.1.1 "
        "--scenario labs/forwarding-node",
    ),
    "render dns": (
        f"bgpflat render dns --dnsmasq --scenario {D}",
        f"bgpflat render dns --coredns --second-level --upstream 192.168.1.53 --scenario {D}",
    ),
    "external": ("bgpflat external plan -f labs/external/services.yaml --context prod",),
    "render dhcp": ("bgpflat render dhcp --dnsmasq --dns-server 192.168.1.53 --scenario labs/edge-node",),
    "external render": ("bgpflat external render -f labs/external/services.yaml   # Service + EndpointSlice YAML",),
    "external plan": ("bgpflat external plan -f labs/external/services.yaml --context prod --out plan.json",),
    "external apply": (
        "bgpflat external apply plan.json --yes",
        "bgpflat external apply -f labs/external/services.yaml --context prod --dry-run server --yes",
    ),
    "lab": ("sudo bgpflat lab up calico-bgp && sudo bgpflat lab check calico-bgp && sudo bgpflat lab down calico-bgp",),
    "lab up": ("sudo bgpflat lab up calico-bgp        # API server, ToR, confd + BIRD nodes, office",),
    "lab down": ("sudo bgpflat lab down calico-bgp      # stops the recorded PIDs, removes namespaces",),
    "lab status": ("sudo bgpflat lab status -o yaml      # every lab, its namespaces and processes",),
    "lab check": ("sudo bgpflat lab check calico-bgp     # apply, verify, office reaches pods and services",),
    "lab control-plane": ("bgpflat lab control-plane up && bgpflat lab control-plane seed calico-bgp",),
    "lab control-plane build": ("bgpflat lab control-plane build     # build or reuse kube-apiserver, etcd, CRDs",),
    "lab control-plane up": ("bgpflat lab control-plane up --calico-api v3 --scenario calico-bgp",),
    "lab control-plane down": ("bgpflat lab control-plane down      # stops exactly the PIDs `up` started",),
    "lab control-plane status": ("bgpflat lab control-plane status --json",),
    "lab control-plane seed": ("bgpflat lab control-plane seed calico-bgp   # labs/calico-bgp/cluster.yaml",),
    "completion": (
        "source <(bgpflat completion bash)                               # in ~/.bashrc",
        'bgpflat completion zsh > "${fpath[1]}/_bgpflat"                 # zsh',
        "bgpflat completion fish > ~/.config/fish/completions/bgpflat.fish",
    ),
    "man": ("bgpflat man > bgpflat.1 && man -l bgpflat.1",),
    "lab conformance": (
        "sudo bgpflat lab conformance --list",
        "sudo bgpflat lab conformance --situation route-reflector -o json",
    ),
}


def command_path(parser: argparse.ArgumentParser) -> str:
    """``routes expected`` for the parser whose prog is ``bgpflat routes expected``."""
    return parser.prog.partition(" ")[2]


def epilog(path: str) -> str | None:
    lines = EXAMPLES.get(path)
    if not lines:
        return None
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that the examples keep their lines (descriptions still wrap)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:\n"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)
