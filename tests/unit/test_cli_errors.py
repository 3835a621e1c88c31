"""Bad input on the command line: one ``bgpflat: error:`` line naming the file, field and fix, exit 2.

Each case is a realistic mistake run through ``main`` as a user would type it, with the exact line
the user sees, so that a reworded or lost file name shows up here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bgpflat.cli import build_parser, main
from bgpflat.cli.arguments import peer as peer_config
from bgpflat.errors import SpecError

LABS = Path(__file__).resolve().parents[2] / "labs"
SPEC = LABS / "calico-bgp" / "bgpflat.yaml"
CLUSTER = LABS / "calico-bgp" / "cluster.yaml"
SERVICES = LABS / "external" / "services.yaml"

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- name: ctx1
  context: {cluster: c1, user: u1}
current-context: ctx1
users:
- name: u1
  user: {token: abc}
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Relative file names in the messages, and no kubeconfig of the machine running the tests.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def only_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run, expect exit 2 and exactly one ``bgpflat: error:`` line; return its text after the prefix."""
    code, err = run(capsys, *argv)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("bgpflat: error: ")]
    assert len(lines) == 1, err
    return lines[0].removeprefix("bgpflat: error: ")


def plan_spec_error(capsys: pytest.CaptureFixture[str], text: str) -> str:
    """Write ``spec.yaml`` with ``text``, plan it against the lab snapshot; return the one error line."""
    Path("spec.yaml").write_text(text)
    return only_error(capsys, "plan", "-f", "spec.yaml", "--snapshot", str(CLUSTER))


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    error, usage = capsys.readouterr().err.strip().splitlines()
    assert usage.startswith("usage: bgpflat ")
    return error


# --- YAML files ----------------------------------------------------------------------------------


def test_duplicate_key_is_refused_with_both_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_spec_error(capsys, "version: 1\nbgp:\n  asNumber: 64513\n  asNumber: 64514\n") == (
        "spec.yaml:4: bgp.asNumber: duplicate key 'asNumber' (first at line 3) (fix: keep one of them)"
    )


def test_duplicate_key_in_a_flow_mapping_names_the_list_item(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_spec_error(
        capsys, "pools:\n  - {name: p, cidr: 10.1.0.0/16}\n  - {name: p, cidr: 10.2.0.0/16, name: q}\n"
    ) == ("spec.yaml:3: pools[1].name: duplicate key 'name' (first at line 3) (fix: keep one of them)")


def test_tab_indentation_says_tab(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_spec_error(capsys, "version: 1\nbgp:\n\tasNumber: 64513\n") == (
        "spec.yaml:3: invalid YAML: a tab character; YAML indents with spaces only "
        "(fix: replace the tabs on that line with spaces)"
    )


def test_directory_without_manifests_given_to_f(capsys: pytest.CaptureFixture[str]) -> None:
    # -f DIR reads the directory's manifests (as kubectl does); one with none is a mistake.
    Path("specs").mkdir()
    assert only_error(capsys, "plan", "-f", "specs", "--snapshot", str(CLUSTER)) == (
        "specs: is a directory with no *.yaml, *.yml or *.json file in it "
        "(fix: name the files, or put the manifests in that directory)"
    )


def test_empty_spec_file_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_spec_error(capsys, "# nothing yet\n") == (
        "spec.yaml: empty file: no flat spec and no Calico manifests (fix: pass a bgpflat.yaml or Calico manifests)"
    )


def test_pools_as_a_string_is_not_a_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_spec_error(capsys, "pools: default-pool\n") == (
        "spec.yaml:1: pools: expected a list, got str (fix: write a YAML list)"
    )


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("hello\n", "str")])
def test_spec_that_is_not_a_mapping(capsys: pytest.CaptureFixture[str], text: str, kind: str) -> None:
    assert plan_spec_error(capsys, text) == (
        f"spec.yaml:1: expected a flat spec or a Kubernetes object (a mapping), got {kind} "
        "(fix: start a flat spec with keys such as version:, bgp:, pools:, peers:)"
    )


