"""Prefix containment without pairwise loops: one dict per prefix length.

BIRD's ``net ~ cidr`` test ("inside or equal") is asked millions of times when expected routes are
computed for thousands of nodes: is this /32 inside one of the node's blocks, inside a pool with
``disableBGPExport``, inside a service range? Checking every stored prefix would be O(n·m). Here a
stored prefix of length ``l`` is a key ``value >> (bits - l)`` in the dict for ``l``, so a lookup
costs one shift and one dict probe per distinct stored length — a handful, whatever the count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from bgpflat.core.net.prefixes import Prefix

T = TypeVar("T")

_BITS = {4: 32, 6: 128}


class PrefixIndex(Generic[T]):
    """Prefixes mapped to values; answers "which stored prefixes cover this one" quickly."""

    __slots__ = ("_levels", "_size", "_tables")

    def __init__(self, items: Iterable[tuple[Prefix, T]] = ()) -> None:
        # version -> [(length, shift, {network_bits: (prefix, value)})], longest length first
        self._levels: dict[int, list[tuple[int, int, dict[int, tuple[Prefix, T]]]]] = {}
        self._tables: dict[tuple[int, int], dict[int, tuple[Prefix, T]]] = {}
        self._size = 0
        for prefix, value in items:
            self.add(prefix, value)

    def add(self, prefix: Prefix, value: T) -> None:
        """Store ``prefix``; a prefix stored twice keeps its first value."""
        version, network, length = prefix
        shift = _BITS[version] - length
        table = self._tables.get((version, length))
        if table is None:
            table = self._tables[(version, length)] = {}
            levels = self._levels.setdefault(version, [])
            levels.append((length, shift, table))
            levels.sort(key=lambda level: -level[0])
        key = network >> shift
        if key not in table:
            table[key] = (prefix, value)
            self._size += 1

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[tuple[Prefix, T]]:
        for levels in self._levels.values():
            for _, _, table in levels:
                yield from table.values()

    def get(self, prefix: Prefix) -> T | None:
        """The value stored for exactly ``prefix``."""
        table = self._tables.get((prefix.version, prefix.length))
        if table is None:
            return None
        found = table.get(prefix.value >> (_BITS[prefix.version] - prefix.length))
        return None if found is None else found[1]

    def longest(self, prefix: Prefix) -> tuple[Prefix, T] | None:
        """The most specific stored prefix equal to or containing ``prefix``."""
        value = prefix.value
        for length, shift, table in self._levels.get(prefix.version, ()):
            if length <= prefix.length:
                found = table.get(value >> shift)
                if found is not None:
                    return found
        return None

    def covers(self, prefix: Prefix) -> bool:
        """True if some stored prefix equals or contains ``prefix``."""
        return self.longest(prefix) is not None

    def covering(self, prefix: Prefix) -> list[tuple[Prefix, T]]:
        """Every stored prefix equal to or containing ``prefix``, most specific first."""
        value = prefix.value
        out: list[tuple[Prefix, T]] = []
        for length, shift, table in self._levels.get(prefix.version, ()):
            if length <= prefix.length:
                found = table.get(value >> shift)
                if found is not None:
                    out.append(found)
        return out
