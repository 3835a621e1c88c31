"""Reading a JSON file with one huge list without holding the list: a million learned routes are
250 MB of JSON and would be a gigabyte as dicts, but only a few hundred megabytes as routes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bgpflat.adapters.files import read_json
from bgpflat.adapters.files.bounds import check_json_depth
from bgpflat.errors import SpecError


class _NotStreamable(Exception):
    """The file is not plain JSON in the expected shape: read it whole, as ``read_json`` does."""


_SPACE = re.compile(r"[ \t\n\r]*")
_SEPARATOR = re.compile(r"[ \t\n\r]*([,\]])")
_DECODER = json.JSONDecoder()
_CHUNK = 1 << 20


class _JsonStream:
    """JSON text read a megabyte at a time, decoded one value at a time (json's C scanner)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.text = ""
        self.pos = 0
        self.eof = False

    def _more(self) -> bool:
        if self.eof:
            return False
        # A value larger than the chunk is retried as the text grows; past 64 MiB read the rest
        # at once rather than re-decode it again and again.
        size = -1 if len(self.text) - self.pos > 64 * _CHUNK else _CHUNK
        chunk = self.handle.read(size)
        if not chunk:
            self.eof = True
            return False
        self.text = self.text[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end)."""
        while True:
            match = _SPACE.match(self.text, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self._more():
                return ""

    def take(self, char: str) -> None:
        if self.peek() != char:
            raise _NotStreamable
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError:
                if self._more():
                    continue
                raise _NotStreamable from None
            if end == len(self.text) and self._more():
                continue  # a number may go on in the next chunk
            self.pos = end
            return value

    def items(self) -> Iterator[Any]:
        self.take("[")
        if self.peek() == "]":
            self.pos += 1
            return
        decode = _DECODER.raw_decode
        while True:
            # The usual case in one regex and one decode: an item that ends inside the text read
            # so far, then its separator. At a chunk's end, the general steps below.
            text = self.text
            start = _SPACE.match(text, self.pos).end()  # type: ignore[union-attr]  # matches ""
            try:
                value, end = decode(text, start)
            except json.JSONDecodeError:
                end = len(text)
            separator = _SEPARATOR.match(text, end) if end < len(text) else None
            if separator is not None:
                self.pos = separator.end()
                yield value
                if separator.group(1) == "]":
                    return
                continue
            yield self.value()
            char = self.peek()
            self.pos += 1
            if char == "]":
                return
            if char != ",":
                raise _NotStreamable


def read_json_streaming(path: str | Path, *, list_key: str, consume: Callable[[Iterator[Any]], Any]) -> tuple[Any, Any]:
    """``read_json`` for files with one huge list: a top-level list, or the list under ``list_key``
    of a top-level object, is handed to ``consume`` item by item and never held whole.

    Returns the document (that list left empty) and what ``consume`` returned; memory stays that of
    what ``consume`` builds. Anything unexpected — invalid JSON, another shape, an error raised by ``consume`` —
    reads the file again with ``read_json`` and gives ``consume`` the loaded list, so errors are
    exactly those of reading it whole.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            stream = _JsonStream(handle)
            first = stream.peek()
            if first == "[":
                document: Any = []
                result = consume(_bounded(stream.items(), str(path)))
            elif first == "{":
                document, result = _stream_object(stream, list_key, lambda items: consume(_bounded(items, str(path))))
            else:
                raise _NotStreamable
            if stream.peek():
                raise _NotStreamable  # trailing data: json.loads says "Extra data"
            check_json_depth(document, str(path))
            return document, result
    # ValueError and RecursionError: json's own refusals (a number of thousands of digits, nesting
    # deeper than the interpreter recurses), which read_json words for the user.
    except (_NotStreamable, SpecError, OSError, ValueError, RecursionError):
        pass
    data = read_json(path)
    if isinstance(data, list):
        return [], consume(iter(data))
    if isinstance(data, Mapping) and isinstance(data.get(list_key), list):
        return {**data, list_key: []}, consume(iter(data[list_key]))
    return data, None


def _bounded(items: Iterator[Any], file: str) -> Iterator[Any]:
    """The items, each within the nesting bound of every input (``bounds``). A route record as
    bgpflat writes it (scalars and lists of scalars) is told apart in a few steps; only anything
    deeper is walked."""
    containers = (dict, list)
    for item in items:
        values = item.values() if type(item) is dict else item if type(item) is list else ()
        for value in values:
            if type(value) is dict or (type(value) is list and any(type(v) in containers for v in value)):
                check_json_depth(item, file)
                break
        yield item


def _stream_object(stream: _JsonStream, list_key: str, consume: Callable[[Iterator[Any]], Any]) -> tuple[Any, Any]:
    document: dict[str, Any] = {}
    result: Any = None
    stream.take("{")
    if stream.peek() == "}":
        stream.pos += 1
        return document, result
    while True:
        key = stream.value()
        if not isinstance(key, str):
            raise _NotStreamable
        stream.take(":")
        if key == list_key and stream.peek() == "[":
            if key in document:
                raise _NotStreamable  # json.loads keeps the last of two equal keys
            result = consume(stream.items())
            document[key] = []
        else:
            document[key] = stream.value()
        char = stream.peek()
        stream.pos += 1
        if char == "}":
            return document, result
        if char != ",":
            raise _NotStreamable
