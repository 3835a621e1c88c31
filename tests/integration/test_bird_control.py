"""The labs' one way to command a running BIRD (``lab.fabric.bird_control.birdc``), against a real
BIRD 1.6: what it returns is what plain ``birdc`` prints, and a command BIRD refuses is an error
naming it, whatever words BIRD chose (``birdc`` itself exits 0 on them)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgpflat.errors import LabError
from bgpflat.lab.fabric.bird_control import birdc
from bgpflat.lab.processes import find_program


@pytest.fixture
def bird(tmp_path: Path) -> Iterator[Path]:
    daemon = find_program("bird")
    if daemon is None or find_program("birdc") is None:
        pytest.skip("stock BIRD 1.6 (bird, birdc) is not installed")
    (tmp_path / "bird.cfg").write_text("router id 10.9.9.9;\nprotocol device { }\nprotocol static lab { }\n")
    socket = tmp_path / "bird.ctl"
    proc = subprocess.Popen(
        [daemon, "-f", "-c", str(tmp_path / "bird.cfg"), "-s", str(socket)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            assert proc.poll() is None, "bird exited"
            assert time.monotonic() < deadline, "bird did not open its control socket"
            time.sleep(0.05)
        yield socket
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _plain(socket: Path, *command: str) -> str:
    client = find_program("birdc")
    assert client is not None
    return subprocess.run([client, "-s", str(socket), *command], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize(
    "command",
    [("show", "status"), ("show", "protocols", "all"), ("show", "protocols", "lab"), ("configure",)],
)
def test_output_is_what_plain_birdc_prints(bird: Path, command: tuple[str, ...]) -> None:
    ours = birdc(bird, *command)
    plain = _plain(bird, *command)
    if command == ("show", "status"):  # the clock moves between the two calls
        ours, plain = ([line for line in text.splitlines() if "time is" not in line] for text in (ours, plain))
    assert ours == plain
    assert "lab" in birdc(bird, "show", "protocols")


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        (("show", "route", "for", "nonsense"), "IP address expected"),
        (("show", "protocols", "nothere"), "nothere is not a protocol"),
        (("restart", "nothere"), "nothere is not a protocol"),
        (("shw", "status"), "No such command"),
        (("re",), "Ambiguous command"),
        (("show", "route", "10.0.0.0/8", "foo"), "IP address expected"),
    ],
)
def test_a_refused_command_is_an_error_naming_it(bird: Path, command: tuple[str, ...], reply: str) -> None:
    with pytest.raises(LabError) as raised:
        birdc(bird, *command, where=" on node-1")
    assert str(raised.value).startswith(f"birdc {' '.join(command)} on node-1: ")
    assert reply in str(raised.value)


def test_run_time_answers_are_output_not_errors(bird: Path) -> None:
    # 8xxx replies ("network not in table") are answers a caller reads, not refused commands.
    assert "Network not in table" in birdc(bird, "show", "route", "for", "192.0.2.1")
