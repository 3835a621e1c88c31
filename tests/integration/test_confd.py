"""Calico's own confd renders BIRD configuration from objects in a real kube-apiserver.

confd is built from the Go module proxy once (``bgpflat.lab.confd.ensure_confd``, minutes on a cold
cache) and run (watching until its output settles) against the session's
``crd.projectcalico.org/v1`` server. The rendered files are then parsed by stock BIRD 1.6
(``bird -p``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from bgpflat.errors import LabError
from bgpflat.lab.confd import (
    check_with_bird,
    default_templates_dir,
    ensure_confd,
    render_bird_config,
    without_krt_tunnel,
)
from bgpflat.lab.controlplane.seed import block_affinity_labels
from bgpflat.lab.controlplane.server import ControlPlane

sys.path.insert(0, str(Path(__file__).parent))
from rawapi import raw_api

pytestmark = pytest.mark.integration

NODE = "confd-node-a"
NODE_IP = "192.0.2.11"
NODE_AS = 64512
POOL = "10.244.0.0/16"
BLOCK = "10.244.1.0/26"
PEER_IP = "192.0.2.1"
PEER_AS = 64513
CRD = "crd.projectcalico.org/v1"


@pytest.fixture(scope="module")
def confd_binary() -> Path:
    try:
        return ensure_confd(progress=lambda line: print(line, file=sys.__stderr__, flush=True))
    except LabError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"confd unavailable in CI: {exc}", pytrace=False)
        pytest.skip(f"confd cannot be built here: {exc}")


@pytest.fixture(scope="module")
def confd_templates() -> Path:
    try:
        return default_templates_dir()
    except LabError as exc:
        pytest.skip(f"Calico's confd templates cannot be fetched: {exc}")


@pytest.fixture(scope="module")
def stock_bird() -> str:
    bird = shutil.which("bird") or shutil.which("bird", path="/usr/sbin:/sbin")
    if bird is None:
        pytest.skip("stock BIRD 1.6 (bird) is not installed")
    return bird


def _create(plane: ControlPlane, obj: dict[str, Any]) -> None:
    rest = raw_api(plane)
    rest.must("POST", rest.collection_path(obj["apiVersion"], obj["kind"]), obj)


def _seed_one_node(plane: ControlPlane) -> None:
    """A node with one confirmed block of a no-encapsulation pool, mesh off, one global peer."""
    _create(
        plane,
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "labels": {"kubernetes.io/hostname": NODE},
                "annotations": {
                    "projectcalico.org/IPv4Address": f"{NODE_IP}/24",
                    "projectcalico.org/ASNumber": str(NODE_AS),
                },
            },
        },
    )
    _create(
        plane,
        {
            "apiVersion": CRD,
            "kind": "IPPool",
            "metadata": {"name": "pool-a"},
            "spec": {
                "cidr": POOL,
                "blockSize": 26,
                "ipipMode": "Never",
                "vxlanMode": "Never",
                "natOutgoing": True,
                "nodeSelector": "all()",
            },
        },
    )
    _create(
        plane,
        {
            "apiVersion": CRD,
            "kind": "BlockAffinity",
            "metadata": {"name": f"{NODE}-10-244-1-0-26", "labels": block_affinity_labels(NODE, BLOCK)},
            "spec": {"cidr": BLOCK, "node": NODE, "state": "confirmed", "deleted": "false", "type": "host"},
        },
    )
    _create(
        plane,
        {
            "apiVersion": CRD,
            "kind": "BGPConfiguration",
            "metadata": {"name": "default"},
            "spec": {"asNumber": NODE_AS, "nodeToNodeMeshEnabled": False},
        },
    )
    _create(
        plane,
        {
            "apiVersion": CRD,
            "kind": "BGPPeer",
            "metadata": {"name": "tor-a"},
            "spec": {"peerIP": PEER_IP, "asNumber": PEER_AS},
        },
    )


def test_confd_renders_blackhole_and_peer_that_stock_bird_parses(
    kube_v1: ControlPlane, confd_binary: Path, confd_templates: Path, stock_bird: str, tmp_path: Path
) -> None:
    _seed_one_node(kube_v1)

    out = render_bird_config(
        kubeconfig=kube_v1.kubeconfig,
        node_name=NODE,
        out_dir=tmp_path / "rendered",
        templates_dir=confd_templates,
        confd=confd_binary,
    )

    bird_cfg = (out / "bird.cfg").read_text()
    aggr_cfg = (out / "bird_aggr.cfg").read_text()
    ipam_cfg = (out / "bird_ipam.cfg").read_text()
    assert 'include "bird_aggr.cfg";' in bird_cfg
    assert f"router id {NODE_IP};" in bird_cfg
    assert f"local as {NODE_AS};" in bird_cfg
    # The node's block: a blackhole static route, and exported as the block only.
    assert f"route {BLOCK} blackhole;" in aggr_cfg
    assert f"if ( net = {BLOCK} ) then {{ accept; }}" in aggr_cfg
    # The global BGPPeer: one BGP session, named after the peer's address.
    peer_protocol = f"protocol bgp Global_{PEER_IP.replace('.', '_')} from bgp_template"
    assert peer_protocol in bird_cfg
    assert f"neighbor {PEER_IP} as {PEER_AS};" in bird_cfg
    assert bird_cfg.count("protocol bgp ") == 1, "mesh is off: no node-to-node sessions"
    # The pool is exported to BGP peers.
    assert f"if ( net ~ {POOL} ) then {{" in ipam_cfg

    # Stock BIRD 1.6 parses everything but Calico's fork-only krt_tunnel attribute, which Calico
    # up to v3.31 sets (to "") for every non-VXLAN pool.
    raw = check_with_bird(out / "bird.cfg", bird=stock_bird)
    if "krt_tunnel" in ipam_cfg:
        assert not raw.ok
        assert "bird_ipam.cfg" in raw.output and "You may set only variables" in raw.output, raw.output
        stock = tmp_path / "stock-bird"
        assert without_krt_tunnel(out, stock) >= 1
        parsed = check_with_bird(stock / "bird.cfg", bird=stock_bird)
        assert parsed.ok, parsed.output
    else:
        assert raw.ok, raw.output


def test_block_affinity_without_calico_labels_is_invisible_to_confd(
    kube_v1: ControlPlane, confd_binary: Path, confd_templates: Path, tmp_path: Path
) -> None:
    """confd finds a node's block affinities by label, not by spec.node."""
    _seed_one_node(kube_v1)
    _create(
        kube_v1,
        {
            "apiVersion": CRD,
            "kind": "BlockAffinity",
            "metadata": {"name": f"{NODE}-10-244-2-0-26"},
            "spec": {"cidr": "10.244.2.0/26", "node": NODE, "state": "confirmed", "deleted": "false", "type": "host"},
        },
    )

    out = render_bird_config(
        kubeconfig=kube_v1.kubeconfig,
        node_name=NODE,
        out_dir=tmp_path / "rendered",
        templates_dir=confd_templates,
        confd=confd_binary,
    )

    aggr_cfg = (out / "bird_aggr.cfg").read_text()
    assert f"route {BLOCK} blackhole;" in aggr_cfg
    assert "10.244.2.0/26" not in aggr_cfg


