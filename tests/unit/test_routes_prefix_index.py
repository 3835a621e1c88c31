"""PrefixIndex: BIRD's `net ~ cidr` containment answered per prefix length, not pairwise."""

from __future__ import annotations

from bgpflat.core.net.prefix_index import PrefixIndex
from bgpflat.core.net.prefixes import Prefix


def p(text: str) -> Prefix:
    return Prefix.parse(text)


def test_longest_and_covering_follow_containment() -> None:
    index = PrefixIndex([(p("10.0.0.0/8"), "pool"), (p("10.1.0.0/16"), "sub"), (p("10.1.2.0/24"), "block")])
    assert index.longest(p("10.1.2.3/32")) == (p("10.1.2.0/24"), "block")
    assert [v for _, v in index.covering(p("10.1.2.3/32"))] == ["block", "sub", "pool"]
    assert index.longest(p("10.1.0.0/16")) == (p("10.1.0.0/16"), "sub")  # equal counts as inside
    assert index.longest(p("10.0.0.0/7")) is None  # a wider prefix is not inside
    assert not index.covers(p("11.0.0.1/32"))
    assert index.get(p("10.1.0.0/16")) == "sub" and index.get(p("10.1.0.0/17")) is None


def test_families_are_separate_and_first_value_wins() -> None:
    index = PrefixIndex([(p("::/0"), "v6"), (p("0.0.0.0/0"), "v4"), (p("0.0.0.0/0"), "again")])
    assert index.longest(p("2001:db8::1/128")) == (p("::/0"), "v6")
    assert index.longest(p("192.0.2.1/32")) == (p("0.0.0.0/0"), "v4")
    assert len(index) == 2