def test_unquoted_dotted_as_number_says_quote_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_spec_error(capsys, "bgp:\n  asNumber: 1.10\n") == (
        "spec.yaml:2: bgp.asNumber: invalid AS number 1.1: YAML read it as a decimal number "
        '(fix: write an asplain number, or quote a dotted one: "1.10")'
    )


def test_manifest_without_kind(capsys: pytest.CaptureFixture[str]) -> None:
    Path("pool.yaml").write_text("apiVersion: projectcalico.org/v3\nmetadata: {name: p}\nspec: {cidr: 10.1.0.0/16}\n")
    assert only_error(capsys, "plan", "-f", "pool.yaml", "--snapshot", str(CLUSTER)) == (
        "pool.yaml:1: kind: the object has no kind (fix: set kind: IPPool, BGPPeer or BGPConfiguration)"
    )


def test_plan_with_overlapping_ranges_fails_after_showing_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    Path("spec.yaml").write_text(
        SPEC.read_text().replace("clusterIPs: [10.233.0.0/18]", "clusterIPs: [10.233.64.0/20]")
    )
    code = main(["plan", "-f", "spec.yaml", "--snapshot", str(CLUSTER), "--out", "plan.json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "Plan: " in out  # the whole plan is still shown, findings included
    assert err.splitlines()[-1] == (
        "bgpflat: error: the plan cannot be applied: [address-overlap] pod pool 10.233.64.0/18 (IPPool/default-pool) "
        "overlaps service range 10.233.64.0/20 (BGPConfiguration/default serviceClusterIPs)"
    )
    assert not Path("plan.json").exists()  # a plan that apply refuses is not saved
    assert main(["plan", "-f", "spec.yaml", "--snapshot", str(CLUSTER), "--detailed-exitcode", "-o", "json"]) == 1
    json.loads(capsys.readouterr().out)


# --- snapshots -----------------------------------------------------------------------------------


def test_empty_snapshot_is_not_an_empty_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    Path("cluster.yaml").write_text("")
    expected = "cluster.yaml: empty file, not a snapshot (fix: make one with `bgpflat snapshot --output-file FILE`)"
    assert only_error(capsys, "plan", "-f", str(SPEC), "--snapshot", "cluster.yaml") == expected
    assert only_error(capsys, "routes", "expected", "--peer", "10.200.20.254", "--snapshot", "cluster.yaml") == expected


def test_flat_spec_given_as_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    Path("bgpflat.yaml").write_text(SPEC.read_text())
    assert only_error(capsys, "plan", "-f", "bgpflat.yaml", "--snapshot", "bgpflat.yaml") == (
        "bgpflat.yaml:7: this is a flat spec, not a snapshot "
        "(fix: pass the spec with -f; make a snapshot with `bgpflat snapshot --output-file FILE`)"
    )


def test_broken_object_in_a_snapshot_names_the_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    Path("cluster.yaml").write_text(CLUSTER.read_text().replace("cidr: 10.233.64.0/18", "cidr: 10.233.64.0/33"))
    assert only_error(capsys, "plan", "-f", str(SPEC), "--snapshot", "cluster.yaml") == (
        "cluster.yaml:20: spec.cidr: IPPool/default-pool: '10.233.64.0/33' has an invalid prefix "
        "length (fix: use a length from 0 to 32)"
    )


def test_snapshot_into_a_directory_is_refused_before_reading_the_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    Path("out").mkdir()
    # "nope" is no kubeconfig: reaching for the cluster first would fail with that instead.
    assert only_error(capsys, "snapshot", "-o", "out", "--kubeconfig", "nope") == (
        "out: is a directory, not a file (fix: give the snapshot's file name)"
    )


def test_saved_plan_given_to_rollback(capsys: pytest.CaptureFixture[str]) -> None:
    Path("plan.json").write_text('{"format_version": 1, "cluster": {}, "stages": []}')
    assert only_error(capsys, "rollback", "plan.json") == (
        "plan.json:1: object #1 has no apiVersion/kind "
        "(fix: a snapshot holds Kubernetes objects as `kubectl get -o yaml` prints them)"
    )


# --- saved plans ---------------------------------------------------------------------------------


def _saved_plan(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["plan", "-f", str(SPEC), "--snapshot", str(CLUSTER), "--out", "plan.json"]) == 0
    capsys.readouterr()
    data: dict[str, object] = json.loads(Path("plan.json").read_text())
    return data


def test_snapshot_plan_is_refused_before_any_cluster_is_contacted(capsys: pytest.CaptureFixture[str]) -> None:
    _saved_plan(capsys)
    # No kubeconfig exists: had apply tried to connect, the error would be about the kubeconfig.
    assert only_error(capsys, "apply", "plan.json") == (
        f"plan.json: this plan is for review only: it was made from the snapshot {CLUSTER}, not from a cluster; "
        "run `bgpflat plan --out` against the cluster to get a plan that can be applied"
    )


def test_hand_edited_plan_names_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    data = _saved_plan(capsys)
    stages = data["stages"]
    assert isinstance(stages, list)
    del stages[0]["changes"][0]["kind"]
    Path("plan.json").write_text(json.dumps(data))
    assert only_error(capsys, "apply", "plan.json") == (
        'plan.json: stages[0].changes[0]: missing "kind" '
        "(fix: make the plan again with `bgpflat plan --out`; a saved plan is not edited by hand)"
    )


def test_plan_from_another_version_names_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    data = _saved_plan(capsys)
    data["format_version"] = 99
    Path("plan.json").write_text(json.dumps(data))
    assert only_error(capsys, "apply", "plan.json") == (
        "plan.json: format_version 99 is not supported (this bgpflat reads 1) "
        "(fix: make the plan again with `bgpflat plan --out`)"
    )


def test_spec_given_to_apply_as_a_plan(capsys: pytest.CaptureFixture[str]) -> None:
    Path("bgpflat.yaml").write_text(SPEC.read_text())
    assert only_error(capsys, "apply", "bgpflat.yaml") == (
        "bgpflat.yaml: a saved plan is the JSON file `bgpflat plan --out` writes; "
        "to plan and apply a spec, run: bgpflat apply -f bgpflat.yaml"
    )


# --- kubeconfig ----------------------------------------------------------------------------------


def test_kubeconfig_missing(capsys: pytest.CaptureFixture[str]) -> None:
    assert only_error(capsys, "plan", "-f", str(SPEC), "--kubeconfig", "nope") == (
        "kubeconfig nope: no such file (fix: check the path)"
    )


def test_kubeconfig_garbage_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    Path("kc").write_text("garbage: [\n")
    assert only_error(capsys, "plan", "-f", str(SPEC), "--kubeconfig", "kc") == (
        "kubeconfig kc:2: invalid YAML: expected the node content, but found '<stream end>'"
    )


@pytest.mark.parametrize("text", ["hello\n", "- a\n", "apiVersion: v1\nclusters: 5\n"])
def test_kubeconfig_of_the_wrong_shape(capsys: pytest.CaptureFixture[str], text: str) -> None:
    Path("kc").write_text(text)
    assert only_error(capsys, "routes", "expected", "--peer", "10.0.0.1", "--kubeconfig", "kc") == (
        "kubeconfig kc: not a kubeconfig (fix: give a file with clusters, contexts and users, "
        "as `kubectl config view --raw` prints)"
    )


def test_kubeconfig_unknown_context_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    Path("kc").write_text(KUBECONFIG)
    assert only_error(capsys, "external", "plan", "-f", str(SERVICES), "--kubeconfig", "kc", "--context", "prod") == (
        "kubeconfig kc: no context 'prod' (fix: pass --context with one of: ctx1)"
    )


def test_peer_kubeconfig_errors_read_like_every_other_command(capsys: pytest.CaptureFixture[str]) -> None:
    peer_run = ("peer", "run", "--listen", "10.0.0.100", "--from-cluster", "--state-dir", "st")
    assert (
        only_error(capsys, *peer_run, "--kubeconfig", "nope") == "kubeconfig nope: no such file (fix: check the path)"
    )
    Path("kc").write_text("garbage: [\n")
    assert only_error(capsys, *peer_run, "--kubeconfig", "kc") == (
        "kubeconfig kc:2: invalid YAML: expected the node content, but found '<stream end>'"
    )
    Path("kc").write_text("hello\n")
    assert only_error(capsys, *peer_run, "--kubeconfig", "kc") == (
        "kubeconfig kc: not a kubeconfig (fix: give a file with clusters, contexts and users, "
        "as `kubectl config view --raw` prints)"
    )


# --- routes and verify ---------------------------------------------------------------------------


def test_routes_peer_is_not_an_ip(capsys: pytest.CaptureFixture[str]) -> None:
    assert only_error(capsys, "routes", "expected", "--peer", "10.0.0.1:179", "--snapshot", str(CLUSTER)) == (
        "--peer: '10.0.0.1:179' is not an IP address "
        "(fix: give the peer's bare IP address: a BGPPeer's peerIP without a port)"
    )


def test_routes_context_with_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("routes", "expected", "--peer", "10.0.0.1", "--snapshot", str(CLUSTER), "--context", "prod")
    assert only_error(capsys, *argv) == (
        "--context selects a cluster, but --snapshot reads none (fix: drop one of them)"
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        (
            "--peer-as",
            "4294967296",
            "argument --peer-as: AS number 4294967296 is out of range "
            "(use 1-4294967295 or dotted a.b with a, b in 0-65535)",
        ),
        ("--peer-as", "0", "argument --peer-as: AS number 0 is out of range"),
        (
            "--calico-version",
            "banana",
            "argument --calico-version: 'banana' is not a Calico version (fix: use e.g. v3.31.0 or 3.31)",
        ),
        (
            # what `validate --calico-version` refuses too
            "--calico-version",
            "v9.9",
            "argument --calico-version: Calico v9.9 is not a 3.x release; bgpflat knows the rules of Calico 3.x only "
            "(fix: give the Calico 3.x version the cluster runs)",
        ),
    ],
)
def test_routes_flag_values(capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str) -> None:
    line = usage_error(capsys, "routes", "expected", "--peer", "10.0.0.1", "--snapshot", str(CLUSTER), flag, value)
    assert line.startswith(f"bgpflat: error: bgpflat routes expected: {message}")


def test_routes_dotted_peer_as_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["routes", "expected", "--peer", "10.0.0.1", "--peer-as", "1.10"])
    assert args.peer_as == 65546


