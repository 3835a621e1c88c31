"""Reading and writing bgpflat's files: manifests, flat specs, snapshots, plans and backups.

Everything here turns YAML/JSON/OS errors into ``SpecError``/``PlanError`` that name the file and,
when the parser knows it, the line. Files are written by ``output`` (atomic replacement of regular
files, devices and FIFOs written in place): a crash or a full disk never leaves half a plan or half
a backup behind, which matters because a backup is what ``rollback`` trusts. Backups themselves,
and the one exception to whole-file writes (their record of writes, appended while apply runs), are
in ``backups``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bgpflat.adapters.collector import collector_paused
from bgpflat.adapters.files.bounds import (
    check_json_depth,
    check_yaml_node,
    huge_number,
    is_huge_number,
    json_error,
    too_deep,
)
from bgpflat.adapters.files.output import write_chunks_atomic as write_chunks_atomic
from bgpflat.adapters.files.output import write_text_atomic as write_text_atomic
from bgpflat.core.calico.models import format_path, parse_path
from bgpflat.core.state.snapshot import ObjectKey, check_snapshot_object, object_key
from bgpflat.errors import SpecError

# The C loader/dumper are an order of magnitude faster on snapshots of thousands of objects.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

NodePath = tuple[str | int, ...]
SNAPSHOT_HEADER_KEY = "bgpflat"
# Top-level keys of a flat spec: a snapshot that has them is a bgpflat.yaml given by mistake.
_FLAT_SPEC_KEYS = frozenset({"version", "cluster", "bgp", "pools", "peers", "services", "networks"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Document:
    """One YAML/JSON document (or one item of a ``kind: List``) and where it came from.

    ``lines`` maps a path inside ``data`` (``("spec", "peers", 2, "asNumber")``) to its 1-based
    line, so that an error found later, far from the parser, can still point at the line.
    """

    data: Any
    file: str
    line: int | None = None
    lines: Mapping[NodePath, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of ``path`` or of its nearest ancestor that has one."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.line


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A cluster snapshot: the objects as the API serves them, and the ``bgpflat:`` header."""

    header: Mapping[str, Any]
    objects: tuple[dict[str, Any], ...]
    file: str


