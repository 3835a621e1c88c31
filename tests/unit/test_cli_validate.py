"""``bgpflat validate``: what a CI pipeline sees for good, bad and unrelated manifests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import bgpflat
from bgpflat.cli import main

MANIFESTS = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pods
spec:
  cidr: 10.244.0.0/16
  ipipMode: Always
  vxlanMode: Always
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 10.0.0.1
"""

GOOD = """\
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: only-office
spec:
  exportV4:
    - action: Accept
      cidr: 10.244.0.0/16
      matchOperator: In
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("calico.yaml").write_text(MANIFESTS)
    Path("good.yaml").write_text(GOOD)


def test_errors_name_file_line_path_and_fix_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", "calico.yaml", "--calico-version", "v3.31.0"]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "calico.yaml:8: spec.vxlanMode: IPIP and VXLAN cannot both be enabled on one IPPool "
        "(fix: set ipipMode or vxlanMode to Never)",
        "calico.yaml:19: warning: spec.asNumber: a BGPPeer with a peerIP but no asNumber is taken to be in AS 0, "
        "which no session accepts (fix: set the peer's AS number)",
    ]
    assert err.splitlines() == [
        "calico.yaml:10: skipped Deployment/web: Deployment is not a Calico BGP kind",
        "2 Calico document(s) checked with Calico v3.31 validation rules: 1 invalid, 1 warning(s), 1 skipped",
    ]


def test_valid_files_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", "good.yaml"]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "1 Calico document(s) checked with Calico v3.32 validation rules" in err
    assert "all valid" in err


def test_json_report_for_pipelines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", "calico.yaml", "-f", "good.yaml", "-o", "json", "--calico-version", "3.31"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert report["rules"] == "Calico v3.31 validation rules"
    assert [(d["kind"], d["status"]) for d in report["documents"]] == [
        ("IPPool", "invalid"),
        ("Deployment", "skipped"),
        ("BGPPeer", "valid"),
        ("BGPFilter", "valid"),
    ]
    assert report["documents"][0]["errors"] == [
        {
            "line": 8,
            "path": "spec.vxlanMode",
            "message": "IPIP and VXLAN cannot both be enabled on one IPPool",
            "fix": "set ipipMode or vxlanMode to Never",
        }
    ]
    assert report["documents"][2]["warnings"][0]["path"] == "spec.asNumber"


def test_a_release_without_the_field_refuses_it(capsys: pytest.CaptureFixture[str]) -> None:
    Path("peer.yaml").write_text(
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\n"
        "spec:\n  peerIP: 10.0.0.1\n  asNumber: 65000\n  keepaliveTime: 30s\n"
    )
    assert main(["validate", "-f", "peer.yaml", "--calico-version", "v3.32.1"]) == 0
    assert main(["validate", "-f", "peer.yaml", "--calico-version", "v3.31.0"]) == 2
    assert capsys.readouterr().out.splitlines()[-1] == (
        "peer.yaml:8: spec.keepaliveTime: spec.keepaliveTime does not exist in Calico v3.31 (added in Calico v3.32) "
        "(fix: remove spec.keepaliveTime, or give the Calico version the cluster runs)"
    )


def test_a_bad_version_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-f", "good.yaml", "--calico-version", "latest"]) == 2
    assert capsys.readouterr().err == (
        "bgpflat: error: --calico-version: 'latest' is not a Calico version (fix: use e.g. v3.31.0 or 3.31)\n"
    )


def test_the_cli_and_the_library_give_the_same_verdict() -> None:
    from bgpflat.adapters.files import load_objects

    for doc in load_objects("calico.yaml"):
        if doc.data["kind"] == "IPPool":
            with pytest.raises(bgpflat.ValidationError, match="IPIP and VXLAN cannot both be enabled"):
                bgpflat.validate_manifest(doc.data, calico_version="v3.31.0")
        elif doc.data["kind"] == "BGPPeer":
            bgpflat.validate_manifest(doc.data, calico_version="v3.31.0")
