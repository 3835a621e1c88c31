"""Size-based rotation of the peer's event log (``events.jsonl`` -> ``.1`` .. ``.3``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bgpflat.cli.arguments.peer import load_config_file
from bgpflat.peer.process import ExabgpChild
from bgpflat.peer.state import StateDir


def _lines(path: Path) -> list[dict[str, int]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_rotation_keeps_three_generations_and_every_recent_line(tmp_path: Path) -> None:
    state = StateDir(tmp_path, events_max_bytes=200)
    state.create()
    total = 60
    for i in range(total):
        state.log_events([{"n": i, "pad": "x" * 20}])  # ~35 bytes a line: 5 lines a file
    state.release()
    files = state.event_files()
    assert [p.name for p in files] == ["events.jsonl.3", "events.jsonl.2", "events.jsonl.1", "events.jsonl"]
    assert not (tmp_path / "events.jsonl.4").exists()
    seen: list[int] = []
    for path in files:
        assert path.stat().st_size <= 200
        records = _lines(path)  # every line whole: none was split across two files
        assert records
        seen += [r["n"] for r in records]
    # Oldest first and contiguous up to the newest line: only whole older generations were dropped.
    assert seen == list(range(total - len(seen), total))
    assert len(seen) > 3 * 5


def test_rotation_inside_one_batch_loses_nothing(tmp_path: Path) -> None:
    state = StateDir(tmp_path, events_max_bytes=100)
    state.log_events([{"n": i} for i in range(20)])  # 8-9 bytes a line: ~11 lines a file
    state.release()
    seen = [r["n"] for path in state.event_files() for r in _lines(path)]
    assert seen == list(range(20))
    assert [p.name for p in state.event_files()] == ["events.jsonl.1", "events.jsonl"]


def test_a_line_longer_than_the_limit_is_written_whole(tmp_path: Path) -> None:
    state = StateDir(tmp_path, events_max_bytes=10)
    state.log_events([{"n": 0, "pad": "y" * 50}, {"n": 1, "pad": "z" * 50}])
    state.release()
    assert [r["n"] for r in _lines(tmp_path / "events.jsonl.1")] == [0]
    assert [r["n"] for r in _lines(tmp_path / "events.jsonl")] == [1]


def test_an_existing_log_counts_towards_the_limit(tmp_path: Path) -> None:
    (tmp_path / "events.jsonl").write_text('{"n":-1}\n' * 10)  # 90 bytes from an earlier run
    state = StateDir(tmp_path, events_max_bytes=100)
    state.log_events([{"n": 0}, {"n": 1}])
    state.release()
    assert _lines(tmp_path / "events.jsonl.1") == [{"n": -1}] * 10 + [{"n": 0}]
    assert _lines(tmp_path / "events.jsonl") == [{"n": 1}]


def test_zero_never_rotates(tmp_path: Path) -> None:
    state = StateDir(tmp_path, events_max_bytes=0)
    state.log_events([{"n": i, "pad": "x" * 100} for i in range(100)])
    state.release()
    assert [p.name for p in state.event_files()] == ["events.jsonl"]
    assert len(_lines(tmp_path / "events.jsonl")) == 100


def test_config_file_key(tmp_path: Path) -> None:
    config = tmp_path / "peer.yaml"
    config.write_text("events-max-bytes: 1048576\nlisten: 192.0.2.10\n")
    assert load_config_file(str(config))["events_max_bytes"] == 1048576


def test_exabgp_log_past_the_limit_moves_aside_when_exabgp_restarts(tmp_path: Path) -> None:
    log = tmp_path / "exabgp.log"
    child = ExabgpChild(
        command=[sys.executable, "-c", "print('hello from exabgp')"],
        log=log,
        env={},
        backoff=(1.0,),
        stable_after=1.0,
        log_max_bytes=100,
    )
    log.write_bytes(b"x" * 50)
    child.start()
    assert child.proc is not None and child.proc.wait(timeout=30) == 0
    assert not log.with_name("exabgp.log.1").exists()  # under the limit: appended to
    assert log.read_bytes().startswith(b"x" * 50)
    log.write_bytes(b"y" * 150)
    child.start()
    assert child.proc is not None and child.proc.wait(timeout=30) == 0
    assert log.with_name("exabgp.log.1").read_bytes() == b"y" * 150
    assert b"hello from exabgp" in log.read_bytes() and b"y" * 150 not in log.read_bytes()
