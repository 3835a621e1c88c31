"""IP prefixes and addresses as small immutable values, parsed and canonicalised once.

A ``Prefix`` is a named tuple ``(version, value, length)``: hashing, equality and ordering are the
tuple's own (implemented in C), which is what lets route tables of a million entries be built and
diffed in well under a second. ``netaddr``/``ipaddress`` objects are several times slower to hash
and compare, so they are used only at parse time, never inside hot loops.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from itertools import repeat
from operator import and_, itemgetter, or_
from typing import Any, NamedTuple

from bgpflat.errors import SpecError

_MAX = {4: 32, 6: 128}
_ALL_ONES = {4: (1 << 32) - 1, 6: (1 << 128) - 1}
_new_tuple: Any = tuple.__new__


def _parse_v4(text: str) -> int | None:
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        # Leading zeros are refused (as Go's net.ParseIP does): "010" is ambiguous (octal?).
        if not part.isdigit() or len(part) > 3 or (len(part) > 1 and part[0] == "0"):
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = (value << 8) | octet
    return value


def parse_address(text: str) -> tuple[int, int]:
    """Parse an IPv4 or IPv6 address into ``(version, value)``; raises ``SpecError``."""
    if not isinstance(text, str):
        raise SpecError(f"expected an IP address, got {type(text).__name__} {text!r}")
    stripped = text.strip()
    v4 = _parse_v4(stripped)
    if v4 is not None:
        return 4, v4
    if ":" in stripped:
        try:
            address = ipaddress.IPv6Address(stripped)
        except ValueError:
            pass
        else:
            return 6, int(address)
    raise SpecError(f"{text!r} is not an IP address")


def format_address(version: int, value: int) -> str:
    """Canonical text of an address (RFC 5952 for IPv6)."""
    if version == 4:
        return f"{value >> 24 & 255}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
    return str(ipaddress.IPv6Address(value))


def canonical_address(text: str) -> str:
    """Canonical text of an address given as text."""
    return format_address(*parse_address(text))


def address_version(text: str) -> int:
    return parse_address(text)[0]


class Prefix(NamedTuple):
    """An IP prefix: address family version (4 or 6), network value, prefix length."""

    version: int
    value: int
    length: int

    @classmethod
    def parse(cls, text: str, *, strict: bool = True) -> Prefix:
        """Parse ``a.b.c.d/n`` or ``x::/n`` (a bare address is a host prefix).

        With ``strict`` (Calico's rule for pool CIDRs), host bits must be zero; without it they are
        cleared.
        """
        if type(text) is str:
            # The common case first, in a few C calls: canonical IPv4 text ("10.0.0.0/26"), which is
            # what files and peers write; anything else (and anything this would get wrong: "+1",
            # "01", " 1", "1_0", host bits) fails the round trip and takes the full parse below.
            parts = text.replace("/", ".").split(".")
            if len(parts) == 5:
                try:
                    a, b, c, d, length = map(int, parts)
                except ValueError:
                    pass
                else:
                    value = a << 24 | b << 16 | c << 8 | d
                    if (
                        0 <= a <= 255
                        and 0 <= b <= 255
                        and 0 <= c <= 255
                        and 0 <= d <= 255
                        and 0 <= length <= 32
                        and not value & (0xFFFFFFFF >> length)
                        and f"{a}.{b}.{c}.{d}/{length}" == text
                    ):
                        prefix: Prefix = _new_tuple(cls, (4, value, length))  # C, not the named tuple's __new__
                        return prefix
        return cls._parse_in_full(text, strict=strict)

    @classmethod
    def _parse_in_full(cls, text: str, *, strict: bool) -> Prefix:
        """``parse`` for any text: IPv6, bare addresses, whitespace, host bits, and what it refuses."""
        if not isinstance(text, str):
            raise SpecError(f"expected a CIDR, got {type(text).__name__} {text!r}")
        address, sep, length_text = text.strip().partition("/")
        version, value = parse_address(address)
        maximum = _MAX[version]
        if sep:
            if not length_text.isdigit() or int(length_text) > maximum:
                raise SpecError(
                    f"{text!r} has an invalid prefix length",
                    fix=f"use a length from 0 to {maximum}",
                )
            length = int(length_text)
        else:
            length = maximum
        host_mask = _ALL_ONES[version] >> length
        if value & host_mask:
            if strict:
                network = format_address(version, value & ~host_mask & _ALL_ONES[version])
                raise SpecError(
                    f"{text!r} has host bits set",
                    fix=f"use {network}/{length}",
                )
            value &= ~host_mask & _ALL_ONES[version]
        return cls(version, value, length)

    @classmethod
    def host(cls, address: str) -> Prefix:
        """The /32 or /128 of an address."""
        version, value = parse_address(address)
        return cls(version, value, _MAX[version])

    def __str__(self) -> str:
        return f"{format_address(self.version, self.value)}/{self.length}"

    @property
    def max_length(self) -> int:
        return _MAX[self.version]

    @property
    def is_host(self) -> bool:
        return self.length == _MAX[self.version]

    @property
    def last(self) -> int:
        """The highest address value inside the prefix."""
        return self.value | (_ALL_ONES[self.version] >> self.length)

    @property
    def network_address(self) -> str:
        return format_address(self.version, self.value)

    def contains(self, other: Prefix) -> bool:
        """True if ``other`` equals this prefix or lies inside it (BIRD's ``net ~ prefix``)."""
        if other.version != self.version or other.length < self.length:
            return False
        shift = _MAX[self.version] - self.length
        return (other.value >> shift) == (self.value >> shift)

    def contains_address(self, version: int, value: int) -> bool:
        return version == self.version and (value >> (_MAX[version] - self.length)) == (
            self.value >> (_MAX[version] - self.length)
        )

    def overlaps(self, other: Prefix) -> bool:
        return self.contains(other) or other.contains(self)

    def size(self) -> int:
        return 1 << (_MAX[self.version] - self.length)


def collapse(prefixes: list[Prefix]) -> list[Prefix]:
    """Drop prefixes covered by another prefix in the list; keeps sorted order."""
    result: list[Prefix] = []
    for prefix in sorted(prefixes, key=lambda p: (p.version, p.value, p.length)):
        if result and result[-1].contains(prefix):
            continue
        result.append(prefix)
    return result


_V4_HOST_MASKS = [0xFFFFFFFF >> length for length in range(33)]


def parse_canonical_v4(texts: Sequence[str]) -> list[Prefix] | None:
    """``Prefix.parse`` of many texts at once, if every one is an IPv4 prefix in canonical text
    (what ``Prefix.parse`` reads on its short path: no host bits, no leading zeros); else None.

    A learned-route file has a million prefixes but far fewer distinct first three octets and
    far fewer distinct "last octet/length" tails: each text is cut at its last dot in one C-level
    pass, and each distinct half is read (and checked to be written canonically) once.
    """
    try:
        heads, _, tails = zip(*map(str.rpartition, texts, repeat(".")), strict=True)
    except (TypeError, ValueError):
        return None  # not all text, or no text at all
    high: dict[str, int | None] = {head: _v4_head(head) for head in set(heads)}
    low: dict[str, tuple[int, int] | None] = {tail: _v4_tail(tail) for tail in set(tails)}
    if None in high.values() or None in low.values():
        return None
    ends = list(map(low.__getitem__, tails))
    values = list(map(or_, map(high.__getitem__, heads), map(itemgetter(0), ends)))  # type: ignore[arg-type]
    lengths = list(map(itemgetter(1), ends))  # type: ignore[arg-type]
    if any(map(and_, values, map(_V4_HOST_MASKS.__getitem__, lengths))):
        return None
    return list(map(_new_tuple, repeat(Prefix), zip(repeat(4), values, lengths)))


def _v4_head(text: str) -> int | None:
    """``a.b.c`` written canonically, as the value of ``a.b.c.0``."""
    try:
        a, b, c = map(int, text.split("."))
    except ValueError:
        return None
    if not (0 <= a <= 255 and 0 <= b <= 255 and 0 <= c <= 255) or f"{a}.{b}.{c}" != text:
        return None
    return a << 24 | b << 16 | c << 8


def _v4_tail(text: str) -> tuple[int, int] | None:
    """``d/length`` written canonically."""
    try:
        d, length = map(int, text.split("/"))
    except ValueError:
        return None
    if not (0 <= d <= 255 and 0 <= length <= 32) or f"{d}/{length}" != text:
        return None
    return d, length
