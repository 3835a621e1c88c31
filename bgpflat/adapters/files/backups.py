"""Backups of what an apply changes: the objects before it, as a snapshot, then one line per
write as the apply makes it, so that a backup of an apply killed midway still says what was written;
``rollback`` reads them back (``load_backup``).

The record of writes is the one file bgpflat does not replace whole: each write is appended and
fsynced line by line while apply runs (one ``write`` each, so a kill cannot split one; a line cut
off by a power loss is refused on reading, with the fix).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bgpflat.adapters.collector import collector_paused
from bgpflat.adapters.files import Snapshot, read_snapshot, read_text, snapshot_text
from bgpflat.adapters.files.output import write_text_atomic
from bgpflat.errors import PlanError, SpecError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# The last top-level key of a backup: one line per write, appended (and fsynced) as apply makes it,
# so that a backup of an apply killed midway still says what was written.
BACKUP_WRITES_KEY = "writes"


def _backup_candidates(directory: Path, *, context: str, taken_at: dt.datetime) -> Iterator[Path]:
    stamp = taken_at.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    name = _UNSAFE.sub("_", context).strip("_") or "cluster"
    yield directory / f"{stamp}-{name}.yaml"
    counter = 1
    while True:
        counter += 1
        yield directory / f"{stamp}-{name}-{counter}.yaml"


def backup_text(
    *, header: Mapping[str, Any], objects: Iterable[Mapping[str, Any]], writes: Iterable[Mapping[str, Any]] = ()
) -> str:
    """A backup: a snapshot of the objects before the apply, then the writes it made so far."""
    return snapshot_text(header=header, objects=objects) + f"{BACKUP_WRITES_KEY}:\n" + "".join(map(_write_line, writes))


def _write_line(write: Mapping[str, Any]) -> str:
    # One JSON flow mapping per line: valid YAML, and written by a single append.
    return "- " + json.dumps(dict(write), sort_keys=True) + "\n"


def write_backup(
    directory: str | Path,
    *,
    context: str,
    taken_at: dt.datetime,
    header: Mapping[str, Any],
    objects: Iterable[Mapping[str, Any]],
) -> Path:
    """Write the objects an apply is about to change to ``<dir>/<UTC timestamp>-<context>.yaml``
    (mode 0600); the returned path is what ``rollback`` takes. The name is claimed with an exclusive
    create, so two applies in the same second never share (or overwrite) one backup."""
    base = Path(directory)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError(f"cannot write: {exc.strerror}", file=str(base)) from None
    for candidate in _backup_candidates(base, context=context, taken_at=taken_at):
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        except OSError as exc:
            raise SpecError(f"cannot write: {exc.strerror}", file=str(candidate)) from None
        return write_text_atomic(candidate, backup_text(header=header, objects=objects), mode=0o600)
    raise AssertionError("unreachable: the candidates never end")


def append_backup_write(path: str | Path, write: Mapping[str, Any]) -> None:
    """Record one write at the end of a backup and fsync it before apply goes on."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, _write_line(write).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SpecError(f"cannot record a write in the backup: {exc.strerror}", file=str(path)) from None


def _backup_writes(text: str, file: str) -> list[dict[str, Any]]:
    start = text.rfind(f"\n{BACKUP_WRITES_KEY}:\n")
    if start < 0:
        return []  # a backup from before writes were recorded
    writes: list[dict[str, Any]] = []
    for line in text[start:].splitlines()[2:]:
        try:
            write = json.loads(line.removeprefix("- "))
        except json.JSONDecodeError:
            raise SpecError(f"unreadable write record: {line!r}", file=file, path=BACKUP_WRITES_KEY) from None
        if isinstance(write, dict):
            writes.append(write)
    return writes


def load_backup(path: str | Path) -> Snapshot:
    """A backup; its header carries the recorded writes under ``writes`` (``[]`` if none)."""
    text = read_text(path)
    if f"\n{BACKUP_WRITES_KEY}:\n" in text and not text.endswith("\n"):
        # Each record is one append ending in a newline; a kill cannot split one, a power cut can.
        raise SpecError(
            "the last write record is cut off (the machine stopped while apply was recording a write)",
            file=str(path),
            fix="delete the incomplete last line; that write was never confirmed, so check its object by hand",
        )
    # Not checked as a snapshot is: a backup holds what the cluster held, and rollback restores
    # it as it was, even an object the checks of -f would refuse.
    with collector_paused():
        snapshot = read_snapshot(str(path), check=False)
    if not snapshot.header.get("backup"):
        raise PlanError(
            f"{path}: not a bgpflat backup (no 'bgpflat.backup' header); "
            "rollback only takes files that `bgpflat apply` wrote"
        )
    writes = _backup_writes(text, snapshot.file)
    return Snapshot(header={**snapshot.header, BACKUP_WRITES_KEY: writes}, objects=snapshot.objects, file=snapshot.file)
