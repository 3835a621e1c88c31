"""Reading a JSON file with one huge list without holding the list: a million learned routes are
250 MB of JSON and would be a gigabyte as dicts, but only a few hundred megabytes as routes.

The list is handed over in batches of items, each decoded by orjson where it is installed (two to
three times faster than ``json`` on such records) and, on demand, exactly as ``json.loads`` decodes
it: the two differ only where no route record can be valid (an integer beyond 64 bits is a float
to orjson), so a reader uses the fast items only when it checked every value of every item.
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

_fast_loads: Callable[[str], Any] | None
try:
    from orjson import loads as _fast_loads
except ImportError:  # optional: json's own decoder then, the same items a little slower
    _fast_loads = None

# A batch of list items: as decoded fast, and a function giving them exactly as json.loads decodes
# them, each within the bounds of every input (``bounds``); it raises what reading them whole would.
Batch = tuple[list[Any], Callable[[], list[Any]]]
# Items per batch where the file is read whole (the streaming reader takes what a chunk holds).
_WHOLE_BATCH = 4096


class _NotStreamable(Exception):
    """The file is not plain JSON in the expected shape: read it whole, as ``read_json`` does."""


_SPACE = re.compile(r"[ \t\n\r]*")
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

    def batches(self, file: str) -> Iterator[Batch]:
        """The items of the list that starts here, in batches (``Batch``).

        Items up to the last ``},`` of the text read so far are decoded in one call, as the array
        ``[`` + text + ``]``: that this parses as an array proves the text is a run of whole items
        (a cut inside a string or a nested value would leave it unbalanced); a chunk's last item,
        cut off, is completed by the next chunk and goes with its run. Anything else (the list's
        last item, items that are not objects, what the fast decoder refuses) goes one item at a
        time.
        """
        self.take("[")
        if self.peek() == "]":
            self.pos += 1
            return
        tried = None  # the text last searched for a run: once per chunk read, never once per item
        while True:
            text = self.text
            if text is not tried:
                tried = text
                cut = text.rfind("},", self.pos)
                batch = _decoded(text[self.pos : cut + 1], file) if cut > self.pos else None
                if batch is not None:
                    self.pos = cut + 2
                    yield batch
                    # What is left is at most the start of an item: read on, then cut again,
                    # rather than fail to decode it alone (a failed decode counts the lines of
                    # the whole text for its error message).
                    self._more()
                    continue
            yield _one(self.value(), file)
            char = self.peek()
            self.pos += 1
            if char == "]":
                return
            if char != ",":
                raise _NotStreamable


def _decoded(items: str, file: str) -> Batch | None:
    """A run of items as a batch, or None where it is not one (or not for the fast decoder)."""
    text = "[" + items + "]"
    if _fast_loads is None:
        try:
            exact = json.loads(text)
        except (ValueError, RecursionError):
            return None
        return exact, lambda: _bounded(exact, file)
    try:
        fast = _fast_loads(text)
    except ValueError:
        return None
    return fast, lambda: _bounded(json.loads(text), file)


def _one(value: Any, file: str) -> Batch:
    """One item read by json's own decoder: exact already, bounded on demand."""
    return [value], lambda: _bounded([value], file)


def _bounded(items: list[Any], file: str) -> list[Any]:
    check_json_depth(items, file)
    return items


def read_json_streaming(
    path: str | Path, *, list_key: str, consume: Callable[[Iterator[Batch]], Any]
) -> tuple[Any, Any]:
    """``read_json`` for files with one huge list: a top-level list, or the list under ``list_key``
    of a top-level object, is handed to ``consume`` in batches (``Batch``) and never held whole.

    Returns the document (that list left empty) and what ``consume`` returned; memory stays that of
    what ``consume`` builds. Anything unexpected — invalid JSON, another shape, an error raised by ``consume`` —
    reads the file again with ``read_json`` and gives ``consume`` the loaded list, so errors are
    exactly those of reading it whole.
    """
    file = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            stream = _JsonStream(handle)
            first = stream.peek()
            if first == "[":
                document: Any = []
                result = consume(stream.batches(file))
            elif first == "{":
                document, result = _stream_object(stream, list_key, file, consume)
            else:
                raise _NotStreamable
            if stream.peek():
                raise _NotStreamable  # trailing data: json.loads says "Extra data"
            check_json_depth(document, file)
            return document, result
    # ValueError and RecursionError: json's own refusals (a number of thousands of digits, nesting
    # deeper than the interpreter recurses), which read_json words for the user.
    except (_NotStreamable, SpecError, OSError, ValueError, RecursionError):
        pass
    data = read_json(path)
    if isinstance(data, list):
        return [], consume(_whole(data))
    if isinstance(data, Mapping) and isinstance(data.get(list_key), list):
        return {**data, list_key: []}, consume(_whole(data[list_key]))
    return data, None


def _whole(items: list[Any]) -> Iterator[Batch]:
    """A list read whole (and bounded by ``read_json``) as batches."""
    for start in range(0, len(items), _WHOLE_BATCH):
        yield _exact(items[start : start + _WHOLE_BATCH])


def _exact(items: list[Any]) -> Batch:
    return items, lambda: items


def _stream_object(
    stream: _JsonStream, list_key: str, file: str, consume: Callable[[Iterator[Batch]], Any]
) -> tuple[Any, Any]:
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
            result = consume(stream.batches(file))
            document[key] = []
        else:
            document[key] = stream.value()
        char = stream.peek()
        stream.pos += 1
        if char == "}":
            return document, result
        if char != ",":
            raise _NotStreamable
