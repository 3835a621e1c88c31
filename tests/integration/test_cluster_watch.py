"""``ClusterWatch`` (what ``verify --watch`` follows) against the real kube-apiserver.

Changes arrive through the watches, normalised as a live read hands them out (v1 storage as v3
manifests, Nodes as metadata only). Through the fault-injecting proxy: a 410 Gone on a watch makes
that resource be listed again, a 500 is reported and retried, and ``close`` returns promptly even
while watches hang.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bgpflat.adapters.kube import CalicoApi, KubeClient
from bgpflat.adapters.kube.watch import CLOSE_WAIT, ClusterWatch

sys.path.insert(0, str(Path(__file__).parent))
from faultproxy import FaultProxy, Rule

pytestmark = pytest.mark.integration

V1 = "crd.projectcalico.org/v1"


def wait_until(watch: ClusterWatch, condition: Any, what: str, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        objects = watch.objects()
        if condition(objects):
            return objects
        watch.wait(0.5, since=watch.generation)
    pytest.fail(f"the watch did not show {what} within {timeout:g} s")


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


@pytest.mark.parametrize("flavour", ["v1", "apiserver"])
def test_changes_arrive_through_the_watches(flavour: str, request: pytest.FixtureRequest) -> None:
    """Also through Calico's aggregated API server, which serves the Calico kinds' watches itself."""
    plane = request.getfixturevalue(f"kube_{flavour}")
    plane.seed_scenario("calico-bgp")
    watch = ClusterWatch(CalicoApi(plane.client()))
    watch.start()
    try:
        objects = watch.objects()
        node = named(objects, "Node", "node-1")
        assert node is not None and "status" not in node and "managedFields" not in node["metadata"]
        with plane.client() as client:
            client.create_object(
                {
                    "apiVersion": V1,
                    "kind": "BGPPeer",
                    "metadata": {"name": "watched"},
                    "spec": {"peerIP": "192.0.2.1", "asNumber": 65001},
                }
            )
            peer = named(
                wait_until(watch, lambda o: named(o, "BGPPeer", "watched"), "the new BGPPeer"), "BGPPeer", "watched"
            )
            assert peer is not None and peer["apiVersion"] == "projectcalico.org/v3"  # as a live read shows it
            client.request(
                "PATCH",
                "/api/v1/nodes/node-1",
                body={"metadata": {"labels": {"watched": "yes"}}},
                content_type="application/merge-patch+json",
                action="label node-1",
            )
            labelled = wait_until(
                watch,
                lambda o: (named(o, "Node", "node-1") or {})["metadata"].get("labels", {}).get("watched"),
                "the label",
            )
            assert "status" not in (named(labelled, "Node", "node-1") or {})
            client.delete_object(V1, "BGPPeer", "watched")
            wait_until(watch, lambda o: named(o, "BGPPeer", "watched") is None, "the deletion")
        assert watch.relists == 0
    finally:
        watch.close()


def test_gone_lists_again_and_errors_are_retried(kube_v1: Any, proxy: FaultProxy, tmp_path: Path) -> None:
    kube_v1.seed_scenario("calico-bgp")
    gone = proxy.add(Rule("GET", "ipamblocks?resourceVersion", status=410))
    failed = proxy.add(Rule("GET", "nodes?resourceVersion", status=500))
    errors: list[str] = []
    api = CalicoApi(KubeClient.connect(kubeconfig=str(proxy.write_kubeconfig(tmp_path / "proxy.kubeconfig"))))
    watch = ClusterWatch(api, on_error=errors.append)
    watch.start()
    try:

        def lists() -> list[str]:
            # A list is the collection's path alone (one request, no limit); a watch has a query.
            return [path for _, path, _ in proxy.log if path.endswith("/ipamblocks")]

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (len(lists()) == 2 and errors):
            time.sleep(0.1)
        assert gone.fired == 1 and failed.fired == 1
        assert watch.relists == 1
        assert len(lists()) == 2, proxy.log  # the first list, and the one after 410 Gone
        assert any(e.startswith("watch of nodes: ") and "(again in 1 s)" in e for e in errors), errors
        assert named(watch.objects(), "IPAMBlock", "10-233-65-0-24") is not None
    finally:
        started = time.monotonic()
        watch.close()  # the proxy holds every other watch open without answering
        assert time.monotonic() - started < CLOSE_WAIT + 2
        api.close()
