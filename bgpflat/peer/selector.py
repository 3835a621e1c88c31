"""Calico's label selector syntax, evaluated against a node's labels.

``all()``, ``global()``, ``has(k)``, ``k == 'v'``, ``k != 'v'``, ``k in {'a','b'}``, ``k not in {…}``,
``k contains 's'``, ``k starts with 's'``, ``k ends with 's'``, ``!``, ``&&``, ``||`` and parentheses
(calico-facts §1.2: BGPPeer ``nodeSelector``). An empty selector selects everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from bgpflat.errors import SpecError

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>==|!=|&&|\|\||!|\(|\)|\{|\}|,)
      | (?P<string>"[^"]*"|'[^']*')
      | (?P<word>[A-Za-z0-9_./\-]+)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise SpecError(f"cannot parse selector {text!r} at {text[position:]!r}")
        tokens.append(match.group(match.lastgroup or "word"))
        position = match.end()
    return tokens


class _Selector:
    """Recursive-descent evaluator for Calico's label selector syntax."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.tokens_len = len(self.tokens)

    def matches(self, labels: Mapping[str, str]) -> bool:
        if not self.tokens:
            return True
        self.labels = labels
        self.pos = 0
        result = self._or()
        if self.pos != self.tokens_len:
            raise SpecError(f"unexpected {self.tokens[self.pos]!r} in selector {self.text!r}")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < self.tokens_len else None

    def _take(self, expected: str | None = None) -> str:
        token = self._peek()
        if token is None or (expected is not None and token != expected):
            raise SpecError(f"selector {self.text!r}: expected {expected or 'more'}, got {token!r}")
        self.pos += 1
        return token

    def _or(self) -> bool:
        result = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            result = result or right
        return result

    def _and(self) -> bool:
        result = self._unary()
        while self._peek() == "&&":
            self._take()
            right = self._unary()
            result = result and right
        return result

    def _unary(self) -> bool:
        token = self._peek()
        if token == "!":
            self._take()
            return not self._unary()
        if token == "(":
            self._take()
            result = self._or()
            self._take(")")
            return result
        return self._term()

    def _string(self) -> str:
        token = self._take()
        if len(token) < 2 or token[0] not in "\"'" or token[-1] != token[0]:
            raise SpecError(f"selector {self.text!r}: expected a quoted value, got {token!r}")
        return token[1:-1]

    def _set(self) -> set[str]:
        self._take("{")
        values: set[str] = set()
        while self._peek() != "}":
            values.add(self._string())
            if self._peek() == ",":
                self._take()
        self._take("}")
        return values

    def _term(self) -> bool:
        word = self._take()
        if word in {"all", "global"}:
            self._take("(")
            self._take(")")
            return True
        if word == "has":
            self._take("(")
            key = self._take()
            self._take(")")
            return key in self.labels
        value = self.labels.get(word)
        op = self._take()
        if op == "==":
            return value == self._string()
        if op == "!=":
            return value != self._string()
        if op == "in":
            return value in self._set()
        if op == "not":
            self._take("in")
            return value not in self._set()
        if op == "contains":
            needle = self._string()  # consumed even when the label is absent
            return value is not None and needle in value
        if op in {"starts", "ends"}:
            self._take("with")
            needle = self._string()
            if value is None:
                return False
            return value.startswith(needle) if op == "starts" else value.endswith(needle)
        raise SpecError(f"selector {self.text!r}: unknown operator {op!r}")


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Evaluate a Calico selector (``rack == 'a' && has(bgp)``…) against labels."""
    return _Selector(selector).matches(labels)
