"""Snapshots and learned-route files get the checks ``-f`` gets: one ``file:line`` error, exit 2.

Each case edits the lab's snapshot (or a learned-route file) the way a hand-written fixture goes
wrong, and runs the commands that read it: ``routes expected``, ``plan --snapshot``, ``verify``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgpflat.cli import main

LABS = Path(__file__).resolve().parents[2] / "labs"
SPEC = LABS / "calico-bgp" / "bgpflat.yaml"
CLUSTER = LABS / "calico-bgp" / "cluster.yaml"
PEER = "10.200.20.254"
TEXT = CLUSTER.read_text()
NODE_1 = TEXT[TEXT.index("apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1") :].split("---\n")[0]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def one_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("bgpflat: error: ")]
    assert len(lines) == 1, err
    return lines[0].removeprefix("bgpflat: error: ")


CASES = {
    "ipip-sometimes": (
        ("ipipMode: Always", "ipipMode: Sometimes"),
        "ipipMode: Sometimes",
        "spec.ipipMode: IPPool/default-pool: invalid ipipMode 'Sometimes' (fix: use Never, Always or CrossSubnet)",
    ),
    "unknown-field": (
        ("  natOutgoing: true\n", "  natOutgoing: true\n  natOutgong: true\n"),
        "  natOutgong",
        "spec.natOutgong: IPPool/default-pool: unknown field 'natOutgong' (fix: did you mean 'natOutgoing'?)",
    ),
    "unknown-kind": (
        (
            "---\napiVersion: v1\nkind: Node",
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Node",
            1,
        ),
        "kind: ConfigMap",
        "kind: a ConfigMap is nothing bgpflat reads from a snapshot (fix: a snapshot holds BGPConfiguration, ",
    ),
    "duplicate-node": (
        ("---\n" + NODE_1, "---\n" + NODE_1 + "---\n" + NODE_1, 1),
        None,  # the second copy: found below
        "Node 'node-1' is given twice (first at line",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["routes", "plan"])
def test_a_bad_snapshot_is_one_file_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str, command: str
) -> None:
    replacement, anchor, expected = CASES[case]
    text = TEXT.replace(*replacement)
    assert text != TEXT
    Path("cluster.yaml").write_text(text)
    argv = ("routes", "expected", "--peer", PEER) if command == "routes" else ("plan", "-f", str(SPEC))
    error = one_error(capsys, *argv, "--snapshot", "cluster.yaml")
    if anchor is None:
        # The second copy's line (the first one's is in the message).
        second = text.index(NODE_1, text.index(NODE_1) + 1)
        line = text[:second].count("\n") + 1
    else:
        line = line_of(text, anchor)
    assert error.startswith(f"cluster.yaml:{line}: {expected}"), error


def test_an_ipam_block_with_a_number_for_its_affinity(capsys: pytest.CaptureFixture[str]) -> None:
    Path("cluster.yaml").write_text(TEXT.replace("affinity: host:node-1", "affinity: 42", 1))
    assert one_error(capsys, "routes", "expected", "--peer", PEER, "--snapshot", "cluster.yaml") == (
        "cluster.yaml: objects[8] (IPAMBlock 10-233-65-0-24).spec.affinity: expected text like 'host:node-1', "
        "got 42 (fix: host:<node name>)"
    )


def learned(routes: list[dict[str, object]]) -> str:
    Path("learned.json").write_text(json.dumps({"routes": routes}))
    return "learned.json"


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (
            {"prefix": "10.233.65.0/24", "nexthop": "10.200.20.103", "session": "10.200.20.103"},
            "learned.json: routes[0].nexthop: unknown field 'nexthop' (fix: did you mean 'next_hop'?)",
        ),
        (
            {"prefix": "10.233.65.0/24", "next_hop": "10.200.20.103"},
            "learned.json: routes[0].session: a route without its session (fix: each learned route names the "
            "session (the node's address) it came from, as `bgpflat peer routes -o json` writes it)",
        ),
    ],
    ids=["typo-nexthop", "no-session"],
)
def test_a_bad_learned_route_is_bad_input_not_a_mismatch(
    capsys: pytest.CaptureFixture[str], route: dict[str, object], expected: str
) -> None:
    argv = ["verify", "--peer", PEER, "--snapshot", str(CLUSTER), "-f", str(SPEC), "--learned", learned([route])]
    assert main(argv) == 2  # could not verify: bad input (a mismatch would be 1)
    err = capsys.readouterr().err
    assert f"could not verify (bad-input): {expected}" in err