def test_verify_bad_interval_is_refused_before_reading_the_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert only_error(capsys, "verify", "--peer", "10.0.0.1", "--kubeconfig", "nope", "--interval", "0") == (
        "--timeout and --settle must be ≥ 0 and --interval > 0"
    )


def test_verify_bad_learned_file_is_an_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    Path("learned.json").write_text("")
    assert only_error(
        capsys, "verify", "--peer", "10.200.20.254", "--snapshot", str(CLUSTER), "--learned", "learned.json"
    ) == ("could not verify (bad-input): learned.json: empty file, expected JSON")


# --- peer run ------------------------------------------------------------------------------------

PEER_RUN = ("peer", "run", "--exabgp", "/bin/false", "--state-dir", "state")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ("--listen", "127.0.0.1:179", "--local-as", "65000", "--neighbor", "127.0.0.2", "--peer-as", "64512"),
            "--listen: '127.0.0.1:179' is not an IP address (fix: give the bare address; the port is --port)",
        ),
        (
            ("--listen", "127.0.0.1", "--local-as", "65000", "--neighbor-range", "127.0.0.1/24", "--peer-as", "64512"),
            "--neighbor-range: '127.0.0.1/24' has host bits set (fix: use 127.0.0.0/24)",
        ),
        (
            ("--listen", "127.0.0.1", "--local-as", "x", "--neighbor", "127.0.0.2", "--peer-as", "64512"),
            "--local-as: invalid AS number 'x' (fix: use 1-4294967295 or dotted a.b with a, b in 0-65535)",
        ),
        (
            (
                "--listen",
                "127.0.0.1",
                "--local-as",
                "65000",
                "--neighbor",
                "127.0.0.2",
                "--peer-as",
                "1",
                "--port",
                "0",
            ),
            "--port: 0 is out of range (fix: use 1-65535)",
        ),
        (
            (
                "--listen",
                "10.200.20.254",
                "--neighbor",
                "10.200.20.101",
                "--neighbor-range",
                "10.200.20.0/24",
                "--from-snapshot",
                str(CLUSTER),
                "--peer-as",
                "64512",
            ),
            "--neighbor/--neighbor-range and --from-snapshot/--from-cluster both choose the neighbors "
            "(fix: give the neighbors either by hand or from Calico's BGPPeers, not both)",
        ),
        (
            (
                "--listen",
                "127.0.0.1",
                "--local-as",
                "65000",
                "--neighbor",
                "127.0.0.2",
                "--peer-as",
                "1",
                "--kubeconfig",
                "kc",
            ),
            "--kubeconfig and --context are read only with --from-cluster (fix: add --from-cluster)",
        ),
        (
            ("--listen", "127.0.0.1", "--from-snapshot", str(SPEC)),
            f"{SPEC}:7: not a Kubernetes object (no kind) "
            "(fix: give Nodes and BGPPeers, e.g. a snapshot from `bgpflat snapshot --output-file FILE`)",
        ),
        (
            ("--listen", "127.0.0.1", "--from-snapshot", str(CLUSTER)),
            "no BGPPeer has peerIP 127.0.0.1; no node would peer here "
            "(fix: check --listen, or create the BGPPeer that points at this address)",
        ),
    ],
)
def test_peer_run_arguments(capsys: pytest.CaptureFixture[str], extra: tuple[str, ...], message: str) -> None:
    assert only_error(capsys, *PEER_RUN, *extra) == message
    assert not Path("state").exists()  # refused before anything is written


