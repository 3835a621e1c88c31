"""Where the CLI writes: data on stdout, messages and progress on stderr; colour only on a terminal."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii as _encode_string
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

EXIT_OK = 0
EXIT_DIFFERENCES = 1
EXIT_ERROR = 2

PIPED_WIDTH = 400

_color = "auto"


def configure_output(*, color: str) -> None:
    global _color
    _color = color


def _want_color(stream: object) -> bool | None:
    """True/False to force, None to let rich decide (it honours NO_COLOR, FORCE_COLOR, TERM=dumb).

    ``--color always`` wins over ``NO_COLOR``: no-color.org asks tools to let a command-line flag
    override the variable, as a user who types it means it."""
    if _color == "always":
        return True
    if _color == "never" or os.environ.get("NO_COLOR"):
        return False
    return None


def console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    wanted = _want_color(stream)
    # Piped output (files, CI logs, less) has no width; rich would assume 80 columns and squeeze
    # tables into truncated cells. Let tables take their natural width instead, unless COLUMNS says.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else PIPED_WIDTH
    # soft_wrap: long lines are never broken by rich, so piped output stays one record per line.
    if wanted is False:
        return Console(file=stream, no_color=True, highlight=False, force_terminal=False, soft_wrap=True, width=width)
    if wanted is True:
        return Console(file=stream, force_terminal=True, no_color=False, highlight=False, soft_wrap=True, width=width)
    return Console(file=stream, highlight=False, soft_wrap=True, width=width)


class GuardedStdout:
    """``sys.stdout`` while a command runs: a reader that stops early (``| head``) is not an error,
    and a stdout that cannot be written (a full disk) is one error line.

    After a broken pipe, the rest of the output goes to /dev/null and the command finishes with its
    own exit code (a ``verify -o json | head`` in CI keeps its verdict). Any other write error
    becomes a ``BgpflatError``, which ``main`` prints as one line with exit 2.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError as exc:
            self._failed(exc)
        return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        from bgpflat.errors import BgpflatError

        # What is still buffered would fail again at exit (Python's "Exception ignored" lines):
        # point the descriptor at /dev/null so that it drains there.
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)
        except (OSError, ValueError):
            pass  # not a real descriptor (an in-memory stream in tests)
        if not isinstance(exc, BrokenPipeError):
            raise BgpflatError(f"cannot write to standard output: {exc.strerror or exc}") from None


def error_line(message: str) -> None:
    """One line on stderr, prefixed so that it stands out in CI logs."""
    print(f"bgpflat: error: {message}", file=sys.stderr)


def info(message: str) -> None:
    print(message, file=sys.stderr)


MACHINE_FORMATS = ("json", "yaml")


def write_data(data: Any, output: str) -> None:
    """``-o json`` or ``-o yaml``: the same data, as kubectl gives both for every listing."""
    if output == "yaml":
        from bgpflat.adapters.files import dump_yaml

        sys.stdout.write(dump_yaml(data))
    else:
        write_json(data)


def write_json(data: Any, stream: TextIO | None = None) -> None:
    """``json.dump(data, stream, indent=2)`` and a newline, byte for byte, at the speed of the data.

    ``json`` indents in pure Python, one generator step and one ``write`` per token: 250,000 routes
    took half a minute. Here the text is written in pieces of a few thousand elements (never held
    whole): runs of list items encoded by orjson where it is installed (``_encoded_run``), else
    strings through json's C escaping and containers joined per element.
    """
    out = sys.stdout if stream is None else stream
    pending: list[str] = []
    size = 0
    for chunk in _chunks(data, "\n", {}):
        pending.append(chunk)
        size += len(chunk)
        if len(pending) >= 4096 or size >= 1 << 20:
            out.write("".join(pending))
            pending.clear()
            size = 0
    pending.append("\n")
    out.write("".join(pending))


try:
    import orjson as _orjson
except ImportError:  # optional: json's own encoder then, the same text a few times slower
    _orjson = None  # type: ignore[assignment]

# Items encoded by one orjson call: a few hundred kilobytes of text.
_RUN = 512


def _encoded_run(items: list[Any], inner: str) -> str | None:
    """List items as ``json.dumps(indent=2)`` writes them at the indent of ``inner``, separated by
    ``","`` and ``inner``; None where orjson is not installed or refuses one of them (an integer
    beyond 64 bits, a key that is not a string, a type json would refuse too), which the caller
    then encodes with json.

    orjson writes the same indentation and separators as json's ``indent=2``. What it writes
    otherwise is put back as json writes it: characters outside printable ASCII (UTF-8 and DEL
    to orjson) as ``\\uXXXX`` escapes. A float of magnitude 1e-9 to 1e-4 is spelled differently
    (``0.00001`` for ``1e-05``; the same number when read), and NaN or an infinity becomes
    ``null`` where json writes ``NaN``; bgpflat's outputs hold neither (times are rounded to
    milliseconds).
    """
    if _orjson is None:
        return None
    # The items nested in as many lists as it takes for orjson to write them at the indent of
    # ``inner`` (cheaper than indenting its text afterwards), then those lists' brackets cut off.
    levels = (len(inner) - 1) // 2
    nested: Any = items
    for _ in range(levels - 1):
        nested = [nested]
    try:
        encoded = _orjson.dumps(nested, option=_OPTIONS, default=_refuse)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return None
    opening = sum(2 + 2 * level for level in range(1, levels + 1))  # "[\n" and the indent, per level
    closing = sum(2 + 2 * level for level in range(levels))  # "\n", the indent and "]", per level
    body = encoded[opening:-closing]
    if body.isascii() and b"\x7f" not in body:
        return body.decode("ascii")
    return _NOT_PRINTABLE_ASCII.sub(_escaped, body.decode("utf-8"))


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is json's to encode (or refuse)")