def read_text(path: str | Path) -> str:
    """A UTF-8 file's text; any failure is one ``SpecError`` naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("no such file", file=str(path), fix="check the path") from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a file", file=str(path), fix="name the file inside it") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror}", file=str(path)) from None


def _yaml_error(exc: yaml.YAMLError, file: str, text: str = "") -> SpecError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    fix = "check indentation, colons and quoting on that line"
    if mark is not None:
        lines = text.splitlines()
        line = lines[mark.line] if mark.line < len(lines) else ""
        # PyYAML's own words for a tab ("cannot start any token") do not say what is wrong.
        if "\t" in line[: mark.column + 1]:
            message = "invalid YAML: a tab character; YAML indents with spaces only"
            fix = "replace the tabs on that line with spaces"
    return SpecError(message, file=file, line=mark.line + 1 if mark is not None else None, fix=fix)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _line_map(
    node: yaml.Node, prefix: NodePath, out: dict[NodePath, int], depth: int | None, file: str = "<input>"
) -> None:
    if depth is not None and len(prefix) >= depth:
        return
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                # PyYAML keeps the last of two equal keys without a word; the first one, often the
                # one a person edits, would silently not count.
                if key_node.value in seen and key_node.tag != _MERGE_TAG:
                    raise SpecError(
                        f"duplicate key {key_node.value!r} (first at line {seen[key_node.value]})",
                        file=file,
                        line=line,
                        path=format_path((*prefix, key_node.value)),
                        fix="keep one of them",
                    )
                seen[key_node.value] = line
                # The key's line, not the value's: for a block mapping the value starts one line
                # below "spec:", and "spec:" is where a person looks.
                out[(*prefix, key_node.value)] = line
                _line_map(value_node, (*prefix, key_node.value), out, depth, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            out[(*prefix, index)] = item.start_mark.line + 1
            _line_map(item, (*prefix, index), out, depth, file)


def _looks_like_json(text: str, path: str) -> bool:
    return path.endswith(".json") or text.lstrip()[:1] in ("{", "[")


def _json_list_lines(text: str, data: Any) -> dict[NodePath, int]:
    """Item lines of a ``kind: List`` in the shape ``snapshot_chunks`` writes (one item per line
    between the header line and the closing one); nothing for any other JSON layout."""
    items = data.get("items") if isinstance(data, Mapping) else None
    if not isinstance(items, list) or not items or not text.startswith(_JSON_SNAPSHOT_START):
        return {}
    if text.count("\n") != len(items) + 2:
        return {}
    return {("items", index): index + 2 for index in range(len(items))}


def parse_documents(text: str, *, file: str, line_depth: int | None = None) -> tuple[Document, ...]:
    """Parse YAML (multi-document) or JSON text into documents; empty documents are dropped.

    ``line_depth`` limits how deep line numbers are recorded (None: everywhere); snapshots of
    thousands of objects only need the line of each object.
    """
    if _looks_like_json(text, file):
        try:
            with collector_paused():
                data = json.loads(text)
        except json.JSONDecodeError as exc:
            if file.endswith(".json"):
                raise SpecError(f"invalid JSON: {exc.msg}", file=file, line=exc.lineno) from None
            # A YAML flow mapping also starts with "{"; let the YAML parser have its say.
        except (ValueError, RecursionError) as exc:
            raise json_error(exc, file) from None
        else:
            check_json_depth(data, file)
            return (Document(data=data, file=file, line=1, lines=_json_list_lines(text, data)),)
    loader = _Loader(text)
    try:
        with collector_paused():
            documents = _parse_yaml(loader, file, line_depth)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, file, text) from None
    except RecursionError:
        # The pure-Python composer (without libyaml) recurses per level, before any bound is checked.
        raise too_deep(file) from None
    finally:
        loader.dispose()
    return tuple(documents)


def _parse_yaml(loader: Any, file: str, line_depth: int | None) -> list[Document]:
    documents: list[Document] = []
    while loader.check_node():
        node = loader.get_node()
        if node is None:
            continue
        check_yaml_node(node, file)
        lines: dict[NodePath, int] = {}
        _line_map(node, (), lines, line_depth, file)
        try:
            data = loader.construct_document(node)
        except ValueError as exc:
            # A value PyYAML resolves but cannot build: an integer of thousands of digits, a date
            # like 2024-13-45.
            line = node.start_mark.line + 1
            raise (
                huge_number(file, line)
                if is_huge_number(exc)
                else SpecError(f"invalid value: {exc}", file=file, line=line)
            ) from None
        if data is None:
            continue
        documents.append(Document(data=data, file=file, line=node.start_mark.line + 1, lines=lines))
    return documents


def load_documents(path: str | Path, *, line_depth: int | None = None) -> tuple[Document, ...]:
    """Read a YAML/JSON file into its documents; bad YAML is a ``SpecError`` with file and line.
    ``-`` reads standard input (named ``<stdin>`` in messages), as kubectl's ``-f -`` does."""
    if str(path) == STDIN:
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError as exc:
            raise SpecError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=STDIN_NAME) from None
        return parse_documents(text, file=STDIN_NAME, line_depth=line_depth)
    return parse_documents(read_text(path), file=str(path), line_depth=line_depth)


def _item_lines(lines: Mapping[NodePath, int]) -> dict[int, dict[NodePath, int]]:
    """The line map of a ``kind: List`` split per item (``("items", 3, "spec")`` -> item 3's
    ``("spec",)``), in one pass: rebasing item by item would rescan the whole map for each."""
    out: dict[int, dict[NodePath, int]] = {}
    for key, line in lines.items():
        if len(key) >= 2 and key[0] == "items" and isinstance(key[1], int):
            out.setdefault(key[1], {})[key[2:]] = line
    return out