def test_peer_run_zero_hold_time_and_dotted_as_are_kept() -> None:
    argv = [*PEER_RUN, "--listen", "127.0.0.1", "--local-as", "1.10", "--neighbor", "127.0.0.2", "--peer-as", "64512"]
    args = build_parser().parse_args([*argv, "--hold-time", "0"])
    config = peer_config.build_config(args, peer_config.collect_settings(args))
    # "0 or 90" used to turn an explicit hold time of 0 (no keepalives) into 90.
    assert (config.hold_time, config.local_as, config.listen_port) == (0, 65546, 179)


def test_peer_config_file_bad_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("peer.yaml").write_text("listen: 127.0.0.1\nlocal_as: 65000\nneighbor: 127.0.0.2\npeer_as: 1\nport: x\n")
    assert only_error(capsys, *PEER_RUN, "--config", "peer.yaml") == (
        "--port: expected a whole number, got 'x' (fix: use 1-65535)"
    )


def test_peer_config_file_bad_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    Path("peer.yaml").write_text("listen: [a\n")
    assert only_error(capsys, *PEER_RUN, "--config", "peer.yaml") == (
        "peer.yaml:2: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence) "
        "(fix: check indentation, colons and quoting on that line)"
    )


# --- external --------------------------------------------------------------------------------------


