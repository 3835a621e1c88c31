"""Edge-node masquerade for office traffic into the cluster (scenarios A and C).

The forwarding node rewrites the source of office → pod and office → service packets to its own
address, so pods answer the node and the cluster needs no route back to the office. The rules only
add a table/chain of their own (``bgpflat_nat`` / ``BGPFLAT-*``) and accept forwarding for those
flows, so they sit beside kube-proxy's and Calico's rules instead of replacing them.
"""

from __future__ import annotations

from bgpflat.core.net.prefixes import Prefix
from bgpflat.core.office.intent import OfficeIntent, require

NAT_FORMATS = ("nftables", "iptables", "sysctl")
SYSCTL_FILE = "/etc/sysctl.d/90-bgpflat-forwarding.conf"


def _inputs(intent: OfficeIntent) -> tuple[tuple[Prefix, ...], tuple[Prefix, ...]]:
    office = tuple(p for p in (*intent.office, *intent.vpn) if p.version == 4)
    cluster = tuple(p for p in intent.cluster_prefixes if p.version == 4)
    require(
        bool(office),
        "masquerading needs the office network(s)",
        path="networks.office",
        fix="set networks.office (and networks.vpn) in the spec, or pass --office CIDR",
    )
    require(
        bool(cluster),
        "no IPv4 pod pool or service range to masquerade towards",
        path="pools",
        fix="add pools and services.clusterIPRange to the spec (or use --snapshot/--kubeconfig)",
    )
    return office, cluster


def _notes(intent: OfficeIntent) -> list[str]:
    notes = [
        f"Needs IP forwarding on the node: sysctl -w net.ipv4.ip_forward=1 (persist it in {SYSCTL_FILE};",
        "  bgpflat render nat --format sysctl prints that file).",
        "For a dedicated forwarding node, keep workloads off it:",
    ]
    node = intent.forwarding.name if intent.forwarding else ""
    if node:
        return [*notes, f"  kubectl taint nodes {node} forward={node}:NoSchedule"]
    # A command with a made-up node name would be copied and fail; say what names the node instead.
    return [*notes, "  kubectl taint nodes NODE forward=NODE:NoSchedule, with NODE named by --via NODE or NAME=IP"]


def render_nat(intent: OfficeIntent, *, fmt: str = "nftables") -> str:
    if fmt == "sysctl":
        return "\n".join(
            ["# bgpflat: the node forwards office traffic into the cluster", "net.ipv4.ip_forward = 1", ""]
        )
    office, cluster = _inputs(intent)
    where = f" on {intent.forwarding.label}" if intent.forwarding else ""
    head = [f"bgpflat render nat --format {fmt}: masquerade office -> cluster traffic{where}", *_notes(intent)]
    if fmt == "nftables":
        return _nftables(office, cluster, head)
    if fmt == "iptables":
        return _iptables(office, cluster, head)
    raise ValueError(fmt)


def _nftables(office: tuple[Prefix, ...], cluster: tuple[Prefix, ...], head: list[str]) -> str:
    out = ["#!/usr/sbin/nft -f", *(f"# {line}" for line in head), "# Load with: nft -f FILE"]
    # Delete-then-define makes reloading the file idempotent (the "table" line creates it if absent).
    out += ["table ip bgpflat_nat", "delete table ip bgpflat_nat", "", "table ip bgpflat_nat {"]
    out += [
        "\tset office {",
        "\t\ttype ipv4_addr",
        "\t\tflags interval",
        f"\t\telements = {{ {', '.join(map(str, office))} }}",
        "\t}",
        "",
        "\tset cluster {",
        "\t\ttype ipv4_addr",
        "\t\tflags interval",
        f"\t\telements = {{ {', '.join(map(str, cluster))} }}",
        "\t}",
        "",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        "\t\tip saddr @office ip daddr @cluster accept",
        "\t\tip saddr @cluster ip daddr @office ct state established,related accept",
        "\t}",
        "",
        "\tchain postrouting {",
        "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        # After kube-proxy's DNAT the destination of service traffic is a pod IP, so the pool
        # ranges catch it; the service ranges cover proxies that forward without DNAT.
        "\t\tip saddr @office ip daddr @cluster masquerade",
        "\t}",
        "}",
    ]
    return "\n".join(out) + "\n"


def _iptables(office: tuple[Prefix, ...], cluster: tuple[Prefix, ...], head: list[str]) -> str:
    out = [
        *(f"# {line}" for line in head),
        "# Load once with: iptables-restore --noflush < FILE (each load inserts the two jump rules again)",
    ]
    out += ["*nat", ":BGPFLAT-MASQ - [0:0]", "-F BGPFLAT-MASQ"]
    out += [f"-A POSTROUTING -s {o} -j BGPFLAT-MASQ" for o in office]
    out += [f"-A BGPFLAT-MASQ -d {c} -j MASQUERADE" for c in cluster]
    out += ["COMMIT", "*filter", ":BGPFLAT-FORWARD - [0:0]", "-F BGPFLAT-FORWARD", "-I FORWARD 1 -j BGPFLAT-FORWARD"]
    for o in office:
        for c in cluster:
            out.append(f"-A BGPFLAT-FORWARD -s {o} -d {c} -j ACCEPT")
            out.append(f"-A BGPFLAT-FORWARD -s {c} -d {o} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
    out.append("COMMIT")
    return "\n".join(out) + "\n"
