"""Calico label selectors: parse once, match many times.

The grammar is Calico's (libcalico-go ``lib/selector``)::

    expr    := or
    or      := and ( "||" and )*
    and     := unary ( "&&" unary )*
    unary   := "!" unary | "(" expr ")" | term
    term    := "all()" | "global()" | "has(" key ")"
             | key "==" str | key "!=" str
             | key "in" set | key "not" "in" set
             | key "contains" str | key "starts" "with" str | key "ends" "with" str
    set     := "{" [ str ( "," str )* ] "}"
    str     := '...' | "..."          (no escapes, as in Calico)

An empty selector means ``all()``. A missing label never equals anything: ``k != 'v'`` and
``k not in {...}`` are true for an object without ``k``, the others false.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bgpflat.errors import SpecError

__all__ = [
    "All",
    "And",
    "Global",
    "Has",
    "LabelMatch",
    "Not",
    "Or",
    "Selector",
    "parse_selector",
]

# Calico's label-key characters (k8s keys: optional DNS prefix, "/", name).
_KEY = re.compile(r"[A-Za-z0-9_./-]+")
_MAX_KEY = 512


class Selector:
    """A parsed selector; ``matches(labels)`` evaluates it, ``str()`` gives canonical text."""

    __slots__ = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        raise NotImplementedError

    def _text(self, nested: bool) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self._text(False)


@dataclass(frozen=True, slots=True)
class All(Selector):
    def matches(self, labels: Mapping[str, str]) -> bool:
        return True

    def _text(self, nested: bool) -> str:
        return "all()"


@dataclass(frozen=True, slots=True)
class Global(Selector):
    """``global()``: every non-namespaced object; for nodes, every node."""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return True

    def _text(self, nested: bool) -> str:
        return "global()"


@dataclass(frozen=True, slots=True)
class Has(Selector):
    key: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.key in labels

    def _text(self, nested: bool) -> str:
        return f"has({self.key})"


def _quote(value: str) -> str:
    return f'"{value}"' if "'" in value else f"'{value}'"


@dataclass(frozen=True, slots=True)
class LabelMatch(Selector):
    """``key <op> value(s)``; op is one of ==, !=, in, not in, contains, starts with, ends with."""

    key: str
    op: str
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        op = self.op
        if value is None:
            return op in ("!=", "not in")
        if op == "==":
            return value == self.values[0]
        if op == "!=":
            return value != self.values[0]
        if op == "in":
            return value in self.values
        if op == "not in":
            return value not in self.values
        if op == "contains":
            return self.values[0] in value
        if op == "starts with":
            return value.startswith(self.values[0])
        return value.endswith(self.values[0])

    def _text(self, nested: bool) -> str:
        if self.op in ("in", "not in"):
            return f"{self.key} {self.op} {{{', '.join(_quote(v) for v in self.values)}}}"
        return f"{self.key} {self.op} {_quote(self.values[0])}"


@dataclass(frozen=True, slots=True)
class Not(Selector):
    operand: Selector

    def matches(self, labels: Mapping[str, str]) -> bool:
        return not self.operand.matches(labels)

    def _text(self, nested: bool) -> str:
        return f"!{self.operand._text(True)}"


@dataclass(frozen=True, slots=True)
class And(Selector):
    operands: tuple[Selector, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(op.matches(labels) for op in self.operands)

    def _text(self, nested: bool) -> str:
        text = " && ".join(op._text(True) for op in self.operands)
        return f"({text})" if nested else text


@dataclass(frozen=True, slots=True)
class Or(Selector):
    operands: tuple[Selector, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return any(op.matches(labels) for op in self.operands)

    def _text(self, nested: bool) -> str:
        text = " || ".join(op._text(True) for op in self.operands)
        return f"({text})" if nested else text


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str) -> SpecError:
        rest = self.text[self.pos :]
        found = f"{rest[:12]!r}" if rest else "the end"
        return SpecError(
            f"invalid selector {self.text!r}: expected {expected} at position {self.pos + 1}, found {found}",
            fix="use Calico selector syntax, e.g. has(k), k == 'v', k in {'a', 'b'}, &&, ||, !, all()",
        )

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self, token: str) -> bool:
        self.skip()
        return self.text.startswith(token, self.pos)

    def peek_word(self, word: str) -> bool:
        self.skip()
        end = self.pos + len(word)
        if not self.text.startswith(word, self.pos):
            return False
        return end >= len(self.text) or not (self.text[end].isalnum() or self.text[end] in "_./-")

    def take(self, token: str, expected: str | None = None) -> None:
        if not self.peek(token):
            raise self.fail(expected or repr(token))
        self.pos += len(token)

    def parse(self) -> Selector:
        self.skip()
        if self.pos == len(self.text):
            return All()
        result = self.parse_or()
        self.skip()
        if self.pos != len(self.text):
            raise self.fail("'&&', '||' or the end")
        return result

    def parse_or(self) -> Selector:
        operands = [self.parse_and()]
        while self.peek("||"):
            self.pos += 2
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def parse_and(self) -> Selector:
        operands = [self.parse_unary()]
        while self.peek("&&"):
            self.pos += 2
            operands.append(self.parse_unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def parse_unary(self) -> Selector:
        if self.peek("!") and not self.peek("!="):
            self.pos += 1
            return Not(self.parse_unary())
        if self.peek("("):
            self.pos += 1
            inner = self.parse_or()
            self.take(")", "')'")
            return inner
        return self.parse_term()

    def parse_key(self) -> str:
        self.skip()
        match = _KEY.match(self.text, self.pos)
        if not match:
            raise self.fail("a label key, has(), all() or '('")
        key = match.group(0)
        if len(key) > _MAX_KEY:
            raise SpecError(f"invalid selector {self.text!r}: label key longer than {_MAX_KEY} characters")
        self.pos = match.end()
        return key

    def parse_string(self) -> str:
        self.skip()
        if self.pos >= len(self.text) or self.text[self.pos] not in "'\"":
            raise self.fail("a quoted string")
        quote = self.text[self.pos]
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise self.fail(f"a closing {quote}")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def parse_set(self) -> tuple[str, ...]:
        self.take("{", "'{'")
        values: list[str] = []
        if self.peek("}"):
            self.pos += 1
            return ()
        while True:
            values.append(self.parse_string())
            if self.peek(","):
                self.pos += 1
                if self.peek("}"):  # a trailing comma, which Calico's parser allows
                    self.pos += 1
                    return tuple(sorted(set(values)))
                continue
            self.take("}", "',' or '}'")
            return tuple(sorted(set(values)))

    def parse_term(self) -> Selector:
        if self.peek("all()") or self.peek("all ("):
            self.take("all")
            self.take("(")
            self.take(")", "')'")
            return All()
        if self.peek("global(") or self.peek("global ("):
            self.take("global")
            self.take("(")
            self.take(")", "')'")
            return Global()
        if self.peek("has(") or self.peek("has ("):
            self.take("has")
            self.take("(")
            key = self.parse_key()
            self.take(")", "')'")
            return Has(key)
        key = self.parse_key()
        for op in ("==", "!="):
            if self.peek(op):
                self.pos += 2
                return LabelMatch(key, op, (self.parse_string(),))
        if self.peek_word("in"):
            self.pos += 2
            return LabelMatch(key, "in", self.parse_set())
        # Calico's tokenizer wants a word boundary after the last word of a two-word operator
        # only: "notin", "startswith" and "endswith" are the same operators.
        if self.peek("not"):
            self.pos += 3
            if not self.peek_word("in"):
                raise self.fail("'in' after 'not'")
            self.pos += 2
            return LabelMatch(key, "not in", self.parse_set())
        if self.peek_word("contains"):
            self.pos += len("contains")
            return LabelMatch(key, "contains", (self.parse_string(),))
        for word in ("starts", "ends"):
            if self.peek(word):
                self.pos += len(word)
                if not self.peek_word("with"):
                    raise self.fail(f"'with' after '{word}'")
                self.pos += 4
                return LabelMatch(key, f"{word} with", (self.parse_string(),))
        raise self.fail("an operator (==, !=, in, not in, contains, starts with, ends with)")


def parse_selector(text: str) -> Selector:
    """Parse a Calico selector; ``SpecError`` (with position and fix) on bad syntax."""
    if not isinstance(text, str):
        raise SpecError(f"a selector must be a string, got {type(text).__name__}")
    return _Parser(text).parse()
