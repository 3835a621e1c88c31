"""``--metrics-listen`` and ``verify --watch``: bad values are one line naming the flag, before any work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bgpflat.cli import main


@pytest.mark.parametrize(
    ("value", "words"),
    [("9473", "'9473' is not HOST:PORT"), ("tor:9473", "'tor' is not an IP address"), ("1.2.3.4:99999", "not HOST")],
)
def test_bad_metrics_listen(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, words: str) -> None:
    code = main(["bmp", "run", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path), "--metrics-listen", value])
    err = capsys.readouterr().err
    assert code == 2
    assert "--metrics-listen" in err and words in err
    assert not (tmp_path / "events.jsonl").exists()  # refused before the station started


def test_watch_refuses_a_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["verify", "--peer", "10.200.20.254", "--snapshot", "labs/calico-bgp/cluster.yaml", "--watch", "5"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--snapshot does not go with --watch" in err and "follows a live cluster" in err


def test_watch_interval_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "--peer", "10.200.20.254", "--watch", "0"]) == 2
    assert "--watch" in capsys.readouterr().err


def test_without_prometheus_client_the_error_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if it were not installed
    code = main(
        ["bmp", "run", "--listen", "127.0.0.1:0", "--state-dir", str(tmp_path), "--metrics-listen", "127.0.0.1:9473"]
    )
    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err[-1].startswith("bgpflat: error: --metrics-listen: serving metrics needs the prometheus_client package")
    assert "pip install prometheus_client" in err[-1]