def test_every_render_has_the_service_routes_the_bgp_configuration_asks_for(
    kube_v1: ControlPlane, confd_binary: Path, confd_templates: Path, tmp_path: Path
) -> None:
    """With aggregation Disabled, a Service with an endpoint on the node gets a /32 on every render.

    ``confd -onetime`` sometimes rendered before its route generator had applied the
    BGPConfiguration (2 renders in 40 without any Service /32); rendering as calico-node does,
    until the output settles, must never miss them.
    """
    _seed_one_node(kube_v1)
    rest = raw_api(kube_v1)
    patch = {"spec": {"serviceClusterIPs": [{"cidr": "10.233.0.0/18"}], "serviceLoadBalancerAggregation": "Disabled"}}
    rest.must(
        "PATCH",
        f"{rest.collection_path(CRD, 'BGPConfiguration')}/default",
        patch,
        content_type="application/merge-patch+json",
    )
    service = rest.must(
        "POST",
        "/api/v1/namespaces/default/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
    )
    cluster_ip = service["spec"]["clusterIP"]
    _create(
        kube_v1,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": NODE, "conditions": {"ready": True}}],
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    )
    missing = 0
    for attempt in range(8):
        out = render_bird_config(
            kubeconfig=kube_v1.kubeconfig,
            node_name=NODE,
            out_dir=tmp_path / f"rendered-{attempt}",
            templates_dir=confd_templates,
            confd=confd_binary,
        )
        missing += f"route {cluster_ip}/32 blackhole;" not in (out / "bird_aggr.cfg").read_text()
    assert missing == 0, f"{missing} of 8 renders lack the Service's /32"