def test_external_bad_app_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    Path("svc.yaml").write_text(
        "services:\n  - name: a\n    namespace: default\n"
        '    ports: [{port: 80, appProtocol: "bad proto!"}]\n    addresses: [10.0.0.1]\n'
    )
    assert only_error(capsys, "external", "render", "-f", "svc.yaml") == (
        "svc.yaml:4: services[0].ports[0].appProtocol: appProtocol 'bad proto!' is not a valid protocol name "
        "(fix: e.g. http, or kubernetes.io/h2c)"
    )


def test_external_port_out_of_range_fix(capsys: pytest.CaptureFixture[str]) -> None:
    Path("svc.yaml").write_text(
        "services:\n  - name: a\n    namespace: default\n    ports: [{port: 0}]\n    addresses: [10.0.0.1]\n"
    )
    assert only_error(capsys, "external", "render", "-f", "svc.yaml") == (
        "svc.yaml:4: services[0].ports[0].port: port must be a number from 1 to 65535, got 0 "
        "(fix: use a port from 1 to 65535)"
    )


def test_external_empty_file(capsys: pytest.CaptureFixture[str]) -> None:
    Path("svc.yaml").write_text("")
    assert only_error(capsys, "external", "render", "-f", "svc.yaml") == (
        "svc.yaml: empty file (fix: list the outside services under 'services:')"
    )


