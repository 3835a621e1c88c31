"""The lab's confd-shaped BIRD configs: what calico/node would render, and stock BIRD 1.6 accepts.

Every config rendered here is also parsed by ``bird -p -c`` (skipped when BIRD is not installed),
so a template change that BIRD would refuse fails here, not in the lab.
"""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from bgpflat.lab.fabric.calico_bird import (
    BirdConfig,
    CalicoDatastore,
    filter_function_name,
    filter_functions,
    render_node,
    service_routes,
)

LABS = Path(__file__).resolve().parents[2] / "labs"
Obj = dict[str, Any]


def scenario_objects(name: str = "calico-bgp") -> list[Obj]:
    return [d for d in yaml.safe_load_all((LABS / name / "cluster.yaml").read_text()) if d]


def calico(kind: str, name: str, spec: Mapping[str, Any]) -> Obj:
    return {"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": {"name": name}, "spec": dict(spec)}


def node(name: str, address: str, labels: Mapping[str, str] | None = None, **annotations: str) -> Obj:
    notes = {"projectcalico.org/IPv4Address": address, **{k.replace("_", "/", 1): v for k, v in annotations.items()}}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": dict(labels or {}), "annotations": notes},
    }


DEFAULT = calico(
    "BGPConfiguration",
    "default",
    {
        "asNumber": 64513,
        "listenPort": 179,
        "nodeToNodeMeshEnabled": True,
        "serviceClusterIPs": [{"cidr": "10.233.0.0/18"}],
    },
)
PEER_SWITCH = calico(
    "BGPPeer",
    "peer-switch",
    {"asNumber": 65200, "peerIP": "10.200.20.254", "nodeSelector": "node-role.kubernetes.io/ingress == 'ingress'"},
)


def after_apply() -> list[Obj]:
    objects = copy.deepcopy(scenario_objects())
    for obj in objects:
        if obj["kind"] == "IPPool":
            obj["spec"]["ipipMode"] = "Never"
    return [*objects, copy.deepcopy(DEFAULT), copy.deepcopy(PEER_SWITCH)]


