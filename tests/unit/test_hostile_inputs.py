"""Hostile structure in any input: alias bombs, an alias inside its own anchor, deep nesting and
numbers of thousands of digits are one ``bgpflat: error:`` line naming the file, exit 2, in well
under a second; never minutes, gigabytes or a traceback.

Every input goes through the same loader (``bgpflat.adapters.files``); each case is run through the
command a user would type: ``plan -f``, ``peer run --config``, ``apply PLAN.json``, ``verify --learned``.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from bgpflat.cli import main

LABS = Path(__file__).resolve().parents[2] / "labs"
SPEC = LABS / "calico-bgp" / "bgpflat.yaml"
CLUSTER = LABS / "calico-bgp" / "cluster.yaml"

# Nine levels of nine aliases: a billion strings for whatever walks the loaded data.
NAMES = "abcdefghi"
ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + below] * 9)}]\n" for below, name in itertools.pairwise(NAMES)
)
DEEP_JSON = "[" * 50_000 + "]" * 50_000
DEEP_ENOUGH_JSON = "[" * 500 + "]" * 500  # what json itself reads: the bound is bgpflat's


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def one_error(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 2) -> str:
    started = time.monotonic()
    assert main(list(argv)) == code
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("bgpflat: error: ")]
    assert len(lines) == 1, err
    return lines[0].removeprefix("bgpflat: error: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ALIAS_BOMB,
            "spec.yaml:1: aliases expand this document to 490,329,064 values, more than 100,280 (an alias bomb?) "
            "(fix: write the repeated parts out, or nest fewer aliases)",
        ),
        (
            "pools: &p [*p]\n",
            "spec.yaml:1: an alias refers to the anchor that contains it (the value would contain itself) "
            "(fix: write the value out instead of the alias)",
        ),
        (
            "pools:\n  m: &m {k: *m}\n",
            "spec.yaml:2: an alias refers to the anchor that contains it (the value would contain itself) "
            "(fix: write the value out instead of the alias)",
        ),
        (
            "pools: " + "[" * 500 + "]" * 500 + "\n",
            "spec.yaml:1: nested more than 100 levels deep "
            "(fix: a bgpflat input nests at most 100 levels; check the file is the one you meant)",
        ),
        (
            "version: 1\nbig: " + "9" * 5000 + "\n",
            "spec.yaml:1: a number with thousands of digits "
            "(fix: numbers in bgpflat's files are at most 20 digits long)",
        ),
    ],
    ids=["alias-bomb", "recursive-anchor", "recursive-mapping", "deep", "huge-integer"],
)
def test_plan_spec(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "spec.yaml").write_text(text)
    assert one_error(capsys, "plan", "-f", "spec.yaml", "--snapshot", str(CLUSTER)) == expected


@pytest.mark.parametrize("text", [DEEP_JSON, DEEP_ENOUGH_JSON])
def test_plan_spec_in_json(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str) -> None:
    (tmp_path / "spec.json").write_text(text)
    assert one_error(capsys, "plan", "-f", "spec.json", "--snapshot", str(CLUSTER)) == (
        "spec.json: nested more than 100 levels deep "
        "(fix: a bgpflat input nests at most 100 levels; check the file is the one you meant)"
    )


def test_peer_config_alias_bomb(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "peer.yaml").write_text(ALIAS_BOMB)
    assert one_error(capsys, "peer", "run", "--config", "peer.yaml").startswith(
        "peer.yaml:1: aliases expand this document to 490,329,064 values"
    )


@pytest.mark.parametrize("text", [DEEP_JSON, DEEP_ENOUGH_JSON, '{"format_version": ' + DEEP_ENOUGH_JSON + "}"])
def test_saved_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str) -> None:
    (tmp_path / "plan.json").write_text(text)
    assert one_error(capsys, "apply", "plan.json", "--yes").startswith("plan.json: nested more than 100 levels deep")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DEEP_JSON, "learned.json: nested more than 100 levels deep"),
        ('{"routes": [' + DEEP_ENOUGH_JSON + "]}", "learned.json: nested more than 100 levels deep"),
        ('{"routes": [], "sessions": ' + DEEP_ENOUGH_JSON + "}", "learned.json: nested more than 100 levels deep"),
        ('{"routes": [{"prefix": "10.0.0.0/8", "path_id": ' + "7" * 5000 + "}]}", "learned.json: a number with"),
    ],
    ids=["deep", "deep-route", "deep-sessions", "huge-integer"],
)
def test_verify_learned(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "learned.json").write_text(text)
    argv = ["verify", "--peer", "10.200.20.254", "--snapshot", str(CLUSTER), "--learned", "learned.json"]
    started = time.monotonic()
    assert main(argv) == 2  # could not verify (bad input), as the README's exit codes say
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"could not verify (bad-input): {expected}" in err
