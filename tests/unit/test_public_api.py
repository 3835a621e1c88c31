"""``import bgpflat`` as a Python program or a CI job uses it: the pinned list of public names, and
the built-in example (labs/calico-bgp) loaded, planned, modelled and diffed through that API only."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import bgpflat

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "labs" / "calico-bgp"
SPEC = LAB / "bgpflat.yaml"
SNAPSHOT = LAB / "cluster.yaml"
TOR = "10.200.20.254"

# The stable surface: adding a name is a decision, removing or renaming one breaks users.
PUBLIC = [
    "BgpflatError",
    "ClusterIdentity",
    "ClusterState",
    "DesiredState",
    "ExpectedRoutes",
    "KubeConflict",
    "KubeError",
    "KubeForbidden",
    "KubeInvalid",
    "KubeNotFound",
    "KubeUnavailable",
    "LabError",
    "ModelOptions",
    "OutsidePeer",
    "PeerError",
    "Plan",
    "PlanError",
    "Route",
    "RouteAssertionError",
    "RouteDiff",
    "RouteTable",
    "SpecError",
    "StalePlanError",
    "ValidationError",
    "VerifyError",
    "__version__",
    "assert_routes",
    "diff_routes",
    "expected_routes",
    "load_cluster",
    "load_learned",
    "load_spec",
    "plan",
    "validate_manifest",
]


def test_public_names_are_pinned() -> None:
    assert sorted(bgpflat.__all__) == PUBLIC


@pytest.mark.parametrize("name", [n for n in PUBLIC if n != "__version__"])
def test_every_public_name_resolves_and_says_what_it_is(name: str) -> None:
    obj = getattr(bgpflat, name)
    doc = obj.__doc__ or ""
    # A dataclass without a docstring gets its signature as one; that tells a reader nothing.
    assert doc.strip() and not doc.startswith(f"{name}("), f"bgpflat.{name} has no docstring of its own"
    if inspect.isfunction(obj):
        assert obj.__module__ == "bgpflat"


def test_version_is_the_packages() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{bgpflat.__version__}"' in pyproject


def test_exceptions_form_one_tree() -> None:
    assert issubclass(bgpflat.ValidationError, bgpflat.SpecError)
    assert issubclass(bgpflat.StalePlanError, bgpflat.PlanError)
    assert issubclass(bgpflat.KubeConflict, bgpflat.KubeError)
    for name in PUBLIC:
        obj = getattr(bgpflat, name)
        if name.endswith("Error") and name != "RouteAssertionError":
            assert issubclass(obj, bgpflat.BgpflatError), name
    # A failed route assertion is a test failure, not a bgpflat error.
    assert issubclass(bgpflat.RouteAssertionError, AssertionError)


def test_import_stays_cheap() -> None:
    # `bgpflat --help` imports the package first; nothing heavy may load before a name is used.
    heavy = "{'bgpflat', 'yaml', 'netaddr', 'kubernetes', 'rich'}"
    code = f"import sys, json, bgpflat; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {heavy})))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert json.loads(loaded) == ["bgpflat", "bgpflat.errors"]


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'bgpflat' has no attribute 'Planner'"):
        _ = bgpflat.Planner  # type: ignore[attr-defined]


# --- the built-in example, as a CI script would use it ----------------------------------------------


def test_plan_the_example_from_its_snapshot() -> None:
    desired = bgpflat.load_spec(SPEC)
    plan = bgpflat.plan(desired, SNAPSHOT)
    assert str(plan.summary) == "Plan: 2 to add, 1 to change, 0 to delete (4 writes)."
    assert [(c.action, c.kind, c.name) for c in plan.changes] == [
        ("create", "BGPConfiguration", "default"),
        ("create", "BGPPeer", "peer-switch"),
        ("update", "BGPConfiguration", "default"),
        ("update", "IPPool", "default-pool"),
    ]
    pool = plan.changes[-1]
    assert [(f.path, f.before, f.after) for f in pool.fields] == [("spec.ipipMode", "Always", "Never")]
    # Made from a file, so `bgpflat apply` will never take it.
    assert plan.identity.snapshot == str(SNAPSHOT)
    plan.ensure_applicable()  # no blocking finding in the example


def test_a_spec_given_as_a_dict_plans_like_the_file() -> None:
    from_file = bgpflat.plan(bgpflat.load_spec(SPEC), SNAPSHOT)
    data = yaml.safe_load(SPEC.read_text())
    from_dict = bgpflat.plan(bgpflat.load_spec(data), _objects())
    assert from_dict.to_dict()["stages"] == from_file.to_dict()["stages"]


def _objects() -> list[dict[str, Any]]:
    return [obj for obj in yaml.safe_load_all(SNAPSHOT.read_text()) if obj]


def _after_creates() -> list[dict[str, Any]]:
    """The example's objects once the plan's new objects exist (what a snapshot after apply holds
    for the route model: encapsulation does not change what is exported)."""
    plan = bgpflat.plan(bgpflat.load_spec(SPEC), SNAPSHOT)
    return _objects() + [dict(c.manifest) for c in plan.changes if c.action == "create" and c.manifest]


def _learned(session: str, prefix: str, next_hop: str | None = None) -> dict[str, Any]:
    return {"session": session, "prefix": prefix, "next_hop": next_hop or session, "as_path": [64513]}


# What the ToR learns from the two ingress nodes: every block, next hop self (eBGP, mesh on).
BLOCKS = ("10.233.65.0/24", "10.233.92.0/24", "10.233.110.0/24")
INGRESS = ("10.200.20.103", "10.200.20.104")


def test_expected_routes_of_the_example() -> None:
    before = bgpflat.expected_routes(SNAPSHOT, peer=TOR)
    assert len(before.table) == 0, "no BGPPeer to the ToR exists before the apply"
    expected = bgpflat.expected_routes(bgpflat.load_cluster(_after_creates()), peer=TOR)
    assert expected.calico_version == "v3.30.7"
    assert sorted(expected.sessions) == list(INGRESS)
    assert sorted((r.session, str(r.prefix), r.next_hop) for r in expected.table) == sorted(
        (node, block, node) for node in INGRESS for block in BLOCKS
    )
    own = next(r for r in expected.table if r.session == "10.200.20.103" and str(r.prefix) == "10.233.65.0/24")
    assert expected.explain(own) == "block of node-1, originated by the node itself (eBGP peer, next hop self)"


def test_diff_against_a_learned_list(tmp_path: Path) -> None:
    expected = bgpflat.expected_routes(_after_creates(), peer=TOR, options=bgpflat.ModelOptions(add_path=True))
    good = [_learned(node, block) for node in INGRESS for block in BLOCKS]
    learned_file = tmp_path / "learned.json"
    learned_file.write_text(json.dumps({"routes": good}))
    assert bgpflat.diff_routes(expected=expected, learned=bgpflat.load_learned(learned_file)).complies
    assert bgpflat.assert_routes(expected=expected, learned=good).complies

    bad = [r for r in good if r != _learned("10.200.20.104", "10.233.110.0/24")]
    bad[0] = _learned("10.200.20.103", "10.233.65.0/24", next_hop="10.200.20.21")
    diff = bgpflat.diff_routes(expected=expected, learned=bad)
    assert not diff.complies
    assert sorted((f.code, f.session, str(f.prefix)) for f in diff.findings) == [
        ("next-hop-mismatch", "10.200.20.103", "10.233.65.0/24"),
        ("route-missing", "10.200.20.104", "10.233.110.0/24"),
    ]
    with pytest.raises(bgpflat.RouteAssertionError) as failed:
        bgpflat.assert_routes(expected=expected, learned=bad)
    assert "block of node-3, expected through mesh re-export (eBGP peer, next hop self)" in str(failed.value)


def test_expected_routes_refuses_a_peer_that_is_not_an_address() -> None:
    with pytest.raises(bgpflat.SpecError, match=r"^peer: .*\(fix: give the peer's bare IP address, without a port\)$"):
        bgpflat.expected_routes(SNAPSHOT, peer="10.200.20.254:179")


def test_load_spec_names_the_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "bgpflat.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(bgpflat.SpecError) as failed:
        bgpflat.load_spec(empty)
    assert str(failed.value) == (
        f"{empty}: empty file: no flat spec and no Calico manifests (fix: pass a bgpflat.yaml or Calico manifests)"
    )


# --- validate_manifest --------------------------------------------------------------------------


def _pool(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "pods"}, "spec": spec}


def test_validate_a_good_manifest() -> None:
    pool = bgpflat.validate_manifest(_pool(cidr="10.244.0.0/16", blockSize=26, ipipMode="Never"))
    assert (pool.kind, pool.name, str(pool.cidr), pool.block_size) == ("IPPool", "pods", "10.244.0.0/16", 26)
    peer = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "BGPPeer",
        "metadata": {"name": "tor"},
        "spec": {"peerIP": TOR, "asNumber": 65200},
    }
    assert bgpflat.validate_manifest(peer, calico_version="v3.31.0").kind == "BGPPeer"
    assert bgpflat.validate_manifest(peer, calico_version="3.31").kind == "BGPPeer"


def test_validate_a_manifest_that_breaks_a_calico_rule() -> None:
    with pytest.raises(bgpflat.ValidationError) as failed:
        bgpflat.validate_manifest(_pool(cidr="10.244.0.0/16", blockSize=33))
    assert str(failed.value) == (
        "spec.blockSize: blockSize 33 is out of range for an IPv4 pool (fix: use a blockSize from 20 to 32)"
    )


def test_validate_refuses_what_bgpflat_would_not_write() -> None:
    with pytest.raises(bgpflat.ValidationError) as failed:
        bgpflat.validate_manifest(_pool(cidr="10.244.0.0/16", ipipmode="Never"))
    assert str(failed.value) == "spec.ipipmode: unknown field 'ipipmode' (fix: did you mean 'ipipMode'?)"
    v1 = {**_pool(cidr="10.244.0.0/16"), "apiVersion": "crd.projectcalico.org/v1"}
    with pytest.raises(bgpflat.ValidationError) as failed:
        bgpflat.validate_manifest(v1)
    assert str(failed.value) == (
        "apiVersion: unsupported apiVersion 'crd.projectcalico.org/v1' for IPPool "
        "(fix: use apiVersion: projectcalico.org/v3 (the spec is the same; bgpflat writes projectcalico.org/v3 only))"
    )


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("latest", "calico_version: 'latest' is not a Calico version (fix: use e.g. v3.31.0 or 3.31)"),
        (
            "v2.6.12",
            "calico_version: Calico v2.6.12 is not a 3.x release; bgpflat knows the rules of Calico 3.x only "
            "(fix: give the Calico 3.x version the cluster runs)",
        ),
    ],
)
def test_validate_checks_the_calico_version(version: str, message: str) -> None:
    with pytest.raises(bgpflat.SpecError) as failed:
        bgpflat.validate_manifest(_pool(cidr="10.244.0.0/16"), calico_version=version)
    assert str(failed.value) == message


def test_the_readme_example_prints_what_it_says(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## Library\n") :]
    code = section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]
    # Each print states its output in a comment, on its own line or on the next one.
    lines = code.splitlines()
    said = []
    for index, line in enumerate(lines):
        if line.lstrip().startswith("print("):
            comment = line.partition("  # ")[2] or lines[index + 1].strip().removeprefix("# ")
            said.append(comment)
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == said
