"""BGPFilter export rules as BIRD evaluates them (calico-facts §3.6): first matching rule wins.

A rule matches when every condition it carries matches; a rule with no condition matches every
route. Fields a Calico release does not know are dropped by its CRD schema and so never reach the
rule: ``source``/``interface`` before v3.27, ``prefixLength`` before v3.29. The model drops them
the same way, which can turn a narrow rule into a catch-all — exactly what that cluster does.

A field that *is* stored but that bgpflat has no model for (a newer release's, such as v3.32's
``operations``) is the opposite case: the cluster acts on it, so ignoring it would turn the rule
into a catch-all that cluster does not have. That is an error naming the field.

``interface`` is BIRD's ``ifname ~ "glob"``: a blackhole route (blocks, service ranges) has the
empty name, which only ``*`` matches; a workload route has its ``cali*`` device; a BGP-learned
route and the node subnet's direct route have the host interface toward the next hop (``eth0``),
whose name no cluster object records. A pattern is modelled when that does not matter: ``*`` alone
(every route) or a pattern starting with one of Calico's own device names (never a host
interface). Any other pattern (``eth*``) is an error naming the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import NamedTuple

from bgpflat.core.calico import BGPFilter, BGPFilterRule
from bgpflat.core.net.prefixes import Prefix
from bgpflat.errors import SpecError

ACCEPT = "Accept"
_EXACT = ("Equal", "NotEqual")

# The interface of a BGP-learned or direct route: the node's host interface, name unknown. Not a
# valid interface name, so only the ``*``-only patterns that ``export_rules`` lets through match it.
HOST_INTERFACE = "<host interface>"
# Felix's (and its dataplanes') devices: a pattern starting with one never names a host interface.
_CALICO_DEVICES = ("cali", "tunl", "vxlan", "wireguard", "wg-v6", "bpf")


class FilterVerdict(NamedTuple):
    action: str  # "Accept" or "Reject"
    filter_name: str
    rule_index: int


class ExportRule(NamedTuple):
    """A rule reduced to what the running Calico release honours."""

    filter_name: str
    rule_index: int
    action: str
    cidr: Prefix | None
    operator: str
    length_min: int | None
    length_max: int | None
    remote_only: bool
    interface: str | None
    # Equal/NotEqual with a prefixLength: Calico renders ``net = [ cidr{min,max} ]`` (or ``!=``), and
    # BIRD 1.6 finds a prefix never equal to a prefix set, so Equal never matches and NotEqual
    # always does (seen in the conformance lab).
    compares_set: bool = False


def export_rules(filters: Sequence[BGPFilter], *, version: int, calico: tuple[int, int, int]) -> tuple[ExportRule, ...]:
    """The export rules for one address family (4 or 6), in evaluation order."""
    rules: list[ExportRule] = []
    supports_source = calico >= (3, 27, 0)
    supports_length = calico >= (3, 29, 0)
    for bgp_filter in filters:
        chosen: tuple[BGPFilterRule, ...] = bgp_filter.export_v4 if version == 4 else bgp_filter.export_v6
        for index, rule in enumerate(chosen):
            if rule.unmodelled:
                key = f"export{'V4' if version == 4 else 'V6'}"
                raise SpecError(
                    f"BGPFilter {bgp_filter.name} {key}[{index}] has {', '.join(rule.unmodelled)}, which bgpflat "
                    "cannot model; expected routes would treat the rule as matching more than it does",
                    path=f"spec.{key}[{index}].{rule.unmodelled[0]}",
                    fix="leave the filter off the peer while comparing routes, or use a Calico release bgpflat models",
                )
            interface = rule.interface if supports_source else None
            if interface is not None and not _modelled_interface(interface):
                key = f"export{'V4' if version == 4 else 'V6'}"
                raise SpecError(
                    f"BGPFilter {bgp_filter.name} {key}[{index}] has interface {interface!r}, which may match the "
                    "nodes' host interfaces (mesh-learned and direct routes); bgpflat does not know their names",
                    path=f"spec.{key}[{index}].interface",
                    fix="match '*' or a Calico device pattern such as 'cali*', or leave the filter off the peer "
                    "while comparing routes",
                )
            operator = rule.match_operator or "In"
            length_min = rule.prefix_length_min if supports_length else None
            length_max = rule.prefix_length_max if supports_length else None
            rules.append(
                ExportRule(
                    filter_name=bgp_filter.name,
                    rule_index=index,
                    action=rule.action,
                    cidr=rule.cidr,
                    operator=operator,
                    length_min=length_min,
                    length_max=length_max,
                    remote_only=supports_source and rule.source == "RemotePeers",
                    interface=interface,
                    compares_set=operator in _EXACT and (length_min is not None or length_max is not None),
                )
            )
    return tuple(rules)


def _modelled_interface(pattern: str) -> bool:
    return not pattern.strip("*") or pattern.startswith(_CALICO_DEVICES)


def rule_matches(rule: ExportRule, prefix: Prefix, *, learned: bool, interface: str) -> bool:
    """BIRD's test for one rule (``net ~ cidr``, ``source ~ [RTS_BGP]``, ``ifname ~ glob``).

    ``interface`` is the route's device where the node holds it ("" for a blackhole); a learned
    route's is the host interface toward its next hop, whatever it was where it came from.
    """
    if rule.remote_only and not learned:
        return False
    if rule.interface is not None and not fnmatchcase(HOST_INTERFACE if learned else interface, rule.interface):
        return False
    if rule.cidr is not None:
        if rule.compares_set:
            return rule.operator == "NotEqual"
        inside = rule.cidr.contains(prefix)
        if inside and (rule.length_min is not None or rule.length_max is not None):
            low = rule.length_min if rule.length_min is not None else rule.cidr.length
            high = rule.length_max if rule.length_max is not None else prefix.max_length
            inside = low <= prefix.length <= high
        operator = rule.operator
        if operator == "Equal":
            return prefix == rule.cidr
        if operator == "NotEqual":
            return prefix != rule.cidr
        if operator == "NotIn":
            return not inside
        return inside
    return True


def first_match(rules: Sequence[ExportRule], prefix: Prefix, *, learned: bool, interface: str) -> FilterVerdict | None:
    for rule in rules:
        if rule_matches(rule, prefix, learned=learned, interface=interface):
            return FilterVerdict(rule.action, rule.filter_name, rule.rule_index)
    return None
