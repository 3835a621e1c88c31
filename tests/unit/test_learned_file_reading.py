"""A learned-route file read in batches (``verify --learned``) gives what reading it whole gives:
the same routes in the same order, or the same error line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgpflat.adapters.files import bounds, json_stream, read_json
from bgpflat.cli.arguments.learned import FileSource
from bgpflat.core.routes.verdict import learned_from_json
from bgpflat.errors import SpecError


def flat(i: int, **change: Any) -> dict[str, Any]:
    """A record as `peer routes -o json` writes it."""
    session = f"10.0.0.{i % 3 + 1}"
    record = {
        "prefix": f"10.{i >> 8 & 255}.{i & 255}.0/24",
        "next_hop": session,
        "session": session,
        "as_path": [64512],
        "origin": "igp",
        "communities": [],
        "large_communities": [],
        "path_id": 1,
    }
    return {**record, **change}


_odd = st.sampled_from(
    [
        {"path_id": 2**70},
        {"path_id": 1.0},
        {"path_id": True},
        {"path_id": None},
        {"as_path": [True]},
        {"as_path": [2**64]},
        {"as_path": [64512, 65000]},
        {"communities": ["64512:1", "64512:1"]},
        {"communities": ["1:2:3"]},
        {"large_communities": ["1:2:3"]},
        {"prefix": "10.0.0.1/24"},
        {"prefix": "fd00::/64"},
        {"prefix": "010.0.0.0/24"},
        {"next_hop": "fd00::01"},
        {"next_hop": ""},
        {"session": ""},
        {"origin": "bgp"},
        {"origin": ""},
        {"nexthop": "10.0.0.1"},
        {"node": "node-1"},
        {"name": "x" * 3 + "\u00e9"},
    ]
)
_records = st.lists(
    st.one_of(st.integers(0, 5000).map(flat), st.tuples(st.integers(0, 5000), _odd).map(lambda t: flat(t[0], **t[1]))),
    max_size=40,
)


def outcome(read: Any) -> object:
    try:
        state = read()
    except SpecError as exc:
        return ("refused", str(exc))
    return [repr(route) for route in state.routes], state.sessions


def both_ways(path: Path) -> tuple[object, object]:
    whole = outcome(lambda: learned_from_json(read_json(path), source=str(path)))
    return outcome(FileSource(str(path)).read), whole


@pytest.mark.parametrize("fast", [True, False])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=_records, indent=st.sampled_from([None, 1, 4]), chunk=st.sampled_from([64, 300, 1 << 20]))
def test_read_in_batches_is_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool, records: list[Any], indent: int | None, chunk: int
) -> None:
    if not fast:
        monkeypatch.setattr(json_stream, "_fast_loads", None)
    monkeypatch.setattr(json_stream, "_CHUNK", chunk)  # batches cut at many places
    path = tmp_path / "learned.json"
    path.write_text(json.dumps({"routes": records, "sessions": [{"peer": "10.0.0.1", "state": "up"}]}, indent=indent))
    streamed, whole = both_ways(path)
    assert streamed == whole


def test_a_big_file_of_flat_records_reads_as_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_stream, "_CHUNK", 1 << 12)
    records = [flat(i) for i in range(20_000)] + [flat(3, path_id=2)]
    path = tmp_path / "learned.json"
    path.write_text(json.dumps({"routes": records}, indent=2))
    streamed, whole = both_ways(path)
    assert streamed == whole
    assert isinstance(streamed, tuple) and len(streamed[0]) == 20_001


def test_a_deep_record_far_down_the_file_is_refused_as_reading_it_whole_refuses_it(tmp_path: Path) -> None:
    deep: Any = 1
    for _ in range(150):
        deep = [deep]
    records = [flat(i) for i in range(10_000)] + [flat(1, communities=deep)]
    path = tmp_path / "learned.json"
    path.write_text(json.dumps({"routes": records}))
    streamed, whole = both_ways(path)
    assert streamed == whole
    assert whole == ("refused", f"{path}: nested more than 100 levels deep (fix: {bounds._DEPTH_FIX})")