_OPTIONS = (
    (_orjson.OPT_INDENT_2 | _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_DATETIME)
    if _orjson is not None
    else 0
)
_NOT_PRINTABLE_ASCII = re.compile("[^\x00-\x7e]")


def _escaped(match: re.Match[str]) -> str:
    """One character as json's ``ensure_ascii`` writes it (a surrogate pair above U+FFFF)."""
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | code >> 10:04x}\\u{0xDC00 | code & 0x3FF:04x}"


# Text already written for a list of containers, by id (every object in ``data`` lives until
# ``write_json`` returns, so an id names one object): records often share such a list (the reasons
# of routes with the same reasons), and it is then encoded once.
_Shared = dict[int, tuple[str, str]]


def _chunks(value: Any, newline: str, shared: _Shared) -> Iterator[str]:
    """The top two levels one element at a time; everything deeper as one string each."""
    if len(newline) > 3 or not isinstance(value, dict | list) or not value:
        yield _encode(value, newline, shared)
        return
    inner = newline + "  "
    if isinstance(value, list):
        yield "["
        separator = inner
        for start in range(0, len(value), _RUN):
            run = value[start : start + _RUN]
            text = _encoded_run(run, inner)
            if text is not None:
                yield separator + text
                separator = "," + inner
                continue
            for item in run:
                yield separator
                yield from _chunks(item, inner, shared)
                separator = "," + inner
        yield newline + "]"
        return
    if not all(isinstance(key, str) for key in value):
        yield _encode(value, newline, shared)
        return
    yield "{"
    separator = inner
    for key, item in value.items():
        yield separator + _encode_string(key) + ": "
        yield from _chunks(item, inner, shared)
        separator = "," + inner
    yield newline + "}"


# Values json's C encoder writes the same with or without indent: with the separator ",\n" plus the
# indent of the level, it then writes a long list of them exactly as indent=2 does.
_FLAT = frozenset({str, int, float, bool, type(None)})
_FLAT_ENCODERS: dict[str, json.JSONEncoder] = {}


def _flat_encoder(inner: str) -> json.JSONEncoder:
    encoder = _FLAT_ENCODERS.get(inner)
    if encoder is None:
        encoder = _FLAT_ENCODERS[inner] = json.JSONEncoder(separators=("," + inner, ": "))
    return encoder


def _encode(value: Any, newline: str, shared: _Shared) -> str:
    kind = type(value)
    if kind is str:
        return _encode_string(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = newline + "  "
        parts = []
        for key, item in value.items():
            if type(key) is not str:
                break  # keys json turns into strings itself (numbers, booleans, null): let it
            if type(item) is str:
                parts.append(f"{_encode_string(key)}: {_encode_string(item)}")
            elif not item and (type(item) is list or type(item) is dict):
                parts.append(f"{_encode_string(key)}: {'[]' if type(item) is list else '{}'}")
            else:
                parts.append(f"{_encode_string(key)}: {_encode(item, inner, shared)}")
        else:
            return "{" + inner + ("," + inner).join(parts) + newline + "}"
    elif kind is list or kind is tuple:
        if not value:
            return "[]"
        inner = newline + "  "
        if len(value) > 8 and all(type(v) in _FLAT for v in value):
            return "[" + inner + _flat_encoder(inner).encode(value)[1:-1] + newline + "]"
        if type(value[0]) is dict or type(value[0]) is list:
            seen = shared.get(id(value))
            if seen is not None and seen[0] == newline:
                return seen[1]
            text = "[" + inner + ("," + inner).join([_encode(v, inner, shared) for v in value]) + newline + "]"
            shared[id(value)] = (newline, text)
            return text
        return "[" + inner + ("," + inner).join([_encode(v, inner, shared) for v in value]) + newline + "]"
    elif value is None:
        return "null"
    elif value is True:
        return "true"
    elif value is False:
        return "false"
    elif kind is int:
        return int.__repr__(value)
    # Subclasses, floats (NaN, Infinity), keys to convert, and whatever json refuses (its error):
    # json itself, re-indented to this level (a JSON string holds no raw newline).
    return json.dumps(value, indent=2).replace("\n", newline)
