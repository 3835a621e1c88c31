"""What a user running the commands notices: exit codes of commands that find nothing to compare or
that report a state, notes kept in JSON, a stopped peer shown as stopped.

Each case runs ``main`` as a user would type it, on the built-in scenario D snapshot.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from rich.console import Console

from bgpflat.cli import main

LABS = Path(__file__).resolve().parents[2] / "labs"
SPEC = LABS / "calico-bgp" / "bgpflat.yaml"
CLUSTER = LABS / "calico-bgp" / "cluster.yaml"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


# --- nothing to compare: exit 2, naming the flag that helps ---------------------------------------


def test_routes_expected_for_a_peer_no_node_peers_with_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "routes", "expected", "--peer", "10.9.9.9", "--snapshot", str(CLUSTER))
    assert code == 2
    assert out == ""  # no empty tables
    assert "bgpflat: error: no Calico node peers with 10.9.9.9" in err and "--peer-as" in err
    # verify says it the same way
    learned = Path("learned.json")
    learned.write_text('{"routes": []}')
    code, _, err = run(
        capsys, "verify", "--peer", "10.9.9.9", "--snapshot", str(CLUSTER), "--learned", str(learned), "-o", "json"
    )
    assert code == 2 and "--peer-as" in err
    # With --peer-as the routes of the peer about to be created are predicted: exit 0.
    code, out, _ = run(
        capsys, "routes", "expected", "--peer", "10.9.9.9", "--peer-as", "65001", "--snapshot", str(CLUSTER)
    )
    assert code == 0 and "10.233.65.0/24" in out


def test_verify_json_keeps_the_notes_the_table_shows(capsys: pytest.CaptureFixture[str]) -> None:
    learned = Path("learned.json")
    learned.write_text('{"routes": []}')
    argv = ["verify", "--peer", "10.9.9.9", "--snapshot", str(CLUSTER), "--learned", str(learned)]
    _, table, _ = run(capsys, "--color", "never", *argv)
    _, out, _ = run(capsys, *argv, "-o", "json")
    note = "no BGPPeer has peerIP 10.9.9.9: no node peers with it"
    assert f"note: {note}" in table
    assert json.loads(out)["notes"] == [note]


# --- status commands: exit 0 when they report ----------------------------------------------------


def test_status_commands_exit_0_when_they_report_a_state(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "lab", "control-plane", "status", "--state-dir", str(tmp_path / "plane"))
    assert (code, out.split(" (")[0]) == (0, "not running")
    code, out, _ = run(capsys, "lab", "status")
    assert (code, out) == (0, "no labs recorded\n")


def test_a_stopped_peer_is_shown_stopped_not_connecting() -> None:
    from bgpflat.views.peer import render_status

    long_ago = time.time() - 3600
    snapshot = {
        "source": "snapshot",
        "running": False,
        "written_at": "2026-12-01T10:00:00Z",
        "sessions": [{"peer": "10.200.20.103", "peer_as": 64512, "state": "connecting", "since": long_ago}],
    }
    out = io.StringIO()
    Console(file=out, width=200, no_color=True).print(render_status(snapshot, live=False))
    row = next(line for line in out.getvalue().splitlines() if "10.200.20.103" in line)
    assert "stopped" in row and "was connecting at 2026-12-01T10:00:00Z" in row
    assert "1:00:00" not in row  # no uptime growing after the peer stopped


# --- plan --------------------------------------------------------------------------------------


def test_plan_of_a_snapshot_saved_for_review_only_says_so_after_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "-f", str(SPEC), "--snapshot", str(CLUSTER), "--out", "plan.json")
    assert code == 0
    assert "apply it with" not in err
    assert err.splitlines()[-1].startswith("Plan saved to plan.json for review only:")
    assert json.loads(Path("plan.json").read_text())["review_only"] is True
    # every write is counted: BGPConfiguration default is created in stage 1 and patched in stage 3
    assert out.rstrip().endswith("Plan: 2 to add, 1 to change, 0 to delete (4 writes).")
    # findings are wrapped, the fix indented under its finding
    findings = out[out.index("Findings:") :].splitlines()[1:-2]
    assert findings and all(len(line) <= 100 for line in findings)
    assert "      fix: set nextHopMode: Keep (Calico 3.31+) or keepOriginalNextHop: true on the peer, or attach" in out
    assert "           a BGPFilter that rejects source RemotePeers" in out


def test_plan_detailed_exitcode_reaches_0_without_a_bgpconfiguration(capsys: pytest.CaptureFixture[str]) -> None:
    # The snapshot has no BGPConfiguration; a spec of only the pool as it is asks for none.
    Path("pool.yaml").write_text(
        "version: 1\npools:\n  - {name: default-pool, cidr: 10.233.64.0/18, blockSize: 24, encapsulation: IPIP,"
        " natOutgoing: true, nodeSelector: all()}\n"
    )
    code, out, _ = run(capsys, "plan", "-f", "pool.yaml", "--snapshot", str(CLUSTER), "--detailed-exitcode")
    assert "BGPConfiguration" not in out
    assert code == 0, out


# --- global flags, usage errors, colour ------------------------------------------------------------


def test_global_flags_work_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    from bgpflat.cli import build_parser

    args = build_parser().parse_args(["routes", "expected", "--peer", "10.0.0.1", "--debug", "--color", "never"])
    assert (args.debug, args.color) == (True, "never")
    args = build_parser().parse_args(["--debug", "--color", "always", "routes", "expected", "--peer", "10.0.0.1"])
    assert (args.debug, args.color) == (True, "always")  # not reset by the sub-command's parser
    # --debug after the sub-command really shows the traceback
    from bgpflat.errors import BgpflatError

    with pytest.raises(BgpflatError, match=r"missing\.yaml: no such file"):
        main(["routes", "expected", "--peer", "10.0.0.1", "--snapshot", "missing.yaml", "--debug"])


def test_a_usage_error_is_one_error_line_and_the_commands_usage_on_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["routes", "expected", "--snapshot", str(CLUSTER)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "bgpflat: error: bgpflat routes expected: the following arguments are required: --peer",
        "usage: bgpflat routes expected --peer IP [options]  (see: bgpflat routes expected --help)",
    ]


def test_color_always_wins_over_no_color(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    argv = ["plan", "-f", str(SPEC), "--snapshot", str(CLUSTER)]
    _, out, _ = run(capsys, *argv, "--color", "always")
    assert "\x1b[" in out
    _, out, _ = run(capsys, *argv)
    assert "\x1b[" not in out


# --- kubectl habits: -f - and -f DIR, -o is the format, --context with --snapshot ------------------


def test_filename_dash_reads_stdin_and_a_directory_reads_its_manifests(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, from_file, _ = run(capsys, "plan", "-f", str(SPEC), "--snapshot", str(CLUSTER), "-o", "json")
    monkeypatch.setattr("sys.stdin", io.StringIO(SPEC.read_text()))
    code, from_stdin, _ = run(capsys, "plan", "-f", "-", "--snapshot", str(CLUSTER), "-o", "json")
    assert code == 0 and json.loads(from_stdin)["stages"] == json.loads(from_file)["stages"]
    # a directory: its *.yaml/*.yml/*.json, sorted; other files are not manifests
    Path("specs").mkdir()
    Path("specs/bgpflat.yaml").write_text(SPEC.read_text())
    Path("specs/README.txt").write_text("not a manifest")
    code, from_dir, _ = run(capsys, "plan", "-f", "specs", "--snapshot", str(CLUSTER), "-o", "json")
    assert code == 0 and json.loads(from_dir)["stages"] == json.loads(from_file)["stages"]
    Path("empty").mkdir()
    code, _, err = run(capsys, "validate", "-f", "empty")
    assert code == 2 and "empty: is a directory with no *.yaml, *.yml or *.json file in it" in err
    monkeypatch.setattr(
        "sys.stdin", io.StringIO("kind: IPPool\napiVersion: projectcalico.org/v3\nmetadata: {name: p}\n")
    )
    code, out, _ = run(capsys, "validate", "-f", "-")
    assert code == 2 and out.startswith("<stdin>:1:")


def test_snapshot_output_file_and_the_deprecated_o_file(capsys: pytest.CaptureFixture[str]) -> None:
    Path("out").mkdir()  # refused before any cluster is read, so no cluster is needed here
    code, _, err = run(capsys, "snapshot", "--output-file", "out", "--kubeconfig", "nope")
    assert code == 2 and "deprecated" not in err and "out: is a directory" in err
    code, _, err = run(capsys, "snapshot", "-o", "out", "--kubeconfig", "nope")
    assert code == 2
    assert "bgpflat: warning: `snapshot -o FILE` is deprecated: write `snapshot --output-file out`" in err
    code, _, err = run(capsys, "snapshot", "-o", "json", "--kubeconfig", "nope")
    assert code == 2 and "--output-file" in err


def test_listings_take_yaml_and_wide(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    argv = ["routes", "expected", "--peer", "10.200.20.254", "--peer-as", "65200", "--snapshot", str(CLUSTER)]
    _, as_json, _ = run(capsys, *argv, "-o", "json")
    code, as_yaml, _ = run(capsys, *argv, "-o", "yaml")
    assert code == 0 and yaml.safe_load(as_yaml) == json.loads(as_json)
    code, wide, _ = run(capsys, *argv, "-o", "wide")
    assert code == 0 and "10.233.65.0/24" in wide
    code, listed, _ = run(capsys, "lab", "conformance", "--list", "-o", "yaml")
    assert code == 0 and yaml.safe_load(listed)["situations"][0]["name"]
    listings = (["peer", "routes"], ["peer", "status"], ["bmp", "routes"], ["bmp", "status"], ["lab", "status"])
    for command in listings:
        from bgpflat.cli import build_parser

        assert build_parser().parse_args([*command, "-o", "yaml"]).output == "yaml"
        assert build_parser().parse_args([*command, "-o", "wide"]).output == "wide"


def test_context_with_snapshot_is_an_error_not_ignored(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["plan", "-f", str(SPEC)],
        ["routes", "expected", "--peer", "10.200.20.254"],
        ["render", "tor", "--vendor", "frr", "-f", str(SPEC)],
    ):
        code, _, err = run(capsys, *argv, "--snapshot", str(CLUSTER), "--context", "prod")
        assert code == 2, argv
        assert "--context selects a cluster, but --snapshot reads none (fix: drop one of them)" in err, argv


# --- renderers -------------------------------------------------------------------------------------

FORWARDING = LABS / "forwarding-node"


def test_render_nat_via_an_address_names_the_node_and_refuses_an_unknown_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "render", "nat", "--via", "10.60.20.30", "--scenario", str(FORWARDING))
    assert code == 0
    assert "kubectl taint nodes node-30 forward=node-30:NoSchedule" in out
    code, out, err = run(capsys, "render", "nat", "--via", "10.60.20.99", "--scenario", str(FORWARDING))
    assert (code, out) == (2, "")
    assert "--via: no node has the address 10.60.20.99" in err


def test_render_vpn_lan_without_its_gateway_fails_instead_of_a_placeholder(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["render", "vpn", "--openvpn", "--part", "lan", "--lan", "192.168.1.0/24", "--scenario", str(FORWARDING)]
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert "--lan-gateway" in err
    code, out, _ = run(capsys, *argv, "--lan-gateway", "192.168.1.1")
    assert code == 0 and "via 192.168.1.1" in out and "<" not in out


def test_render_tor_prefix_limit_is_explained_and_warning_only(capsys: pytest.CaptureFixture[str]) -> None:
    scenario = str(LABS / "calico-bgp")
    _, frr, _ = run(capsys, "render", "tor", "--vendor", "frr", "--scenario", scenario)
    assert "maximum-prefix 328 warning-only" in frr
    assert "! Prefix limit 328 per neighbour, warning only" in frr
    _, junos, _ = run(capsys, "render", "tor", "--vendor", "junos", "--scenario", scenario, "--bmp", "10.0.9.1:5000")
    statements = [line for line in junos.splitlines() if not line.startswith("/*")]
    assert statements and all(line.startswith("set ") for line in statements)  # as static-routes --format junos
    assert "teardown" not in junos


def test_render_dns_forwards_the_reverse_zones_of_pods_and_services(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "render", "dns", "--bind", "--scenario", str(LABS / "calico-bgp"))
    assert code == 0
    zones = [line.split('"')[1] for line in out.splitlines() if line.startswith('zone "') and "in-addr" in line]
    # the pool 10.233.64.0/18 and the service range 10.233.0.0/18: 64 /24 zones each
    assert len(zones) == 128
    assert {"64.233.10.in-addr.arpa", "127.233.10.in-addr.arpa", "0.233.10.in-addr.arpa"} <= set(zones)
    assert "128.233.10.in-addr.arpa" not in zones
