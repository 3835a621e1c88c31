"""The one way bgpflat writes a file the user named (``plan --out``, ``render --output-file``,
``verify --junit``, ``snapshot -o``, backups).

What is at the path decides how:

* nothing, or a regular file (also through a symlink, which stays a symlink): a temporary file in
  the same directory, fsync, rename. Readers see the old file or the whole new one, never a part,
  and a replaced file keeps its mode;
* a character or block device or a FIFO (``/dev/stdout``, ``/dev/null``, a named pipe read by
  another program): written in place; renaming over it would turn ``/dev/full`` into a file;
* anything else (a directory, a socket): refused.

Directories are never created: a typo in ``--out /tmp/plnas/p.json`` is an error, not a new tree.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from bgpflat.errors import SpecError

# A new file's mode: readable by others, as plan files and reports are meant to be shared.
NEW_FILE_MODE = 0o644


def write_text_atomic(path: str | Path, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` to ``path`` (see the module's docstring for what "write" means there).

    ``mode``: the file's mode, whatever it was before (backups: 0600); None keeps the mode of a
    file that is replaced and gives a new one ``NEW_FILE_MODE``.
    """
    return write_chunks_atomic(path, (text,), mode=mode)


def write_chunks_atomic(path: str | Path, chunks: Iterable[str], *, mode: int | None = None) -> Path:
    """Like ``write_text_atomic`` for text produced piece by piece (a snapshot of 50,000 objects
    is streamed, never held whole in memory)."""
    target = Path(path)
    # A symlink is followed to what it names, as `>` in a shell does: the link stays a link.
    real = Path(os.path.realpath(target))
    try:
        found = os.stat(real)
    except FileNotFoundError:
        found = None
    except OSError as exc:
        raise SpecError(f"cannot write: {exc.strerror}", file=str(target)) from None
    if found is not None and not stat.S_ISREG(found.st_mode):
        if stat.S_ISCHR(found.st_mode) or stat.S_ISBLK(found.st_mode) or stat.S_ISFIFO(found.st_mode):
            _write_in_place(real, chunks, shown=target)
            return target
        what = "a directory" if stat.S_ISDIR(found.st_mode) else "not a regular file, a device or a FIFO"
        raise SpecError(f"cannot write: {what}", file=str(target), fix="name a file")
    if not real.parent.is_dir():
        raise SpecError(
            f"cannot write: no such directory {real.parent}",
            file=str(target),
            fix="create the directory first, or check the path",
        )
    if mode is None:
        mode = stat.S_IMODE(found.st_mode) if found is not None else NEW_FILE_MODE
    _replace(real, chunks, mode=mode, shown=target)
    return target


def _write_in_place(real: Path, chunks: Iterable[str], *, shown: Path) -> None:
    try:
        # No O_CREAT: the device or FIFO is there (checked above); no O_TRUNC: devices have no length.
        fd = os.open(real, os.O_WRONLY | os.O_NOCTTY)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(chunk)
    except OSError as exc:
        raise SpecError(f"cannot write: {exc.strerror}", file=str(shown)) from None


def _replace(real: Path, chunks: Iterable[str], *, mode: int, shown: Path) -> None:
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".tmp", dir=real.parent)
    except OSError as exc:
        raise SpecError(f"cannot write: {exc.strerror}", file=str(shown)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, real)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise SpecError(f"cannot write: {exc.strerror}", file=str(shown)) from None
    except BaseException:
        # Whatever stopped the producer (a KubeError mid-read, Ctrl-C): no partial file remains.
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
