"""Reading manifests/snapshots and writing plans/backups: what a user sees when a file is wrong."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bgpflat.adapters import files
from bgpflat.adapters.files import backups, json_stream
from bgpflat.errors import PlanError, SpecError

LAB = Path(__file__).resolve().parents[2] / "labs" / "calico-bgp"


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: [unclosed\nspec: {}\n")
    with pytest.raises(SpecError) as err:
        files.load_objects(path)
    text = str(err.value)
    assert text.startswith(f"{path}:")
    assert err.value.line in (4, 5)
    assert "invalid YAML" in text


def test_multi_document_keeps_each_objects_line(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "# leading comment\n"
        "apiVersion: projectcalico.org/v3\n"
        "kind: IPPool\n"
        "metadata: {name: a}\n"
        "---\n"
        "---\n"
        "apiVersion: projectcalico.org/v3\n"
        "kind: BGPPeer\n"
        "metadata:\n"
        "  name: b\n"
        "spec:\n"
        "  asNumber: 65200\n"
    )
    docs = files.load_objects(path)
    assert [d.data["kind"] for d in docs] == ["IPPool", "BGPPeer"]  # the empty document is dropped
    assert docs[0].line == 2
    assert docs[1].line == 7
    assert docs[1].line_of(("spec", "asNumber")) == 12
    # A field that does not exist points at its nearest parent.
    assert docs[1].line_of(("spec", "peerIP")) == 11


def test_kind_list_is_expanded_with_lines_relative_to_each_item(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(
        "apiVersion: v1\n"
        "kind: List\n"
        "items:\n"
        "- apiVersion: projectcalico.org/v3\n"
        "  kind: IPPool\n"
        "  metadata: {name: a}\n"
        "- apiVersion: projectcalico.org/v3\n"
        "  kind: IPPool\n"
        "  metadata: {name: b}\n"
        "  spec:\n"
        "    cidr: 10.0.0.0/8\n"
    )
    docs = files.load_objects(path)
    assert [d.data["metadata"]["name"] for d in docs] == ["a", "b"]
    assert docs[1].line == 7
    assert docs[1].line_of(("spec", "cidr")) == 11


def test_json_manifest_error_has_line(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{\n  "kind": "IPPool",\n  "apiVersion": \n}\n')
    with pytest.raises(SpecError) as err:
        files.load_objects(path)
    assert err.value.line == 4
    assert "invalid JSON" in str(err.value)


def test_a_scalar_document_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("just a string\n")
    with pytest.raises(SpecError, match="expected a Kubernetes object"):
        files.load_objects(path)


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        files.load_objects(tmp_path / "nope.yaml")


def test_lab_snapshot_loads() -> None:
    snap = files.load_snapshot(LAB / "cluster.yaml")
    kinds = {o["kind"] for o in snap.objects}
    assert {"IPPool", "Node", "BlockAffinity", "IPAMBlock", "Service", "EndpointSlice"} <= kinds


def test_snapshot_round_trip_keeps_header_and_drops_managed_fields(tmp_path: Path) -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1", "managedFields": [{"manager": "kubelet"}], "labels": {"a": "b"}},
    }
    path = files.write_snapshot(
        tmp_path / "s.yaml", header={"context": "lab", "calicoVersion": "v3.30.7"}, objects=[node]
    )
    snap = files.load_snapshot(path)
    assert snap.header["context"] == "lab"
    assert snap.objects[0]["metadata"] == {"name": "n1", "labels": {"a": "b"}}
    assert "managedFields" not in path.read_text()


def test_snapshot_object_without_kind_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("apiVersion: v1\nkind: List\nitems:\n- metadata: {name: x}\n")
    with pytest.raises(SpecError) as err:
        files.load_snapshot(path)
    assert "object #1 has no apiVersion/kind" in str(err.value)
    assert err.value.line == 4


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    files.write_json(path, {"b": 1, "a": [1, 2]})
    files.write_json(path, {"c": 3})
    assert files.read_json(path) == {"c": 3}
    assert sorted(os.listdir(tmp_path)) == ["plan.json"]


def test_json_is_deterministic(tmp_path: Path) -> None:
    one = files.write_json(tmp_path / "1.json", {"b": 1, "a": {"y": 2, "x": 1}}).read_text()
    two = files.write_json(tmp_path / "2.json", {"a": {"x": 1, "y": 2}, "b": 1}).read_text()
    assert one == two


def test_write_into_unwritable_place_is_a_spec_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SpecError, match="cannot write"):
        files.write_json(blocker / "sub" / "plan.json", {})


def test_backup_paths_are_unique_and_named_after_context(tmp_path: Path) -> None:
    when = dt.datetime(2026, 11, 21, 6, 40, 0, tzinfo=dt.UTC)
    obj = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"}}
    first = backups.write_backup(tmp_path, context="kind/lab:1", taken_at=when, header={"backup": True}, objects=[obj])
    second = backups.write_backup(tmp_path, context="kind/lab:1", taken_at=when, header={"backup": True}, objects=[obj])
    assert first.name == "20261121T064000Z-kind_lab_1.yaml"
    assert second != first
    assert backups.load_backup(second).objects[0]["metadata"]["name"] == "p"


def test_rollback_refuses_a_file_that_is_not_a_backup() -> None:
    with pytest.raises(PlanError, match="not a bgpflat backup"):
        backups.load_backup(LAB / "cluster.yaml")


def test_snapshot_is_written_as_json_one_object_per_line_that_yaml_tools_still_read(tmp_path: Path) -> None:
    objects = [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"n{i}", "labels": {"rack": "r1"}}} for i in range(3)
    ]
    path = files.write_snapshot(tmp_path / "cluster.yaml", header={"context": "lab"}, objects=objects)
    lines = path.read_text().splitlines()
    assert len(lines) == 5
    assert json.loads(lines[2].rstrip(",")) == objects[1]
    snap = files.load_snapshot(path)
    assert snap.header == {"context": "lab"}
    assert list(snap.objects) == objects
    # What README shows for reading a snapshot with PyYAML keeps working.
    [document] = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert document["items"] == objects and document["bgpflat"] == {"context": "lab"}


def test_empty_snapshot_round_trips(tmp_path: Path) -> None:
    path = files.write_snapshot(tmp_path / "s.json", header={"context": "lab"}, objects=[])
    assert files.load_snapshot(path).objects == ()


def test_json_snapshot_object_without_kind_names_its_line(tmp_path: Path) -> None:
    good = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    path = files.write_snapshot(tmp_path / "s.yaml", header={}, objects=[good, {"metadata": {"name": "x"}}])
    with pytest.raises(SpecError) as err:
        files.load_snapshot(path)
    assert "object #2 has no apiVersion/kind" in str(err.value)
    assert err.value.line == 3


def test_yaml_snapshots_written_before_still_load_with_lines(tmp_path: Path) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    path = tmp_path / "old.yaml"
    other = {**node, "metadata": {"name": "n2"}}
    path.write_text(files.snapshot_text(header={"context": "lab"}, objects=[node, other, {"kind": "Node"}]))
    with pytest.raises(SpecError) as err:
        files.load_snapshot(path)
    assert "object #3 has no apiVersion/kind" in str(err.value)
    assert err.value.line == path.read_text().splitlines().index("- kind: Node") + 1


def _exact_items(batches: Iterator[json_stream.Batch]) -> list[object]:
    return [item for _, exact in batches for item in exact()]


def _streamed(path: Path) -> tuple[object, object]:
    return json_stream.read_json_streaming(path, list_key="routes", consume=_exact_items)


@pytest.mark.parametrize(
    "text",
    [
        '{"format_version": 1, "routes": [{"prefix": "10.0.0.0/24"}, {"a": [1, 2.5e3]}], "sessions": [{"peer": "x"}]}',
        '{"sessions": [], "routes": []}',
        '[{"prefix": "10.0.0.0/24"}, 3, "x", null]\n',
        "  {\n\t}  ",
        '{"routes": {"not": "a list"}}',
        '{"other": 1}',
        '{"routes": [1], "routes": [2]}',
        '{"routes": [12345678901234567890]}',
    ],
)
def test_streamed_json_reads_what_read_json_reads(tmp_path: Path, text: str) -> None:
    path = tmp_path / "learned.json"
    path.write_text(text)
    data = files.read_json(path)
    document, items = _streamed(path)
    whole = data if isinstance(data, list) else data.get("routes")
    assert items == (whole if isinstance(whole, list) else None)
    if isinstance(data, dict):
        assert document == {k: ([] if k == "routes" and isinstance(v, list) else v) for k, v in data.items()}


def test_streamed_json_reads_lists_longer_than_its_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_stream, "_CHUNK", 7)  # values and numbers cut at every place
    routes = [{"prefix": f"10.0.{i}.0/24", "path_id": 10**i} for i in range(30)]
    path = tmp_path / "learned.json"
    path.write_text(json.dumps({"routes": routes, "sessions": [{"peer": "10.0.0.1"}]}, indent=2))
    assert _streamed(path) == ({"routes": [], "sessions": [{"peer": "10.0.0.1"}]}, routes)


@pytest.mark.parametrize("chunk", range(1, 14))
def test_streamed_json_reads_numbers_and_words_cut_at_any_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(json_stream, "_CHUNK", chunk)
    routes = [1, 2.5, -0, 1e3, 123456789, True, None, "x, ]", [], {}, 12.75e-2, 7]
    path = tmp_path / "learned.json"
    for text in (json.dumps({"routes": routes}), json.dumps({"routes": routes}, indent=1), json.dumps(routes)):
        path.write_text(text)
        assert _streamed(path)[1] == routes


@pytest.mark.parametrize("text", ['{"routes": [1, 2', '{"routes": [1] x', "", '{"routes": [1,]}', "\ufeff[]"])
def test_streamed_json_errors_are_read_jsons_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "learned.json"
    path.write_text(text)
    with pytest.raises(SpecError) as whole:
        files.read_json(path)
    with pytest.raises(SpecError) as streamed:
        _streamed(path)
    assert str(streamed.value) == str(whole.value)


def test_backups_taken_in_the_same_second_by_concurrent_applies_never_share_a_file(tmp_path: Path) -> None:
    when = dt.datetime(2026, 11, 21, 6, 40, 0, tzinfo=dt.UTC)
    start = threading.Barrier(8)
    paths: dict[int, Path] = {}

    def take(number: int) -> None:
        obj = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": f"p{number}"}}
        start.wait()
        paths[number] = backups.write_backup(
            tmp_path, context="lab", taken_at=when, header={"backup": True}, objects=[obj]
        )

    threads = [threading.Thread(target=take, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths.values())) == 8
    for number, path in paths.items():
        assert backups.load_backup(path).objects[0]["metadata"]["name"] == f"p{number}"
        assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_backup_keeps_the_writes_recorded_so_far_and_names_a_cut_off_record(tmp_path: Path) -> None:
    when = dt.datetime(2026, 11, 21, 6, 40, 0, tzinfo=dt.UTC)
    obj = {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"}}
    path = backups.write_backup(tmp_path, context="lab", taken_at=when, header={"backup": True}, objects=[obj])
    assert backups.load_backup(path).header["writes"] == []
    backups.append_backup_write(path, {"intent": "create", "key": "BGPPeer/x"})
    backups.append_backup_write(path, {"done": "create", "key": "BGPPeer/x", "resourceVersion": "7"})
    backup = backups.load_backup(path)
    assert backup.header["writes"] == [
        {"intent": "create", "key": "BGPPeer/x"},
        {"done": "create", "key": "BGPPeer/x", "resourceVersion": "7"},
    ]
    assert backup.objects[0]["metadata"]["name"] == "p"
    with path.open("a") as handle:
        handle.write('- {"intent": "upd')  # what a power cut in the middle of a record leaves
    with pytest.raises(SpecError, match="last write record is cut off") as refused:
        backups.load_backup(path)
    assert "delete the incomplete last line" in str(refused.value)
