"""NLRI as ExaBGP writes them -> validated, canonical path keys, fast.

This code runs once per NLRI: 100k times for one Calico-sized table dump, inside the time budget of
a verification run. A path is kept as its key (canonical prefix text and path-id) until someone
reads it as a ``Route``; ``prefix_of`` turns the text back into a ``Prefix``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from bgpflat.core.net.prefixes import Prefix

PathKey = tuple[str, int | None]
"""A path's identity within one session: canonical prefix text (``str(Prefix)``) and path-id."""


class BadLine(Exception):
    """A line, or a part of one, is not what ExaBGP writes (the parser makes it a ``MalformedEvent``)."""


# The NLRI of one UPDATE are checked together, in C, where possible: ``_V4_LIST`` matches
# canonical IPv4 prefixes (no leading zeros, lengths 0-32), one per line, so one regex call
# validates a whole 4 kB UPDATE. Host bits only exist below /32; those prefixes, IPv6 and anything
# unusual take the per-NLRI path (``_key``), which also gives the precise error.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4_PREFIX = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}/(?:3[0-2]|[12]?[0-9])"
_V4_LIST = re.compile(rf"{_V4_PREFIX}(?:\n{_V4_PREFIX})*")
_GET_NLRI = itemgetter("nlri")
_GET_PATH_INFO = itemgetter("path-information")


def path_keys(items: list[Any]) -> tuple[PathKey, ...]:
    """Validated, canonical path keys of a list of NLRI items (``{"nlri": …, "path-information"?: …}``)."""
    texts, path_ids = path_texts(items)
    return tuple(zip(texts, path_ids, strict=True))


def path_texts(items: list[Any]) -> tuple[tuple[str, ...], tuple[int | None, ...]]:
    """``path_keys`` as two parallel tuples, canonical prefix texts and path-ids, in NLRI order.

    The RIB files paths by path-id, then prefix text; building a key tuple per NLRI would cost
    a quarter of the parse time and ~70 bytes per stored path.
    """
    try:
        texts = list(map(_GET_NLRI, items))
        joined = "\n".join(texts)
    except (TypeError, KeyError):
        return _split(map(_key, items))
    count = len(texts)
    if not count or joined.count("\n") != count - 1 or _V4_LIST.fullmatch(joined) is None:
        return _split(map(_key, items))
    if joined.count("/32") != count:
        for text in texts:
            if not text.endswith("/32"):
                _prefix(text)  # raises on host bits
    try:
        infos = list(map(_GET_PATH_INFO, items))
    except KeyError:
        infos = [item.get("path-information") for item in items]
    first = infos[0]
    # One path-id for a whole UPDATE is the common case (BIRD uses one per route source).
    if (first is None or type(first) is str) and infos.count(first) == count:
        return tuple(texts), (None if first is None else parse_path_id(first),) * count
    return tuple(texts), tuple([None if info is None else parse_path_id(info) for info in infos])


def _split(keys: Iterable[PathKey]) -> tuple[tuple[str, ...], tuple[int | None, ...]]:
    pairs = tuple(keys)
    return tuple(text for text, _ in pairs), tuple(path_id for _, path_id in pairs)


def _key(item: Any) -> PathKey:
    prefix, path_id = _nlri(item)
    return (str(prefix), path_id)


def nlri_count(value: Any) -> int:
    """How many NLRI a family's announce/withdraw value holds (to count those of skipped families)."""
    if isinstance(value, dict):
        return sum(nlri_count(v) for v in value.values())
    if isinstance(value, list):
        return len(value)
    return 1


def _nlri(item: Any) -> tuple[Prefix, int | None]:
    if type(item) is dict:
        path_info = item.get("path-information")
        return _prefix(item["nlri"]), (None if path_info is None else parse_path_id(path_info))
    if isinstance(item, str):
        return _prefix(item), None
    raise BadLine(f"NLRI {item!r} is neither an object nor a string")


def _v4(text: str) -> int:
    a, b, c, d = text.split(".")
    if not (a.isdigit() and b.isdigit() and c.isdigit() and d.isdigit()):
        raise BadLine(f"bad IPv4 address {text!r}")
    ia, ib, ic, id_ = int(a), int(b), int(c), int(d)
    if not (ia <= 255 and ib <= 255 and ic <= 255 and id_ <= 255):
        raise BadLine(f"bad IPv4 address {text!r}")
    return (ia << 24) | (ib << 16) | (ic << 8) | id_


# This code runs once per NLRI: 100k times for one Calico-sized table dump, inside the time budget
# of a verification run. Two memo tables make IPv4 parsing ~3x faster than the general parser:
# table dumps repeat the first three octets and the path-ids, and the memos are bounded.
_MEMO_LIMIT = 1 << 16
_V4_HEADS: dict[str, int] = {}
_PATH_IDS: dict[str, int] = {}
_new = tuple.__new__


def _v4_head(head: str) -> int:
    value = _v4(head + ".0")
    if len(_V4_HEADS) >= _MEMO_LIMIT:
        _V4_HEADS.clear()
    _V4_HEADS[head] = value
    return value


def prefix_of(text: str) -> Prefix:
    """The ``Prefix`` of a prefix text; IPv4 uses the memoised fast path below."""
    return _prefix(text)


def _prefix(text: Any) -> Prefix:
    if type(text) is not str:
        raise BadLine(f"NLRI {text!r} is not a string")
    address, slash, length_text = text.partition("/")
    head, dot, tail = address.rpartition(".")
    if slash and dot and ":" not in address:
        top = _V4_HEADS.get(head)
        if top is None:
            top = _v4_head(head)
        if not (tail.isdigit() and length_text.isdigit()):
            raise BadLine(f"bad IPv4 prefix {text!r}")
        low, length = int(tail), int(length_text)
        value = top | low
        if low > 255 or length > 32 or value & (0xFFFFFFFF >> length):
            raise BadLine(f"bad IPv4 prefix {text!r}")
        prefix: Prefix = _new(Prefix, (4, value, length))
        return prefix
    return Prefix.parse(text)


def parse_path_id(value: Any) -> int:
    """An ADD-PATH path-id as ExaBGP writes it: a number, or dotted like an IPv4 address."""
    if type(value) is str:
        cached = _PATH_IDS.get(value)
        if cached is None:
            cached = int(value) if value.isdigit() else _v4(value)
            if len(_PATH_IDS) >= _MEMO_LIMIT:
                _PATH_IDS.clear()
            _PATH_IDS[value] = cached
        return cached
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise BadLine(f"bad path-information {value!r}")
