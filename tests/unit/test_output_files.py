"""Files bgpflat writes where the user said (``plan --out`` here; ``render --output-file``,
``verify --junit``, ``snapshot -o`` and backups go through the same writer).

A symlink stays a symlink and its file gets the plan; a device or a FIFO is written, never replaced
by a regular file; a socket or a directory is refused; a missing directory is an error, never
created; a replaced file keeps its mode. Device nodes are made for the test (as root) in its own
directory: the machine's /dev is never a target a broken writer could turn into a file.
"""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from bgpflat.cli import main

LABS = Path(__file__).resolve().parents[2] / "labs"
SPEC = LABS / "calico-bgp" / "bgpflat.yaml"
CLUSTER = LABS / "calico-bgp" / "cluster.yaml"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="device nodes are made with mknod (root)")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def plan_out(capsys: pytest.CaptureFixture[str], out: Path | str) -> tuple[int, list[str]]:
    code = main(["plan", "-f", str(SPEC), "--snapshot", str(CLUSTER), "--out", str(out)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.startswith("bgpflat: error: ")]


def test_a_symlink_is_followed_and_stays_a_symlink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "plans" / "current.json"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "plan.json"
    link.symlink_to(real)
    assert plan_out(capsys, link) == (0, [])
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert '"format_version"' in real.read_text()


def test_a_replaced_file_keeps_its_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    out.write_text("old\n")
    out.chmod(0o600)
    assert plan_out(capsys, out) == (0, [])
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert '"format_version"' in out.read_text()


def test_a_new_file_is_readable_by_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    assert plan_out(capsys, out) == (0, [])
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_a_missing_directory_is_an_error_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, errors = plan_out(capsys, "nonexistent/p.json")
    assert code == 2
    assert errors == [
        f"bgpflat: error: nonexistent/p.json: cannot write: no such directory {tmp_path / 'nonexistent'} "
        "(fix: create the directory first, or check the path)"
    ]
    assert not (tmp_path / "nonexistent").exists()


def test_a_fifo_is_written_not_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "plan.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    # The reader opens the FIFO as `cat plan.fifo` would; the write blocks until it does.
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert plan_out(capsys, fifo) == (0, [])
    reader.join(timeout=10)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert b'"format_version"' in received[0]


def test_a_socket_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
        code, errors = plan_out(capsys, path)
    assert code == 2
    assert errors == [
        f"bgpflat: error: {path}: cannot write: not a regular file, a device or a FIFO (fix: name a file)"
    ]
    assert stat.S_ISSOCK(path.lstat().st_mode)


def test_a_directory_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, errors = plan_out(capsys, tmp_path)
    assert code == 2
    assert errors == [f"bgpflat: error: {tmp_path}: cannot write: a directory (fix: name a file)"]


@needs_root
def test_a_null_device_is_written_not_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    null = tmp_path / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    link = tmp_path / "to-null"
    link.symlink_to(null)
    assert plan_out(capsys, null) == (0, [])
    assert plan_out(capsys, link) == (0, [])
    assert stat.S_ISCHR(null.lstat().st_mode) and link.is_symlink()


@needs_root
def test_a_full_device_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full = tmp_path / "full"
    os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # what /dev/full is: every write fails
    code, errors = plan_out(capsys, full)
    assert code == 2
    assert errors == [f"bgpflat: error: {full}: cannot write: No space left on device"]
    assert stat.S_ISCHR(full.lstat().st_mode)