def render(objects: list[Obj], node_name: str, tmp_path: Path) -> BirdConfig:
    """Render a node's config and have ``bird -p`` parse it (with its includes) when BIRD is here."""
    config = render_node(objects, node_name)
    if shutil.which("bird") is not None:
        directory = tmp_path / node_name
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in render_node(objects, node_name, include_dir=str(directory)).files().items():
            (directory / name).write_text(text)
        result = subprocess.run(
            ["bird", "-p", "-c", str(directory / "bird.cfg")], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"bird -p refused {node_name}'s config:\n{result.stderr}\n{config.bird_cfg}"
    return config


def protocol(text: str, name: str) -> str:
    """The body of ``protocol bgp <name> …{ … }`` in a rendered config."""
    start = text.index(f"protocol bgp {name} ")
    return text[start : text.index("\n}", start) + 2]


# -- scenario D ------------------------------------------------------------------------------------
def test_ingress_nodes_peer_with_the_switch_as_ebgp_and_the_others_do_not(tmp_path: Path) -> None:
    objects = after_apply()
    node1 = render(objects, "node-1", tmp_path).bird_cfg
    node3 = render(objects, "node-3", tmp_path).bird_cfg
    switch = protocol(node1, "Node_10_200_20_254")
    assert "neighbor 10.200.20.254 as 65200;" in switch
    assert "source address 10.200.20.103;" in switch
    assert "ttl security off;\n  multihop;" in switch
    assert "calico_export_to_bgp_peers(false);" in switch  # eBGP: not internal
    assert "passive on" not in switch and "next hop keep" not in switch
    assert "Node_10_200_20_254" not in node3
    assert "local as 64513;" in node1 and "listen bgp port 179;" in node1
    assert "router id 10.200.20.103;" in node1


def test_mesh_sessions_are_passive_towards_higher_addresses(tmp_path: Path) -> None:
    text = render(after_apply(), "node-2", tmp_path).bird_cfg
    lower, higher = protocol(text, "Mesh_10_200_20_103"), protocol(text, "Mesh_10_200_20_105")
    assert "passive on" not in lower
    assert "passive on" in higher
    assert "neighbor 10.200.20.105 port 179 as 64513;" in higher
    assert "calico_export_to_bgp_peers(true);" in higher and "import all;" in higher
    assert "# Skipping ourselves (10.200.20.104)" in text


def test_blocks_and_the_service_range_are_originated_and_aggregated(tmp_path: Path) -> None:
    config = render(after_apply(), "node-1", tmp_path)
    assert "   route 10.233.65.0/24 blackhole;" in config.bird_aggr_cfg
    assert "   route 10.233.0.0/18 blackhole;" in config.bird_aggr_cfg
    assert "10.233.92.0/24" not in config.bird_aggr_cfg  # node-2's block
    assert "if ( net = 10.233.65.0/24 ) then { accept; }" in config.bird_aggr_cfg
    assert "if ( net ~ 10.233.65.0/24 ) then { reject; }" in config.bird_aggr_cfg
    ipam = config.bird_ipam_cfg
    assert "  if ( net ~ 10.233.0.0/18 ) then { accept; }" in ipam  # static (service) routes
    assert "  if ( net ~ 10.233.64.0/18 ) then {\n    accept;\n  }" in ipam  # the pool
    assert "krt_tunnel" not in ipam  # stock BIRD 1.6 has no such attribute
    kernel = ipam[ipam.index("filter calico_kernel_programming") :]
    assert "if ( net ~ 10.233.0.0/18 ) then { reject; }" in kernel  # learned service routes stay out


def test_before_apply_the_defaults_of_confd_apply(tmp_path: Path) -> None:
    config = render(scenario_objects(), "node-1", tmp_path)
    assert "local as 64512;" in config.bird_cfg
    assert "listen bgp" not in config.bird_cfg
    assert "# No global peers configured." in config.bird_cfg
    assert "# No node-specific peers configured." in config.bird_cfg
    assert "Mesh_10_200_20_104" in config.bird_cfg
    assert "# Static routes." not in config.bird_aggr_cfg
    assert "# ipipMode Always" in config.bird_ipam_cfg


def test_every_scenario_node_config_parses(tmp_path: Path) -> None:
    for scenario in ("calico-bgp", "ipip-migration"):
        objects = scenario_objects(scenario)
        for obj in objects:
            if obj["kind"] == "Node":
                render(objects, obj["metadata"]["name"], tmp_path / scenario)


# -- services --------------------------------------------------------------------------------------
def _lb_service(policy: str) -> list[Obj]:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.233.0.50",
            "externalTrafficPolicy": policy,
            "externalIPs": ["10.250.0.7"],
            "ports": [{"port": 80}],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "10.251.0.9"}]}},
    }
    eps = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.233.110.9"], "conditions": {"ready": True}, "nodeName": "node-3"}],
    }
    config = copy.deepcopy(DEFAULT)
    config["spec"]["serviceExternalIPs"] = [{"cidr": "10.250.0.0/24"}]
    config["spec"]["serviceLoadBalancerIPs"] = [{"cidr": "10.251.0.0/24"}]
    objects = [o for o in after_apply() if o["kind"] != "BGPConfiguration"]
    return [*objects, config, svc, eps]


def test_etp_local_services_get_host_routes_only_where_an_endpoint_runs(tmp_path: Path) -> None:
    objects = _lb_service("Local")
    ds = CalicoDatastore.from_objects(objects)
    node3 = service_routes(ds, ds.node("node-3"))
    node1 = service_routes(ds, ds.node("node-1"))
    assert {"10.233.0.50/32", "10.250.0.7/32", "10.251.0.9/32"} <= set(node3.static)
    assert not any(r.endswith("/32") for r in node1.static)
    assert set(node1.static) == {"10.233.0.0/18", "10.250.0.0/24", "10.251.0.0/24"}
    render(objects, "node-3", tmp_path)


