"""Standard output that goes away: a reader that stops early (``| head``) and a full disk.

Run as a user runs bgpflat, in a real process with a real pipe: a closed pipe is not an error (no
message; the command's own exit code stands, so a ``verify -o json | head`` in CI keeps its
verdict); a stdout that cannot be written is one error line and exit 2. Never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "labs" / "calico-bgp" / "cluster.yaml"
SPEC = ROOT / "labs" / "calico-bgp" / "bgpflat.yaml"  # adds the BGPPeer of the verification peer
PEER = "10.200.20.254"
# What the installed `bgpflat` script runs.
ENTRY_POINT = "import sys; from bgpflat.cli import main; sys.exit(main())"


def bgpflat(*argv: str, stdout: int | object, cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(cwd / "no-kubeconfig"), "PYTHONPATH": str(ROOT)}
    env.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY_POINT, *argv], stdout=stdout, stderr=subprocess.PIPE, cwd=cwd, env=env
    )


def closed_early(*argv: str, cwd: Path) -> tuple[int, str]:
    """Run with stdout into a pipe whose reader has gone (as `| head -c0`, or head done reading)."""
    proc = bgpflat(*argv, stdout=subprocess.PIPE, cwd=cwd)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), err


def test_a_closed_pipe_ends_json_output_quietly(tmp_path: Path) -> None:
    code, err = closed_early(
        "routes", "expected", "--peer", PEER, "--snapshot", str(CLUSTER), "-f", str(SPEC), "-o", "json", cwd=tmp_path
    )
    assert (code, err) == (0, "")


def test_a_closed_pipe_ends_a_listing_quietly(tmp_path: Path) -> None:
    assert closed_early("lab", "conformance", "--list", cwd=tmp_path) == (0, "")


def test_head_reads_part_and_the_verdict_stands(tmp_path: Path) -> None:
    # A learned table with one route too few: verify's mismatch (exit 1) survives `| head -c 200`.
    full = tmp_path / "expected.json"
    with full.open("wb") as out:
        done = bgpflat(
            "routes",
            "expected",
            "--peer",
            PEER,
            "--snapshot",
            str(CLUSTER),
            "-f",
            str(SPEC),
            "-o",
            "json",
            stdout=out,
            cwd=tmp_path,
        )
        assert done.wait(timeout=120) == 0
    routes = json.loads(full.read_text())["routes"]
    learned = tmp_path / "learned.json"
    learned.write_text(json.dumps({"routes": routes[1:]}))
    argv = (
        "verify",
        "--peer",
        PEER,
        "--snapshot",
        str(CLUSTER),
        "-f",
        str(SPEC),
        "--learned",
        str(learned),
        "-o",
        "json",
    )
    proc = bgpflat(*argv, stdout=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(200)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert head.startswith(b"{") and "Traceback" not in err and "routes do not match" in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize(
    "argv", [("lab", "conformance", "--list"), ("routes", "expected", "--peer", PEER, "-o", "json")]
)
def test_a_full_disk_on_stdout_is_one_error_line(tmp_path: Path, argv: tuple[str, ...]) -> None:
    if "routes" in argv:
        argv = (*argv, "--snapshot", str(CLUSTER), "-f", str(SPEC))
    # /dev/full only as where stdout points: opened for writing, never a path bgpflat writes to.
    with open("/dev/full", "wb") as full:
        proc = bgpflat(*argv, stdout=full, cwd=tmp_path)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 2
    assert err == "bgpflat: error: cannot write to standard output: No space left on device\n"
