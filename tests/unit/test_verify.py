"""verify: learned-route input, the three outcomes, convergence waiting, reports and the CLI."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_advertise import ADDR, BLOCK, base, expect

from bgpflat.cli import main
from bgpflat.core.routes.table import RouteTable
from bgpflat.core.routes.verdict import (
    BAD_INPUT,
    CANNOT_VERIFY,
    MATCH,
    MISMATCH,
    NO_EXPECTATIONS,
    NO_SESSION,
    NOTHING_LEARNED,
    LearnedState,
    evaluate,
    learned_from_json,
)
from bgpflat.errors import SpecError
from bgpflat.testing.assertions import RouteAssertionError, RouteAssertionWarning, assert_routes
from bgpflat.views.reports import markdown_summary
from bgpflat.workflows.verify import verify

EXPECTED = expect(base(mesh=False))
RECORDS = EXPECTED.table.to_records()


def sessions(
    state: str = "up", eor: bool = True, peers: tuple[str, ...] = tuple(ADDR.values())
) -> list[dict[str, Any]]:
    return [{"peer": p, "state": state, "eor_complete": eor} for p in peers]


def test_learned_input_shapes() -> None:
    assert len(learned_from_json(RECORDS, source="x").routes) == 3
    wrapped = learned_from_json({"format_version": 1, "routes": RECORDS}, source="x")
    assert wrapped.sessions is None
    snap = learned_from_json({"routes": RECORDS, "sessions": sessions()}, source="x")
    assert snap.sessions is not None and snap.sessions[ADDR["a"]].established


def test_bad_learned_input_names_the_file_and_route() -> None:
    with pytest.raises(SpecError, match=r"learned\.json: not a learned-route file"):
        learned_from_json({"nope": 1}, source="learned.json")
    with pytest.raises(SpecError, match=r"learned.json: routes\[0\]: missing field 'prefix'"):
        learned_from_json([{"next_hop": "10.0.0.1"}], source="learned.json")


def test_outcomes_are_distinct() -> None:
    table = RouteTable.from_records(RECORDS)
    ok, _ = evaluate(expected=EXPECTED, learned=LearnedState(routes=table))
    assert (ok.status, ok.exit_code) == (MATCH, 0)
    short = RouteTable(r for r in table if r.session != ADDR["c"])
    bad, _ = evaluate(expected=EXPECTED, learned=LearnedState(routes=short))
    assert (bad.status, bad.exit_code) == (MISMATCH, 1)
    empty, _ = evaluate(expected=EXPECTED, learned=LearnedState(routes=RouteTable()))
    assert (empty.status, empty.reason, empty.exit_code) == (CANNOT_VERIFY, NOTHING_LEARNED, 2)
    down, _ = evaluate(expected=EXPECTED, learned=LearnedState(routes=table, sessions={}))
    assert (down.status, down.reason) == (CANNOT_VERIFY, NO_SESSION)
    nobody = expect(base(mesh=False), peer="10.9.9.9")
    none, _ = evaluate(expected=nobody, learned=LearnedState(routes=table))
    assert (none.status, none.reason) == (CANNOT_VERIFY, NO_EXPECTATIONS)


def test_some_sessions_down_is_a_mismatch_that_names_them() -> None:
    state = learned_from_json(
        {
            "routes": [r for r in RECORDS if r["session"] != ADDR["c"]],
            "sessions": sessions(peers=(ADDR["a"], ADDR["b"])),
        },
        source="x",
    )
    result, eor = evaluate(expected=EXPECTED, learned=state)
    assert result.status == MISMATCH
    assert result.sessions_down == (ADDR["c"],)
    assert eor
    assert "1 expected session(s) not established" in result.message


class Sequence:
    """A learned source that changes between reads, as a converging peer does."""

    def __init__(self, states: list[Any]) -> None:
        self.states = states
        self.reads = 0

    def read(self) -> LearnedState:
        state = self.states[min(self.reads, len(self.states) - 1)]
        self.reads += 1
        if isinstance(state, Exception):
            raise state
        return learned_from_json(state, source="seq")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_polls_until_end_of_rib_and_a_match() -> None:
    partial = {"routes": RECORDS[:1], "sessions": sessions(eor=False)}
    done = {"routes": RECORDS, "sessions": sessions(eor=True)}
    source, clock = Sequence([SpecError("no snapshot yet"), partial, partial, done]), Clock()
    result = verify(expected=EXPECTED, source=source, wait=True, timeout=60, interval=2, clock=clock, sleep=clock.sleep)
    assert (result.status, result.converged, result.attempts) == (MATCH, True, 4)
    assert clock.now == 6


def test_wait_accepts_a_mismatch_only_after_it_settles() -> None:
    stuck = {"routes": RECORDS[:2], "sessions": sessions(eor=True)}
    source, clock = Sequence([stuck]), Clock()
    result = verify(
        expected=EXPECTED, source=source, wait=True, timeout=60, interval=1, settle=3, clock=clock, sleep=clock.sleep
    )
    assert (result.status, result.converged, result.attempts) == (MISMATCH, True, 4)
    assert clock.now == 3


def test_routes_arriving_after_end_of_rib_are_waited_for() -> None:
    # End-of-RIB comes with the node's own routes; the mesh copies follow a moment later.
    early = {"routes": RECORDS[:2], "sessions": sessions(eor=True)}
    late = {"routes": RECORDS, "sessions": sessions(eor=True)}
    source, clock = Sequence([early, early, late]), Clock()
    result = verify(
        expected=EXPECTED, source=source, wait=True, timeout=60, interval=1, settle=5, clock=clock, sleep=clock.sleep
    )
    assert (result.status, result.converged, result.attempts) == (MATCH, True, 3)


def test_wait_times_out_and_says_so() -> None:
    source, clock = Sequence([{"routes": RECORDS[:1], "sessions": sessions(eor=False)}]), Clock()
    result = verify(expected=EXPECTED, source=source, wait=True, timeout=5, interval=2, clock=clock, sleep=clock.sleep)
    assert result.status == MISMATCH
    assert not result.converged
    assert result.notes == ("not converged after 5 s (End-of-RIB not seen on every session)",)


def test_unreadable_source_cannot_verify() -> None:
    result = verify(expected=EXPECTED, source=Sequence([SpecError("bad file")]))
    assert (result.status, result.reason, result.message) == (CANNOT_VERIFY, BAD_INPUT, "bad file")


def test_assert_routes_message_is_the_readable_diff() -> None:
    with pytest.raises(RouteAssertionError) as caught:
        assert_routes(expected=EXPECTED, learned=RECORDS[:2])
    text = str(caught.value)
    assert text.splitlines()[0] == "routes do not comply: 2 present, 1 missing, 0 mismatched, 0 unexpected"
    assert "[route-missing] 10.244.0.128/26 missing via 10.0.0.3 (c): block of c" in text
    assert caught.value.diff is not None and len(caught.value.diff.missing) == 1
    with pytest.warns(RouteAssertionWarning, match="1 missing"):
        diff = assert_routes(expected=EXPECTED, learned=RECORDS[:2], soft=True)
    assert not diff.complies
    assert assert_routes(expected=RECORDS, learned=RECORDS).complies


def test_markdown_summary_escapes_and_lists_findings() -> None:
    state = learned_from_json(RECORDS[:2], source="x")
    result, _ = evaluate(expected=EXPECTED, learned=state)
    text = markdown_summary(result)
    assert text.startswith("### ❌ bgpflat verify — peer 10.0.0.254: mismatch")
    assert "| 10.0.0.3 | c | 1 | 0 | 1 | 0 | 0 |" in text
    assert "| `route-missing` | 10.244.0.128/26 missing via 10.0.0.3 (c): block of c" in text


# --- the CLI -------------------------------------------------------------------------------------


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(base(mesh=False)))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--color", "never", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_routes_expected_json(capsys: pytest.CaptureFixture[str], snapshot: Path) -> None:
    code, out, _ = run(capsys, "routes", "expected", "--peer", "10.0.0.254", "--snapshot", str(snapshot), "-o", "json")
    data = json.loads(out)
    assert code == 0
    assert data["format_version"] == 1
    assert [(r["node"], r["prefix"], r["next_hop"]) for r in data["routes"]] == [
        ("a", BLOCK["a"], ADDR["a"]),
        ("b", BLOCK["b"], ADDR["b"]),
        ("c", BLOCK["c"], ADDR["c"]),
    ]
    assert data["routes"][0]["explanation"] == "block of a, originated by the node itself (eBGP peer, next hop self)"


def test_cli_routes_expected_table(capsys: pytest.CaptureFixture[str], snapshot: Path) -> None:
    code, out, _ = run(capsys, "routes", "expected", "--peer", "10.0.0.254", "--snapshot", str(snapshot))
    assert code == 0
    assert "10.244.0.64/26" in out and "Sessions" in out


def test_cli_verify_exit_codes_junit_and_step_summary(
    capsys: pytest.CaptureFixture[str], snapshot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    good, bad, empty = tmp_path / "good.json", tmp_path / "bad.json", tmp_path / "empty.json"
    good.write_text(json.dumps({"routes": RECORDS}))
    bad.write_text(json.dumps(RECORDS[:2]))
    empty.write_text(json.dumps({"routes": []}))
    common = ["verify", "--peer", "10.0.0.254", "--snapshot", str(snapshot)]

    assert run(capsys, *common, "--learned", str(good))[0] == 0
    junit = tmp_path / "out.xml"
    code, out, err = run(capsys, *common, "--learned", str(bad), "-o", "json", "--junit", str(junit))
    assert code == 1
    data = json.loads(out)
    assert (data["format_version"], data["status"]) == (1, "mismatch")
    assert data["compliance"]["sessions"][ADDR["c"]]["missing"] == [BLOCK["c"]]
    assert "routes do not match" in err
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("tests") == "3"
    # CI tools split a class name on dots into packages: the peer's address must not add any.
    assert {case.get("classname") for case in suite.iter("testcase")} == {"bgpflat.verify.peer-10-0-0-254"}
    code, _, err = run(capsys, *common, "--learned", str(empty))
    assert code == 2
    assert "could not verify (nothing-learned)" in err
    code, _, err = run(capsys, *common, "--learned", str(tmp_path / "missing.json"))
    assert code == 2
    assert "could not verify (bad-input)" in err
    assert summary.read_text().count("### ") == 4


def test_cli_verify_bad_peer_address_is_an_error(capsys: pytest.CaptureFixture[str], snapshot: Path) -> None:
    code, _, err = run(capsys, "verify", "--peer", "10.0.0.300", "--snapshot", str(snapshot), "--learned", "x")
    assert code == 2
    assert "--peer: '10.0.0.300' is not an IP address" in err


def test_cli_verify_reads_the_peer_state_directory(
    capsys: pytest.CaptureFixture[str], snapshot: Path, tmp_path: Path
) -> None:
    from bgpflat.peer.state import FORMAT_VERSION, StateDir

    state = StateDir(tmp_path / "peer")
    state.create()
    state.write_snapshot(
        {"format_version": FORMAT_VERSION, "routes": RECORDS, "sessions": sessions(peers=(ADDR["a"], ADDR["b"]))}
    )
    code, out, _ = run(
        capsys,
        "verify",
        "--peer",
        "10.0.0.254",
        "--snapshot",
        str(snapshot),
        "--state-dir",
        str(state.path),
        "-o",
        "json",
    )
    data = json.loads(out)
    assert code == 1
    assert data["sessions_down"] == [ADDR["c"]]
    assert data["source"].endswith("snapshot.json")
    state.write_snapshot({"format_version": FORMAT_VERSION, "routes": [], "sessions": sessions(state="idle")})
    code, out, _ = run(
        capsys,
        "verify",
        "--peer",
        "10.0.0.254",
        "--snapshot",
        str(snapshot),
        "--state-dir",
        str(state.path),
        "-o",
        "json",
    )
    assert (code, json.loads(out)["reason"]) == (2, "no-session")
