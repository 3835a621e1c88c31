"""Address spellings the vendor formats need (dotted masks, wildcard forms)."""

from __future__ import annotations

from bgpflat.core.net.prefixes import Prefix, format_address


def netmask(prefix: Prefix) -> str:
    """``255.255.192.0`` for a /18 (IPv4 only: the formats that want masks are IPv4 formats)."""
    bits = prefix.max_length
    mask = ((1 << bits) - 1) ^ ((1 << (bits - prefix.length)) - 1)
    return format_address(prefix.version, mask)
