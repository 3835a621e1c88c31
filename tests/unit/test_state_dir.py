"""The peer's (and the BMP station's) state directory as a place others could have touched.

Run as root in a shared place, a symlink planted at ``lock``, ``exabgp.conf``, ``events.jsonl`` or
the snapshot's temporary name would have bgpflat write over the file it names. Each is refused (or
side-stepped: the snapshot's temporary name cannot be guessed) and the victim file is untouched; a
directory of another user, or one every user can write to, is refused before anything is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bgpflat.daemon.state import encode
from bgpflat.errors import PeerError
from bgpflat.peer.state import StateDir

VICTIM_TEXT = "precious\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"
    path.write_text(VICTIM_TEXT)
    return path


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    return StateDir(directory)


def test_a_new_state_directory_is_private(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "new" / "state")
    state.create()
    assert (state.path.stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize("name", ["lock", "events.jsonl", "exabgp.conf"])
def test_a_planted_symlink_is_never_followed(state: StateDir, victim: Path, name: str) -> None:
    (state.path / name).symlink_to(victim)
    with pytest.raises(PeerError, match=r"a symlink is never followed there"):
        if name == "lock":
            state.acquire()
        elif name == "events.jsonl":
            state.log_events([{"event": "x"}])
        else:
            state.write_private(state.exabgp_conf, "neighbor 10.0.0.1 { md5-password secret; }\n")
    state.release()
    assert victim.read_text() == VICTIM_TEXT


def test_the_snapshot_temporary_name_cannot_be_planted(state: StateDir, victim: Path) -> None:
    # The name the snapshot used to be written to first; a link there clobbered the victim.
    (state.path / f".snapshot.json.{os.getpid()}.tmp").symlink_to(victim)
    state.write_snapshot({"format_version": 1, "routes": []})
    assert victim.read_text() == VICTIM_TEXT
    assert state.read_snapshot()["routes"] == []
    assert not [p for p in state.path.iterdir() if p.name.endswith(".tmp") and not p.is_symlink()]


def test_a_directory_every_user_can_write_to_is_refused(state: StateDir) -> None:
    state.path.chmod(0o777)
    with pytest.raises(PeerError, match=r"is writable by every user; fix: chmod o-w"):
        state.acquire()
    assert not state.lock.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a directory to another user needs root")
def test_a_directory_of_another_user_is_refused(state: StateDir) -> None:
    os.chown(state.path, 65534, 65534)  # nobody
    with pytest.raises(PeerError, match=r"belongs to uid 65534, not to this user \(uid 0\)"):
        state.acquire()
    assert not state.lock.exists()


@pytest.mark.parametrize("count", [0, 3, 45_001])
def test_snapshot_text_is_plain_compact_json_at_any_size(state: StateDir, count: int) -> None:
    # Large tables are encoded a slice at a time (the endpoint answers in between); what readers
    # get must not tell the difference.
    routes = [{"prefix": f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}/32", "path_id": i % 3} for i in range(count)]
    data = {"format_version": 1, "sessions": [{"peer": "10.0.0.1", "note": "routes"}], "routes": routes, "at": "z"}
    state.write_snapshot(data)
    assert state.snapshot.read_text() == json.dumps(data, separators=(",", ":")) + "\n"
    assert encode(data) == json.dumps(data, separators=(",", ":"))  # the endpoint's body
    # The peer's records built while they are written, into the place of "routes".
    state.write_snapshot({**data, "routes": []}, routes=iter(routes))
    assert state.snapshot.read_text() == json.dumps(data, separators=(",", ":")) + "\n"
