"""``bgpflat validate -f FILE…``: Calico's own rules on manifests, for CI pipelines.

Every IPPool, BGPPeer, BGPConfiguration and BGPFilter document is checked as
``bgpflat.validate_manifest`` checks it (the rules of one Calico release); other kinds are skipped
with a note. Errors print as ``file:line: path: message (fix: …)``; bgpflat's warnings about
objects Calico accepts print too but never fail the run. Exit 0 when every checked document is
valid, 2 when one is not (or a file cannot be read).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from bgpflat.cli.output import EXIT_ERROR, EXIT_OK, info
from bgpflat.errors import SpecError

CHECKED_KINDS = ("IPPool", "BGPPeer", "BGPConfiguration", "BGPFilter")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "validate",
        help="check Calico IPPool/BGPPeer/BGPConfiguration/BGPFilter manifests with Calico's own rules",
        description=(
            "Check every Calico BGP-kind document in the files with the rules of Calico's validator "
            "(of --calico-version, else the newest release bgpflat knows). Other kinds are skipped. "
            "Exit 0 when all are valid, 2 when one is not."
        ),
    )
    parser.add_argument(
        "-f",
        "--file",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="manifest file; - reads stdin, a directory its *.yaml/*.yml/*.json (repeatable)",
    )
    parser.add_argument("--calico-version", metavar="V", help="the Calico release whose rules apply, e.g. v3.31.0")
    parser.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="one line per problem (default), or JSON"
    )
    parser.set_defaults(func=_cmd_validate)


@dataclass
class _Result:
    file: str
    line: int | None
    kind: str
    name: str
    status: str  # valid | invalid | skipped
    errors: list[SpecError] = field(default_factory=list)
    warnings: list[tuple[int | None, str, str, str]] = field(default_factory=list)  # line, path, message, fix
    note: str = ""

    def where(self, line: int | None = None) -> str:
        line = self.line if line is None else line
        return self.file if line is None else f"{self.file}:{line}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "errors": [{"line": e.line, "path": e.path, "message": e.message, "fix": e.fix} for e in self.errors],
            "warnings": [{"line": w[0], "path": w[1], "message": w[2], "fix": w[3]} for w in self.warnings],
            **({"note": self.note} if self.note else {}),
        }


def _cmd_validate(args: argparse.Namespace) -> int:
    from bgpflat.adapters.files import STDIN, STDIN_NAME, input_paths, load_objects
    from bgpflat.core.calico import check_manifest, parse_path, release_for

    release = release_for(args.calico_version, source="--calico-version")
    results: list[_Result] = []
    for path in input_paths(args.files):
        file = STDIN_NAME if path == STDIN else path
        for doc in load_objects(path):
            data = doc.data
            kind = str(data.get("kind") or "")
            metadata = data.get("metadata")
            name = str(metadata.get("name") or "") if isinstance(metadata, dict) else ""
            result = _Result(file=file, line=doc.line, kind=kind or "?", name=name, status="valid")
            results.append(result)
            if kind not in CHECKED_KINDS:
                result.status = "skipped"
                result.note = f"{kind or 'a document without kind'} is not a Calico BGP kind"
                continue
            try:
                _, notes = check_manifest(data, release=release)
            except SpecError as exc:
                line = doc.line_of(parse_path(exc.path)) if exc.path else doc.line
                result.status = "invalid"
                result.errors.append(SpecError(exc.message, file=file, line=line, path=exc.path, fix=exc.fix))
                continue
            for note in notes:
                result.warnings.append((doc.line_of(parse_path(note.path)), note.path, note.message, note.fix))
    invalid = sum(r.status == "invalid" for r in results)
    if args.output == "json":
        report = {
            "rules": release.describe(),
            "rulesRelease": release.label,
            "valid": invalid == 0,
            "documents": [r.to_dict() for r in results],
        }
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(results, release.describe())
    return EXIT_ERROR if invalid else EXIT_OK


def _print_text(results: list[_Result], rules: str) -> None:
    for result in results:
        for error in result.errors:
            print(str(error))
        for line, path, message, fix in result.warnings:
            print(f"{result.where(line)}: warning: {path}: {message} (fix: {fix})")
        if result.status == "skipped":
            info(f"{result.where()}: skipped {result.kind}/{result.name}: {result.note}")
    checked = [r for r in results if r.status != "skipped"]
    invalid = sum(r.status == "invalid" for r in checked)
    warned = sum(len(r.warnings) for r in checked)
    skipped = len(results) - len(checked)
    verdict = "all valid" if not invalid else f"{invalid} invalid"
    info(f"{len(checked)} Calico document(s) checked with {rules}: {verdict}, {warned} warning(s), {skipped} skipped")