def test_etp_cluster_services_need_no_host_routes(tmp_path: Path) -> None:
    ds = CalicoDatastore.from_objects(_lb_service("Cluster"))
    assert not any(r.endswith("/32") for r in service_routes(ds, ds.node("node-3")).static)


def test_nodes_excluded_from_load_balancers_advertise_no_service_routes(tmp_path: Path) -> None:
    objects = _lb_service("Local")
    for obj in objects:
        if obj["kind"] == "Node" and obj["metadata"]["name"] == "node-3":
            obj["metadata"]["labels"]["node.kubernetes.io/exclude-from-external-load-balancers"] = "true"
    ds = CalicoDatastore.from_objects(objects)
    routes = service_routes(ds, ds.node("node-3"))
    assert routes.static == ()
    assert "10.233.0.0/18" in routes.reject  # learned copies still stay out of the kernel
    config = render(objects, "node-3", tmp_path)
    assert "# Static routes." not in config.bird_aggr_cfg


def test_ipv6_service_ranges_stay_out_of_the_ipv4_config(tmp_path: Path) -> None:
    objects = after_apply()
    for obj in objects:
        if obj["kind"] == "BGPConfiguration":
            obj["spec"]["serviceClusterIPs"] = [{"cidr": "10.233.0.0/18"}, {}, {"cidr": "fd00:96::/112"}]
    config = render(objects, "node-1", tmp_path)
    assert "fd00" not in config.bird_aggr_cfg + config.bird_ipam_cfg
    assert "route 10.233.0.0/18 blackhole;" in config.bird_aggr_cfg


# -- pools and affinities --------------------------------------------------------------------------
def test_disable_bgp_export_rejects_the_pool_everywhere(tmp_path: Path) -> None:
    objects = after_apply()
    for obj in objects:
        if obj["kind"] == "IPPool":
            obj["spec"]["disableBGPExport"] = True
    ipam = render(objects, "node-1", tmp_path).bird_ipam_cfg
    assert "  if ( net ~ 10.233.64.0/18 ) then { reject; }" in ipam
    assert "# Skip 10.233.64.0/18 as BGP export is disabled for it" in ipam


def test_pending_affinities_are_dropped_and_pending_deletion_is_not_aggregated(tmp_path: Path) -> None:
    objects = after_apply()
    objects.append(
        {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "BlockAffinity",
            "metadata": {"name": "node-1-10-233-66-0-24"},
            "spec": {"cidr": "10.233.66.0/24", "node": "node-1", "state": "pending", "deleted": "false"},
        }
    )
    objects.append(
        {
            "apiVersion": "crd.projectcalico.org/v1",
            "kind": "BlockAffinity",
            "metadata": {"name": "node-1-10-233-67-0-24"},
            "spec": {"cidr": "10.233.67.0/24", "node": "node-1", "state": "pendingDeletion", "deleted": "false"},
        }
    )
    aggr = render(objects, "node-1", tmp_path).bird_aggr_cfg
    assert "10.233.66.0/24" not in aggr
    assert "route 10.233.67.0/24 blackhole;" in aggr
    assert "# Block 10.233.67.0/24 is pendingDeletion" in aggr
    assert "if ( net = 10.233.67.0/24 )" not in aggr


# -- peers -----------------------------------------------------------------------------------------
def test_peer_options_are_rendered_like_confd(tmp_path: Path) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "bgp", "namespace": "calico-system"},
        "data": {"tor": base64.b64encode(b"s3cret").decode()},
    }
    peer = calico(
        "BGPPeer",
        "tor",
        {
            "peerIP": "10.200.20.254:1179",
            "asNumber": 65200,
            "ttlSecurity": 2,
            "maxRestartTime": "2m30s",
            "keepOriginalNextHop": True,
            "numAllowedLocalASNumbers": 1,
            "reachableBy": "10.200.20.21",
            "password": {"secretKeyRef": {"name": "bgp", "key": "tor"}},
        },
    )
    objects = [*[o for o in after_apply() if o["kind"] != "BGPPeer"], peer, secret]
    config = render(objects, "node-3", tmp_path)
    block = protocol(config.bird_cfg, "Global_10_200_20_254_port_1179")
    for line in (
        "ttl security on;",
        "multihop 2;",
        "neighbor 10.200.20.254 port 1179 as 65200;",
        "graceful restart time 150;",
        'password "s3cret";',
        "next hop keep;",
        "allow local as 1;",
    ):
        assert f"  {line}" in block, line
    assert "route 10.200.20.254/32 via 10.200.20.21;" in config.bird_aggr_cfg


