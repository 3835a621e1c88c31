"""Calico selectors: parsing, matching, canonical text, and errors that point at the problem."""

from __future__ import annotations

import pytest

from bgpflat.core.net.selector import parse_selector
from bgpflat.errors import SpecError

INGRESS = {"node-role.kubernetes.io/ingress": "ingress", "kubernetes.io/hostname": "node-1", "zone": "a"}
PLAIN = {"kubernetes.io/hostname": "node-3"}


@pytest.mark.parametrize(
    ("text", "ingress", "plain"),
    [
        ("", True, True),
        ("all()", True, True),
        ("global()", True, True),
        ("node-role.kubernetes.io/ingress == 'ingress'", True, False),
        ('node-role.kubernetes.io/ingress == "ingress"', True, False),
        ("node-role.kubernetes.io/ingress != 'ingress'", False, True),
        ("has(node-role.kubernetes.io/ingress)", True, False),
        ("!has(node-role.kubernetes.io/ingress)", False, True),
        ("zone in {'a', 'b'}", True, False),
        ("zone not in {'a'}", False, True),
        ("zone in {}", False, False),
        ("kubernetes.io/hostname contains 'de-'", True, True),
        ("kubernetes.io/hostname starts with 'node'", True, True),
        ("kubernetes.io/hostname ends with '3'", False, True),
        ("has(zone) && zone == 'a'", True, False),
        ("has(zone) || kubernetes.io/hostname == 'node-3'", True, True),
        ("!(has(zone) || kubernetes.io/hostname == 'node-3')", False, False),
        ("has(zone) && (zone == 'b' || zone == 'a')", True, False),
        ("  has( zone )  ", True, False),
        ("!!has(zone)", True, False),
    ],
)
def test_matching(text: str, ingress: bool, plain: bool) -> None:
    selector = parse_selector(text)
    assert selector.matches(INGRESS) is ingress
    assert selector.matches(PLAIN) is plain


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", "all()"),
        ('node-role.kubernetes.io/ingress == "ingress"', "node-role.kubernetes.io/ingress == 'ingress'"),
        ("a in {'y','x','y'}", "a in {'x', 'y'}"),
        ("a == 'x' && b == 'y' || c == 'z'", "(a == 'x' && b == 'y') || c == 'z'"),
        ("a == 'x' && (b == 'y' || c == 'z')", "a == 'x' && (b == 'y' || c == 'z')"),
        ("!has(a)", "!has(a)"),
        ('a == "it\'s"', 'a == "it\'s"'),
    ],
)
def test_canonical_text_reparses_to_the_same_selector(text: str, canonical: str) -> None:
    selector = parse_selector(text)
    assert str(selector) == canonical
    assert parse_selector(canonical) == selector


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "role = 'x'",
            "invalid selector \"role = 'x'\": expected an operator (==, !=, in, not in, contains, "
            "starts with, ends with) at position 6, found \"= 'x'\"",
        ),
        ("has(a", "invalid selector 'has(a': expected ')' at position 6, found the end"),
        ("a == x", "invalid selector 'a == x': expected a quoted string at position 6, found 'x'"),
        ("a == 'x", 'invalid selector "a == \'x": expected a closing \' at position 6, found "\'x"'),
        ("a in ('x')", "invalid selector \"a in ('x')\": expected '{' at position 6, found \"('x')\""),
        ("a in {'x' 'y'}", "invalid selector \"a in {'x' 'y'}\": expected ',' or '}' at position 11, found \"'y'}\""),
        ("a not {'x'}", "invalid selector \"a not {'x'}\": expected 'in' after 'not' at position 7, found \"{'x'}\""),
        (
            "a starts 'x'",
            "invalid selector \"a starts 'x'\": expected 'with' after 'starts' at position 10, found \"'x'\"",
        ),
        (
            "has(a) has(b)",
            "invalid selector 'has(a) has(b)': expected '&&', '||' or the end at position 8, found 'has(b)'",
        ),
        ("(has(a)", "invalid selector '(has(a)': expected ')' at position 8, found the end"),
        (
            "&& has(a)",
            "invalid selector '&& has(a)': expected a label key, has(), all() or '(' at position 1, found '&& has(a)'",
        ),
        (
            "has(a) &&",
            "invalid selector 'has(a) &&': expected a label key, has(), all() or '(' at position 10, found the end",
        ),
    ],
)
def test_syntax_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_selector(text)
    assert caught.value.message == message
    assert caught.value.fix == "use Calico selector syntax, e.g. has(k), k == 'v', k in {'a', 'b'}, &&, ||, !, all()"


def test_a_selector_must_be_text() -> None:
    with pytest.raises(SpecError, match="a selector must be a string, got int"):
        parse_selector(3)  # type: ignore[arg-type]


def test_long_label_keys_are_refused() -> None:
    with pytest.raises(SpecError, match="label key longer than 512 characters"):
        parse_selector("has(" + "k" * 513 + ")")
