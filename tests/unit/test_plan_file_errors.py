"""Saved plans that are truncated, hand-edited or from another version: refused in words, with the
JSON path of the bad entry, and never with a bare KeyError/TypeError text.

The CLI cases go through ``bgpflat apply PLAN.json`` exactly as a user would; the plan they edit is
a real one written by ``bgpflat plan --out``.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bgpflat.cli import main
from bgpflat.core.plan.planner import Plan
from bgpflat.errors import PlanError, SpecError

LABS = Path(__file__).resolve().parents[2] / "labs"
SPEC = LABS / "calico-bgp" / "bgpflat.yaml"
CLUSTER = LABS / "calico-bgp" / "cluster.yaml"
HAND_EDITED = "(fix: make the plan again with `bgpflat plan --out`; a saved plan is not edited by hand)"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(scope="module")
def saved_plan(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("plan") / "plan.json"
    assert main(["plan", "-f", str(SPEC), "--snapshot", str(CLUSTER), "--out", str(out)]) == 0
    data: dict[str, Any] = json.loads(out.read_text())
    # The edits below change the second stage's first change.
    assert len(data["stages"]) >= 2
    return data


def apply_error(capsys: pytest.CaptureFixture[str], text: str) -> str:
    Path("plan.json").write_text(text)
    code = main(["apply", "plan.json"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("bgpflat: error: ")]
    assert len(lines) == 1, err
    return lines[0].removeprefix("bgpflat: error: ")


def test_the_saved_plan_still_loads(saved_plan: dict[str, Any]) -> None:
    # The format is unchanged: a plan written by `plan --out` reads back to the same bytes.
    text = json.dumps(saved_plan, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert Plan.from_json(text).to_json() == text


# --- through `bgpflat apply PLAN.json` ----------------------------------------------------------------


def test_truncated_plan(capsys: pytest.CaptureFixture[str]) -> None:
    # The files adapter reads the JSON; it names the file and the line where the text stops.
    assert apply_error(capsys, '{"format_version": 1, "stages": [') == ("plan.json:1: invalid JSON: Expecting value")


def test_empty_plan_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert apply_error(capsys, "") == "plan.json: empty file, expected JSON"


def test_missing_key(saved_plan: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    data = copy.deepcopy(saved_plan)
    del data["stages"][1]["changes"][0]["kind"]
    assert apply_error(capsys, json.dumps(data)) == f'plan.json: stages[1].changes[0]: missing "kind" {HAND_EDITED}'


def test_wrong_type(saved_plan: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    data = copy.deepcopy(saved_plan)
    data["stages"][1]["changes"][0]["name"] = 7
    assert apply_error(capsys, json.dumps(data)) == (
        f"plan.json: stages[1].changes[0].name: expected a string, got the number 7 {HAND_EDITED}"
    )


def test_stages_not_a_list(saved_plan: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    data = copy.deepcopy(saved_plan)
    data["stages"] = {"peers": []}
    assert apply_error(capsys, json.dumps(data)) == f"plan.json: stages: expected a list, got an object {HAND_EDITED}"


def test_unknown_format_version(saved_plan: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    data = copy.deepcopy(saved_plan)
    data["format_version"] = 7
    assert apply_error(capsys, json.dumps(data)) == (
        "plan.json: format_version 7 is not supported (this bgpflat reads 1) "
        "(fix: make the plan again with `bgpflat plan --out`)"
    )


def test_unknown_action(saved_plan: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    data = copy.deepcopy(saved_plan)
    data["stages"][1]["changes"][0]["action"] = "replace"
    assert apply_error(capsys, json.dumps(data)) == (
        'plan.json: stages[1].changes[0]: unknown action "replace" '
        f"(bgpflat knows create, update, delete, no-op) {HAND_EDITED}"
    )


def test_not_a_plan_at_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert apply_error(capsys, '{"apiVersion": "v1", "kind": "List"}') == (
        f'plan.json: not a bgpflat plan: missing "format_version" {HAND_EDITED}'
    )


# --- the model alone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "not a bgpflat plan: expected a JSON object"),
        (
            {"format_version": "1"},
            'format_version "1" is not supported (this bgpflat reads 1) '
            "(fix: make the plan again with `bgpflat plan --out`)",
        ),
        (
            {"format_version": True},
            "format_version true is not supported (this bgpflat reads 1) "
            "(fix: make the plan again with `bgpflat plan --out`)",
        ),
        ({"format_version": 1, "stages": ["peers"]}, 'stages[0]: expected an object, got the string "peers"'),
        ({"format_version": 1, "stages": [{"changes": []}]}, 'stages[0]: missing "name"'),
        (
            {"format_version": 1, "stages": [{"name": "peers", "changes": [None]}]},
            "stages[0].changes[0]: expected an object, got null",
        ),
        (
            {
                "format_version": 1,
                "unchanged": [
                    {"action": "no-op", "api_version": "v1", "kind": "IPPool", "name": "p", "fields": [{"before": 1}]}
                ],
            },
            'unchanged[0].fields[0]: missing "path"',
        ),
        (
            {
                "format_version": 1,
                "unchanged": [
                    {"action": "no-op", "api_version": "v1", "kind": "IPPool", "name": "p", "patch": "spec: {}"}
                ],
            },
            'unchanged[0].patch: expected an object, got the string "spec: {}"',
        ),
        (
            {
                "format_version": 1,
                "unchanged": [{"action": "no-op", "api_version": "v1", "kind": "IPPool", "name": "p", "chained": 1}],
            },
            "unchanged[0].chained: expected true or false, got the number 1",
        ),
        ({"format_version": 1, "prune": "no"}, 'prune: expected true or false, got the string "no"'),
        (
            {"format_version": 1, "observed_versions": {"IPPool/p": 12}},
            'observed_versions["IPPool/p"]: expected a string or null, got the number 12',
        ),
        ({"format_version": 1, "identity": {"context": None}}, 'identity["context"]: expected a string, got null'),
        ({"format_version": 1, "findings": [{"code": "x", "severity": "error"}]}, 'findings[0]: missing "message"'),
        (
            {"format_version": 1, "findings": [{"code": "x", "severity": "fatal", "message": "m"}]},
            'findings[0]: unknown severity "fatal" (bgpflat knows error, warning, info)',
        ),
    ],
)
def test_bad_structure_is_named_by_json_path(data: Any, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        Plan.from_dict(data)
    assert str(caught.value) == message


def _paths(value: Any, at: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found: list[tuple[str | int, ...]] = [at] if at else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*at, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*at, i))
    return found


def test_no_edit_escapes_as_a_python_error(saved_plan: dict[str, Any]) -> None:
    # Delete every entry of a real plan in turn, and give every entry each wrong JSON type: the plan
    # either still loads or is refused as a PlanError/SpecError, never a KeyError/TypeError.
    for path in _paths(saved_plan):
        for replacement in (..., None, 0, "x", [], {}, True):
            data = copy.deepcopy(saved_plan)
            parent: Any = data
            for step in path[:-1]:
                parent = parent[step]
            if replacement is ...:
                del parent[path[-1]]
            else:
                parent[path[-1]] = replacement
            with contextlib.suppress(PlanError, SpecError):
                Plan.from_dict(data)