def test_external_apply_without_terminal_stops_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    # pytest's stdin is no terminal; --kubeconfig names no file, so a connection attempt would say so.
    assert only_error(capsys, "external", "apply", "-f", str(SERVICES), "--kubeconfig", "nope") == (
        "stdin is not a terminal, so bgpflat cannot ask for confirmation; pass --yes to apply"
    )


def test_external_render_has_no_auto_endpoints(capsys: pytest.CaptureFixture[str]) -> None:
    line = usage_error(capsys, "external", "render", "-f", str(SERVICES), "--endpoints", "auto")
    assert line == (
        "bgpflat: error: bgpflat external render: argument --endpoints: invalid choice: 'auto' "
        "(choose from 'slices', 'endpoints')"
    )


# --- render ----------------------------------------------------------------------------------------


def test_render_search_domain_must_be_a_dns_name(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ("render", "vpn", "--openvpn", "--scenario", str(LABS / "calico-bgp"), "--search-domain", 'x"; rm -rf')
    assert only_error(capsys, *argv) == (
        "--search-domain: 'x\"; rm -rf' is not a DNS name (fix: write a domain like default.svc.cluster.local)"
    )


@pytest.mark.parametrize("flag", ["--remote", "--client"])
def test_render_vpn_client_names_are_written_verbatim_so_must_be_names(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ("render", "vpn", "--openvpn", "--part", "client", "--scenario", str(LABS / "calico-bgp"), flag, "a b")
    assert only_error(capsys, *argv) == (
        f"{flag}: 'a b' is not a DNS name (fix: write a domain like default.svc.cluster.local)"
    )


def test_render_scenario_that_is_a_file_or_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Path("empty").mkdir()
    assert only_error(capsys, "render", "tor", "--vendor", "frr", "--scenario", "empty") == (
        "empty: not a scenario directory: no bgpflat.yaml, cluster.yaml or scenario.yaml in it "
        "(fix: pass a directory like labs/calico-bgp)"
    )
    Path("file.yaml").write_text("x: 1\n")
    assert only_error(capsys, "render", "tor", "--vendor", "frr", "--scenario", "file.yaml") == (
        "file.yaml: a file, not a scenario directory (fix: pass a directory like labs/calico-bgp)"
    )


# --- machine output ----------------------------------------------------------------------------------


def test_conformance_list_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "conformance", "--list", "-o", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format_version"] == 1
    assert {"name", "session_type", "description"} <= set(data["situations"][0])


def test_spec_error_is_a_spec_error() -> None:
    # The file adapter's refusals are SpecErrors, which the CLI prints without a traceback.
    from bgpflat.adapters.files import parse_documents

    with pytest.raises(SpecError):
        parse_documents("a: 1\na: 2\n", file="x.yaml")


# --- lab scenario names ------------------------------------------------------------------------------

UNKNOWN_SCENARIO = (
    "unknown scenario 'nosuchscenario' (fix: one of calico-bgp, edge-node, forwarding-node, ipip-migration, "
    "openvpn, vxlan-migration)"
)


@pytest.mark.parametrize("command", ["check", "down", "status"])
def test_lab_unknown_scenario_is_refused_before_any_lab_is_touched(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert only_error(capsys, "lab", command, "nosuchscenario") == UNKNOWN_SCENARIO
    assert not (tmp_path / "state").exists()


def test_lab_known_scenario_that_is_not_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A real scenario name keeps the "not started" wording, by name or by directory.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    state = tmp_path / "state" / "bgpflat" / "lab" / "calico-bgp"
    not_up = f"no lab recorded in {state}; start one with `bgpflat lab up SCENARIO`"
    assert only_error(capsys, "lab", "check", "calico-bgp") == not_up
    assert only_error(capsys, "lab", "check", str(LABS / "calico-bgp")) == not_up
    assert only_error(capsys, "lab", "status", "calico-bgp") == not_up
    code, err = run(capsys, "lab", "down", "calico-bgp")
    assert code == 0
    assert err.strip() == f"no lab recorded in {state}; nothing to do"


def test_lab_started_from_a_directory_outside_labs_is_found_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `lab up /some/dir/mylab` keeps its state under the directory's name: that name is not refused.
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    state = tmp_path / "state" / "bgpflat" / "lab" / "mylab"
    state.mkdir(parents=True)
    assert only_error(capsys, "lab", "check", "mylab") == (
        f"no lab recorded in {state}; start one with `bgpflat lab up SCENARIO`"
    )


def test_external_apply_takes_a_saved_plan_or_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert only_error(capsys, "external", "apply", "--yes") == (
        "give either a saved plan (bgpflat external apply PLAN.json) or a services file (-f FILE)"
    )
    assert only_error(capsys, "external", "apply", str(SERVICES), "--yes") == (
        f"{SERVICES}: a saved plan is the JSON file `bgpflat external plan --out` writes; "
        f"to plan and apply a services file, run: bgpflat external apply -f {SERVICES}"
    )
    Path("plan.json").write_text('{"kind": "bgpflat-external-plan", "format_version": 1, "changes": {}}')
    assert only_error(capsys, "external", "apply", "plan.json", "--yes") == (
        "plan.json: this plan is in the old external format (bgpflat-external-plan), which this bgpflat no longer "
        "applies; external plans are now bgpflat plans (format_version 1, with backups and rollback): make it "
        "again with `bgpflat external plan --out`"
    )
    Path("plan.json").write_text('{"format_version": 1, "stages": {}}')
    assert only_error(capsys, "external", "apply", "plan.json", "--yes") == (
        "plan.json: stages: expected a list, got an object (fix: make the plan again with "
        "`bgpflat external plan --out`; a saved plan is not edited by hand)"
    )
    Path("plan.json").write_text('{"format_version": 1, "observed_versions": {"IPPool/default-pool": "1"}}')
    assert only_error(capsys, "external", "apply", "plan.json", "--yes") == (
        "plan.json: this is not a plan saved by `bgpflat external plan --out` "
        "(a Calico plan is applied with: bgpflat apply plan.json)"
    )
    Path("plan.json").write_text('{"format_version": 1, "observed_versions": {"Service/default/db": null}}')
    assert only_error(capsys, "apply", "plan.json", "--yes") == (
        "plan.json: this plan was saved by `bgpflat external plan --out`; "
        "apply it with: bgpflat external apply plan.json"
    )
    assert only_error(capsys, "external", "apply", "plan.json", "--prune", "--yes") == (
        "--prune and --endpoints are decided when the plan is made; pass them to `bgpflat external plan`"
    )


def test_verify_bad_record_in_a_learned_file_names_file_and_record(capsys: pytest.CaptureFixture[str]) -> None:
    # Read record by record, a bad one still gives the message of the file read whole.
    good = {"prefix": "10.233.65.0/24", "next_hop": "10.200.20.103", "session": "10.200.20.103", "as_path": [64513]}
    Path("learned.json").write_text(json.dumps({"routes": [good, {**good, "next_hop": "node-1"}], "sessions": []}))
    assert only_error(
        capsys, "verify", "--peer", "10.200.20.254", "--snapshot", str(CLUSTER), "--learned", "learned.json"
    ) == ("could not verify (bad-input): learned.json: routes[1].next_hop: 'node-1' is not an IP address")