def test_next_hop_mode_and_ibgp_keep(tmp_path: Path) -> None:
    ibgp_keep = calico("BGPPeer", "rr", {"peerIP": "10.200.20.10", "asNumber": 64513, "keepOriginalNextHop": True})
    self_mode = calico("BGPPeer", "tor", {"peerIP": "10.200.20.254", "asNumber": 65200, "nextHopMode": "Self"})
    keep_mode = calico("BGPPeer", "rr2", {"peerIP": "10.200.20.11", "asNumber": 64513, "nextHopMode": "Keep"})
    objects = [*[o for o in after_apply() if o["kind"] != "BGPPeer"], ibgp_keep, self_mode, keep_mode]
    text = render(objects, "node-1", tmp_path).bird_cfg
    assert "next hop keep" not in protocol(text, "Global_10_200_20_10")  # keepOriginalNextHop is eBGP-only
    assert "calico_export_to_bgp_peers(true);" in protocol(text, "Global_10_200_20_10")
    assert "  next hop self;" in protocol(text, "Global_10_200_20_254")
    assert "  next hop keep;" in protocol(text, "Global_10_200_20_11")


def test_a_peer_that_is_a_calico_node_peers_back_and_the_higher_side_waits(tmp_path: Path) -> None:
    # node-3 peers with node-1 explicitly (mesh off): node-1 gets the reverse peering.
    config = copy.deepcopy(DEFAULT)
    config["spec"]["nodeToNodeMeshEnabled"] = False
    peer = calico("BGPPeer", "n3-n1", {"node": "node-3", "peerIP": "10.200.20.103", "asNumber": 64513})
    global_peer = calico("BGPPeer", "all-n2", {"peerIP": "10.200.20.104", "asNumber": 64513})
    objects = [
        *[o for o in after_apply() if o["kind"] not in ("BGPPeer", "BGPConfiguration")],
        config,
        peer,
        global_peer,
    ]
    node1 = render(objects, "node-1", tmp_path).bird_cfg
    node3 = render(objects, "node-3", tmp_path).bird_cfg
    assert "# Node-to-node mesh disabled" in node1
    # Peers that are Calico nodes are reached on their listen port (179 here), as confd writes it.
    assert "protocol bgp Node_10_200_20_105_port_179 " in node1  # the reverse peering
    assert "protocol bgp Node_10_200_20_103_port_179 " in node3
    # A global peer that is a Calico node: passive towards the higher address.
    assert "passive on" in protocol(node1, "Global_10_200_20_104_port_179")
    assert "passive on" not in protocol(node3, "Global_10_200_20_104_port_179")


def test_route_reflector_skips_the_mesh_and_reflects_to_same_as_peers(tmp_path: Path) -> None:
    objects = after_apply()
    for obj in objects:
        if obj["kind"] == "Node" and obj["metadata"]["name"] == "node-1":
            obj["metadata"]["annotations"]["projectcalico.org/RouteReflectorClusterID"] = "244.0.0.1"
    objects.append(calico("BGPPeer", "to-rr", {"peerSelector": "all()", "nodeSelector": "all()"}))
    node1 = render(objects, "node-1", tmp_path).bird_cfg
    node2 = render(objects, "node-2", tmp_path).bird_cfg
    assert "configured as a route reflector with cluster ID 244.0.0.1" in node1
    assert "Mesh_" not in node1
    assert "as it is a route reflector with cluster ID 244.0.0.1" in node2
    assert "rr client;" in protocol(node1, "Node_10_200_20_104_port_179")
    assert "rr cluster id 244.0.0.1;" in protocol(node1, "Node_10_200_20_104_port_179")
    assert "rr client" not in protocol(node2, "Node_10_200_20_103_port_179")