def split_objects(documents: Iterable[Document]) -> tuple[Document, ...]:
    """Flatten documents into one Document per Kubernetes object, expanding ``kind: List``.

    Each object keeps its own line numbers; a top-level ``bgpflat:`` snapshot header is skipped.
    """
    objects: list[Document] = []
    for doc in documents:
        data = doc.data
        if isinstance(data, Mapping) and data.get("kind") == "List" and "items" in data:
            items = data.get("items") or []
            if not isinstance(items, list):
                raise SpecError(
                    "'items' of a kind: List must be a list",
                    file=doc.file,
                    line=doc.line_of(("items",)),
                    path="items",
                )
            per_item = _item_lines(doc.lines)
            for index, item in enumerate(items):
                lines = per_item.get(index, {})
                objects.append(Document(data=item, file=doc.file, line=doc.line_of(("items", index)), lines=lines))
        else:
            objects.append(doc)
    for obj in objects:
        if not isinstance(obj.data, Mapping):
            raise SpecError(
                f"expected a Kubernetes object (a mapping), got {type(obj.data).__name__}",
                file=obj.file,
                line=obj.line,
            )
    return tuple(objects)


def load_objects(path: str | Path) -> tuple[Document, ...]:
    """Read Kubernetes objects from a manifest file (multi-document YAML, JSON, or ``kind: List``)."""
    return split_objects(load_documents(path))


def load_snapshot(path: str | Path) -> Snapshot:
    """Read a cluster snapshot: object dicts as the API serves them, and its ``bgpflat:`` header.

    Each object gets the checks of ``-f`` (``core.state.snapshot``), with its file and line.
    """
    with collector_paused():
        return read_snapshot(str(path), check=True)


def read_snapshot(file: str, *, check: bool) -> Snapshot:
    """``load_snapshot`` (the collector left as the caller has it); ``check=False`` takes every
    object as it is (a backup holds what the cluster held, even what ``-f`` would refuse)."""
    documents = load_documents(file, line_depth=2)
    if not documents:
        # An empty cluster still gives a header and "items: []"; an empty file is a mistake.
        raise SpecError(
            "empty file, not a snapshot", file=file, fix="make one with `bgpflat snapshot --output-file FILE`"
        )
    header: Mapping[str, Any] = {}
    for doc in documents:
        if isinstance(doc.data, Mapping) and isinstance(doc.data.get(SNAPSHOT_HEADER_KEY), Mapping):
            header = doc.data[SNAPSHOT_HEADER_KEY]
            break
    objects: list[dict[str, Any]] = []
    seen: dict[ObjectKey, int | None] = {}
    for index, obj in enumerate(split_objects(documents)):
        data = obj.data
        if index == 0 and data and set(data) <= _FLAT_SPEC_KEYS:
            raise SpecError(
                "this is a flat spec, not a snapshot",
                file=file,
                line=obj.line,
                fix="pass the spec with -f; make a snapshot with `bgpflat snapshot --output-file FILE`",
            )
        if not data.get("kind") or not data.get("apiVersion"):
            raise SpecError(
                f"object #{index + 1} has no apiVersion/kind",
                file=file,
                line=obj.line,
                fix="a snapshot holds Kubernetes objects as `kubectl get -o yaml` prints them",
            )
        if check:
            _check_object(obj, seen)
        objects.append(dict(data))
    return Snapshot(header=dict(header), objects=tuple(objects), file=file)


def _check_object(obj: Document, seen: dict[ObjectKey, int | None]) -> None:
    """The checks of ``-f`` for one object of a snapshot, with the file and line of the object."""
    try:
        check_snapshot_object(obj.data)
    except SpecError as exc:
        line = obj.line_of(parse_path(exc.path)) if exc.path else obj.line
        _, kind, _, name = object_key(obj.data)
        message = f"{kind}/{name}: {exc.message}" if exc.path != "kind" else exc.message
        raise SpecError(message, file=obj.file, line=line, path=exc.path, fix=exc.fix) from None
    key = object_key(obj.data)
    if key in seen:
        first = seen[key]
        raise SpecError(
            f"{key[1]} {key[3]!r} is given twice" + (f" (first at line {first})" if first is not None else ""),
            file=obj.file,
            line=obj.line,
            fix="keep one of them",
        )
    seen[key] = obj.line


