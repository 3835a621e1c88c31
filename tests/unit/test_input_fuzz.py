"""Fuzzing the text every input is read from: YAML, JSON, and the ExaBGP line parser.

What a user would notice: a file, however hostile, is one ``bgpflat: error:`` line naming it (a
``BgpflatError``), never a traceback, a hang or gigabytes; a line on the peer's collector socket,
however odd, is a counted ``MalformedEvent``, never the end of a peer that holds every route.

The texts are built from the pieces that broke the loaders (anchors and aliases, deep nesting,
numbers of thousands of digits, stray bytes) mixed with valid documents. 10,000 cases each,
derandomized (the same cases on every run, so a CI failure reproduces), no example database.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgpflat.adapters.files import parse_documents, parse_json
from bgpflat.core.exabgp.events import MalformedEvent, PeerEvent
from bgpflat.core.exabgp.parser import parse_line
from bgpflat.core.plan.model import Plan
from bgpflat.core.routes.verdict import learned_from_json
from bgpflat.errors import BgpflatError

FUZZ = settings(
    max_examples=10_000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def nested(opener: str, closer: str) -> st.SearchStrategy[str]:
    return st.integers(1, 3000).map(lambda n: opener * n + closer * n)


BIG_NUMBER = st.integers(4000, 6000).map(lambda n: "1" * n)

YAML_PIECES = st.one_of(
    st.sampled_from(
        [
            "a: &a [x, y]\n",
            "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n",
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
            "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
            "pools: &p [*p]\n",
            "m: &m {k: *m}\n",
            "<<: *a\n",
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.0.0.0/16}\n",
            "---\n",
            "- \n",
            "  - x\n",
            "key: value\n",
            "when: 2024-13-45\n",
            "!!python/object:os.system x\n",
            "x: !!binary 'not base64'\n",
            "\t",
            "? [a, b]\n: c\n",
            "'",
            '"',
            "|\n  text\n",
            "%YAML 1.1\n",
        ]
    ),
    nested("[", "]"),
    nested("{a: ", "}"),
    st.integers(1, 300).map(lambda n: "".join("  " * i + "- \n" for i in range(n))),
    BIG_NUMBER.map(lambda digits: f"n: {digits}\n"),
    st.text(alphabet="&*[]{}:-,?!|>#%@'\"\\ \n\tab01", max_size=40),
)

JSON_PIECES = st.one_of(
    st.sampled_from(
        [
            '{"routes": [',
            '{"prefix": "10.244.0.0/26", "next_hop": "10.0.0.1", "session": "10.0.0.1"}',
            '{"format_version": 1, "stages": [',
            '"sessions": [{"peer": "10.0.0.1", "state": "up"}]',
            "]",
            "}",
            ",",
            ":",
            '"',
            "null",
            "1e999",
            "-0",
            "NaN",
            "\\ud800",
            "\x00",
        ]
    ),
    nested("[", "]"),
    nested('{"a": ', "1}").map(lambda text: text[: len(text) - text.count("}")] + "}" * text.count("{")),
    BIG_NUMBER,
    st.text(alphabet='[]{}:,"\\ 0123456789.eE-+tfnul', max_size=40),
)


@FUZZ
@given(st.lists(YAML_PIECES, max_size=8).map("".join))
def test_yaml_text_is_loaded_or_refused_in_one_line(text: str) -> None:
    try:
        documents = parse_documents(text, file="fuzz.yaml")
    except BgpflatError as exc:
        assert "fuzz.yaml" in str(exc) and "\n" not in str(exc)
        return
    # What loaded is within the bounds: it can be turned back into text without blowing up.
    for document in documents:
        json.dumps(document.data, default=str)


@FUZZ
@given(st.lists(JSON_PIECES, max_size=8).map("".join))
def test_json_text_is_loaded_or_refused_in_one_line(text: str) -> None:
    for file in ("fuzz.json", "plan.json"):
        try:
            data = parse_json(text, file=file)
        except BgpflatError as exc:
            assert file in str(exc) and "\n" not in str(exc)
            continue
        # What loaded meets the readers of saved plans and learned routes: refused in words, or read.
        with contextlib.suppress(BgpflatError):
            Plan.from_dict(data)
        with contextlib.suppress(BgpflatError):
            learned_from_json(data, source=file)


UPDATE = {
    "exabgp": "5.0.0",
    "time": 1795241437.1,
    "type": "update",
    "neighbor": {
        "address": {"local": "10.0.0.100", "peer": "10.0.0.1"},
        "asn": {"local": 65000, "peer": 64512},
        "direction": "receive",
        "message": {
            "update": {
                "attribute": {
                    "origin": "igp",
                    "as-path": {"0": {"element": "as-sequence", "value": [64512]}},
                    "community": [[64512, 100]],
                    "large-community": [[64512, 1, 2]],
                },
                "announce": {"ipv4 unicast": {"10.0.0.1": [{"nlri": "10.244.0.0/26", "path-information": "0.0.0.2"}]}},
            }
        },
    },
}
STATE = {"type": "state", "neighbor": {"address": {"local": "10.0.0.100", "peer": "10.0.0.1"}, "state": "up"}}
MARK = "@@raw@@"


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*prefix, index))
    return found


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[path[0]] = replaced(document[path[0]], path[1:], value)  # type: ignore[index]
    return copy


UPDATE_PATHS, STATE_PATHS = paths(UPDATE), paths(STATE)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20), st.just(MARK)
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner), max_leaves=6
)
RAW = st.one_of(nested("[", "]"), nested('{"a":', "0}"), BIG_NUMBER, st.just("[1,"), st.just('"\\ud800"'))


@st.composite
def exabgp_lines(draw: st.DrawFn) -> str | bytes:
    """A real UPDATE or state line with one value replaced (perhaps by raw text: deep nesting,
    a huge number, a cut-off list), or with a slice of its text replaced; as text or bytes."""
    base, where = draw(st.sampled_from([(UPDATE, UPDATE_PATHS), (STATE, STATE_PATHS)]))
    if draw(st.booleans()):
        path = draw(st.sampled_from(where))
        line = json.dumps(replaced(base, path, draw(VALUES))).replace(json.dumps(MARK), draw(RAW), 1)
    else:
        line = json.dumps(base)
        start = draw(st.integers(0, len(line)))
        end = draw(st.integers(start, len(line)))
        line = line[:start] + draw(st.text(alphabet='[]{}:,"\\ 0123456789', max_size=30) | RAW) + line[end:]
    if draw(st.booleans()):
        return line.encode("utf-8", "surrogatepass") + draw(st.binary(max_size=4))
    return line


@FUZZ
@given(exabgp_lines())
def test_no_exabgp_line_is_fatal(line: str | bytes) -> None:
    event = parse_line(line)
    assert isinstance(event, PeerEvent)
    if isinstance(event, MalformedEvent):
        assert len(event.line) <= 201  # quoted, cut to a readable length