# -- filters and communities -----------------------------------------------------------------------
def test_bgp_filters_compile_like_calicos_template_funcs() -> None:
    bgp_filter = calico(
        "BGPFilter",
        "test-bgpfilter",
        {
            "exportV4": [
                {"action": "Accept", "matchOperator": "In", "cidr": "77.0.0.0/16"},
                {"action": "Reject", "matchOperator": "In", "cidr": "77.1.0.0/16"},
            ],
            "importV4": [
                {"action": "Accept", "matchOperator": "In", "cidr": "44.0.0.0/16"},
                {"action": "Reject", "matchOperator": "NotIn", "cidr": "44.1.0.0/16", "prefixLength": {"min": 24}},
                {"action": "Reject", "source": "RemotePeers", "interface": "eth*"},
            ],
        },
    )
    assert filter_functions([bgp_filter]) == [
        "# v4 BGPFilter test-bgpfilter",
        "function 'bgp_test-bgpfilter_importFilterV4'() {",
        "  if ((net ~ 44.0.0.0/16)) then { accept; }",
        "  if ((net !~ [ 44.1.0.0/16{24,32} ])) then { reject; }",
        '  if (((defined(source))&&(source ~ [ RTS_BGP ]))&&((defined(ifname))&&(ifname ~ "eth*"))) then { reject; }',
        "}",
        "function 'bgp_test-bgpfilter_exportFilterV4'() {",
        "  if ((net ~ 77.0.0.0/16)) then { accept; }",
        "  if ((net ~ 77.1.0.0/16)) then { reject; }",
        "}",
    ]


def test_no_filters_leave_a_marker_line_as_confd_does() -> None:
    assert filter_functions([]) == ["# No v4 BGPFilters configured"]


def test_long_filter_names_are_truncated_with_a_hash() -> None:
    name = filter_function_name("x" * 80, "export")
    assert len(name) == 64 + 2 and name.startswith("'bgp_xxx") and name.endswith("_exportFilterV4'")
    assert filter_function_name("x" * 80, "export") != filter_function_name("x" * 79 + "y", "export")


def test_filters_run_before_calicos_export_and_the_config_parses(tmp_path: Path) -> None:
    bgp_filter = calico("BGPFilter", "no-remote", {"exportV4": [{"action": "Reject", "source": "RemotePeers"}]})
    peer = copy.deepcopy(PEER_SWITCH)
    peer["spec"]["filters"] = ["no-remote", "missing"]
    objects = [*[o for o in after_apply() if o["kind"] != "BGPPeer"], bgp_filter, peer]
    block = protocol(render(objects, "node-1", tmp_path).bird_cfg, "Node_10_200_20_254")
    assert block.index("'bgp_no-remote_exportFilterV4'();") < block.index("calico_export_to_bgp_peers(false);")
    assert "missing" not in block


def test_node_prefix_advertisements_replace_the_global_ones(tmp_path: Path) -> None:
    config = copy.deepcopy(DEFAULT)
    config["spec"]["communities"] = [{"name": "office", "value": "64513:100"}]
    config["spec"]["prefixAdvertisements"] = [{"cidr": "10.233.64.0/18", "communities": ["office", "64513:1:2"]}]
    node_config = calico("BGPConfiguration", "node.node-2", {"prefixAdvertisements": []})
    objects = [*[o for o in after_apply() if o["kind"] != "BGPConfiguration"], config, node_config]
    node1 = render(objects, "node-1", tmp_path).bird_cfg
    node2 = render(objects, "node-2", tmp_path).bird_cfg
    assert "bgp_community.add((64513, 100));" in node1
    assert "bgp_large_community.add((64513, 1, 2));" in node1
    assert "bgp_community" not in node2