def dump_yaml(data: Any) -> str:
    """YAML text that keeps key order (apiVersion, kind, metadata, spec reads like kubectl)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def dump_yaml_documents(documents: Iterable[Any]) -> str:
    return yaml.dump_all(list(documents), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def write_json(path: str | Path, data: Any) -> Path:
    """Deterministic, human-diffable JSON (sorted keys, two-space indent), written atomically."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path) -> Any:
    """A JSON file (saved plans, learned routes): bad JSON is a ``SpecError`` with file and line."""
    return parse_json(read_text(path), file=str(path))


def parse_json(text: str, *, file: str) -> Any:
    """JSON text within the bounds of every input (``bounds``), or a ``SpecError`` naming ``file``."""
    if not text.strip():
        raise SpecError("empty file, expected JSON", file=file)
    try:
        with collector_paused():
            data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"invalid JSON: {exc.msg}", file=file, line=exc.lineno) from None
    except (ValueError, RecursionError) as exc:
        raise json_error(exc, file) from None
    check_json_depth(data, file)
    return data


_JSON_SNAPSHOT_START = '{"bgpflat": '


def snapshot_chunks(*, header: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """A snapshot as JSON text, piece by piece: ``kind: List`` with the ``bgpflat:`` header first,
    then one object per line.

    JSON because a snapshot of thousands of nodes must load in a second or two, and JSON loads
    forty times faster than the same objects as YAML; it is YAML as well (flow style), so YAML
    tools still read it. One object per line keeps ``file:line`` in errors and diffs readable.
    """
    head = {SNAPSHOT_HEADER_KEY: dict(header), "apiVersion": "v1", "kind": "List"}
    yield json.dumps(head)[:-1] + ', "items": [\n'
    separator = ""
    for obj in objects:
        yield separator + json.dumps(_without_managed_fields(obj))
        separator = ",\n"
    yield ("\n" if separator else "") + "]}\n"


def snapshot_yaml_chunks(*, header: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """A snapshot as YAML text, piece by piece: ``kind: List`` with the ``bgpflat:`` header first."""
    yield dump_yaml({SNAPSHOT_HEADER_KEY: dict(header), "apiVersion": "v1", "kind": "List"})
    empty = True
    for obj in objects:
        if empty:
            yield "items:\n"
            empty = False
        yield dump_yaml([_without_managed_fields(obj)])
    if empty:
        yield "items: []\n"


def snapshot_text(*, header: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]) -> str:
    """A snapshot as YAML: ``kind: List`` with the ``bgpflat:`` header first (backups: small, and
    read by people before a rollback)."""
    return "".join(snapshot_yaml_chunks(header=header, objects=objects))


def _without_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    # managedFields are bulky, churn on every write and tell plan nothing.
    out = dict(obj)
    metadata = out.get("metadata")
    if isinstance(metadata, Mapping) and "managedFields" in metadata:
        out["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
    return out


def write_snapshot(path: str | Path, *, header: Mapping[str, Any], objects: Iterable[Mapping[str, Any]]) -> Path:
    """Stream a snapshot to ``path`` atomically; ``objects`` may be a generator reading the cluster."""
    return write_chunks_atomic(path, snapshot_chunks(header=header, objects=objects))


STDIN = "-"
STDIN_NAME = "<stdin>"
INPUT_SUFFIXES = (".yaml", ".yml", ".json")


def input_paths(paths: Sequence[str | Path]) -> list[str]:
    """``-f`` as kubectl takes it: files as named, ``-`` for standard input, and for a directory its
    *.yaml/*.yml/*.json files, sorted (not recursive); a directory with none of them is an error."""
    out: list[str] = []
    for raw in paths:
        path = Path(raw)
        if str(raw) != STDIN and path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix in INPUT_SUFFIXES and p.is_file())
            if not found:
                raise SpecError(
                    "is a directory with no *.yaml, *.yml or *.json file in it",
                    file=str(raw),
                    fix="name the files, or put the manifests in that directory",
                )
            out.extend(found)
        else:
            out.append(str(raw))
    return out
