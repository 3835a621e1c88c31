"""The pytest plugin, run in a real inner pytest session (pytester) as a user's CI would run it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_advertise import base

pytest_plugins = ["pytester"]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", cluster=yaml.safe_dump_all(base(mesh=False)))
    good = [
        {
            "prefix": f"10.244.0.{offset}/26",
            "next_hop": f"10.0.0.{i + 1}",
            "session": f"10.0.0.{i + 1}",
            "as_path": [64512],
            "path_id": 1,
        }
        for i, offset in enumerate((0, 64, 128))
    ]
    Path(pytester.path, "good.json").write_text(json.dumps({"routes": good}))
    Path(pytester.path, "bad.json").write_text(json.dumps({"routes": good[:2]}))
    return pytester


def test_passing_and_failing_route_assertions(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        from bgpflat.testing.pytest_plugin import assert_routes

        def test_good(bgpflat_expected, bgpflat_learned):
            expected = bgpflat_expected("cluster.yaml", peer="10.0.0.254")
            assert_routes(expected=expected, learned=bgpflat_learned("good.json"))

        def test_bad(bgpflat_expected, bgpflat_learned):
            expected = bgpflat_expected("cluster.yaml", peer="10.0.0.254")
            assert_routes(expected=expected, learned=bgpflat_learned("bad.json"))
        """
    )
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*RouteAssertionError: routes do not comply: 2 present, 1 missing, 0 mismatched, 0 unexpected",
            "*[[]route-missing[]] 10.244.0.128/26 missing via 10.0.0.3 (c): block of c, originated by the node itself*",
        ]
    )
    # The plugin's and the library's own frames are hidden: the traceback ends in the user's test.
    assert "def assert_routes(" not in result.stdout.str()
    assert "raise RouteAssertionError" not in result.stdout.str()


def test_soft_mode_warns_and_route_check_collects(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        from bgpflat.testing.pytest_plugin import assert_routes

        def test_soft(bgpflat_expected, bgpflat_learned):
            diff = assert_routes(expected=bgpflat_expected("cluster.yaml", peer="10.0.0.254"),
                                 learned=bgpflat_learned("bad.json"), soft=True)
            assert len(diff.missing) == 1

        def test_collected(bgpflat_expected, bgpflat_learned, route_check):
            expected = bgpflat_expected("cluster.yaml", peer="10.0.0.254")
            route_check.routes(expected=expected, learned=bgpflat_learned("bad.json"), label="after apply")
            route_check.routes(expected=expected, learned=bgpflat_learned("good.json"), label="again")
        """
    )
    result = project.runpytest("-p", "no:cacheprovider")
    # pytest reports a teardown failure as an error on a test that otherwise passed.
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*after apply: routes do not comply: 2 present, 1 missing*",
            # the warning points at the user's line, not at the plugin
            "*test_soft_mode_warns_and_route_check_collects.py:4: RouteAssertionWarning: routes do not comply*",
        ]
    )
    assert "again:" not in result.stdout.str()


def test_route_table_equality_explains_itself(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
        def test_eq(bgpflat_learned):
            assert bgpflat_learned("bad.json") == bgpflat_learned("good.json")
        """
    )
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*route tables differ (left: learned, right: expected)*", "*10.244.0.128/26 missing via 10.0.0.3*"]
    )


def test_nothing_expected_or_nothing_learned_fails_naming_why(project: pytest.Pytester) -> None:
    # Each would "comply" vacuously, a CI check that can never fail; `bgpflat verify` exits 2 for them.
    Path(project.path, "empty.json").write_text(json.dumps({"routes": []}))
    project.makepyfile(
        """
        from bgpflat.testing.pytest_plugin import assert_routes

        def test_wrong_peer_address(bgpflat_expected, bgpflat_learned):
            expected = bgpflat_expected("cluster.yaml", peer="10.0.0.253")
            assert_routes(expected=expected, learned=bgpflat_learned("good.json"))

        def test_nothing_learned(bgpflat_expected, bgpflat_learned):
            expected = bgpflat_expected("cluster.yaml", peer="10.0.0.254")
            assert_routes(expected=expected, learned=bgpflat_learned("empty.json"))

        def test_learned_an_empty_list(bgpflat_expected):
            assert_routes(expected=bgpflat_expected("cluster.yaml", peer="10.0.0.254"), learned=[])

        def test_nothing_expected(bgpflat_learned):
            assert_routes(expected=[], learned=bgpflat_learned("good.json"))

        def test_collected(bgpflat_expected, route_check):
            route_check.routes(expected=bgpflat_expected("cluster.yaml", peer="10.0.0.254"), learned=[], label="x")
        """
    )
    result = project.runpytest("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1, failed=4, errors=1)  # route_check fails at teardown: an error
    result.stdout.fnmatch_lines_random(
        [
            "*RouteAssertionError: could not verify (no-expectations): no Calico node peers with 10.0.0.253",
            "*RouteAssertionError: could not verify (nothing-learned): the verification peer has learned no route",
            "*RouteAssertionError: could not verify (no-expectations): the expected table is empty",
            "*RouteAssertionError: x: could not verify (nothing-learned)*",
        ]
    )
