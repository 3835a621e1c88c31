"""External services (scenario E): validation with file/line/path/fix, manifests, and the plan."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from bgpflat.adapters.files import parse_documents
from bgpflat.core.external import (
    LEGACY_PLAN_KIND,
    ExternalService,
    desired_manifests,
    endpoint_slice_manifests,
    is_external_plan,
    make_external_plan,
    parse_external,
    refuse_legacy_plan,
    restore_patch,
    service_manifest,
)
from bgpflat.core.external import manifest_key as object_key
from bgpflat.core.plan.planner import Action, Plan
from bgpflat.errors import PlanError, SpecError
from bgpflat.views.plan import external_plan_text

GOOD = """\
version: 1
services:
  - name: external-service
    namespace: default
    ports:
      - {name: mysql, port: 30056, targetPort: 3306, protocol: TCP, appProtocol: http}
    addresses: [192.168.26.81, 192.168.26.82]
"""


def parse(text: str) -> tuple[ExternalService, ...]:
    (document,) = parse_documents(text, file="services.yaml")
    return parse_external(document)


def error(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse(text)
    return caught.value


def test_scenario_e_service_and_slice() -> None:
    (service,) = parse(GOOD)
    manifest = service_manifest(service)
    assert manifest["spec"] == {
        "type": "ClusterIP",
        "ports": [{"name": "mysql", "protocol": "TCP", "port": 30056, "targetPort": 3306, "appProtocol": "http"}],
        "sessionAffinity": "None",
    }
    assert "selector" not in manifest["spec"]
    (slice_,) = endpoint_slice_manifests(service)
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "external-service"
    assert slice_["addressType"] == "IPv4"
    assert [e["addresses"] for e in slice_["endpoints"]] == [["192.168.26.81"], ["192.168.26.82"]]
    assert slice_["ports"] == [{"name": "mysql", "protocol": "TCP", "port": 3306, "appProtocol": "http"}]


def test_dual_stack_gets_a_slice_per_family() -> None:
    (service,) = parse(GOOD.replace("192.168.26.82]", "192.168.26.82, 'fd00::5']"))
    assert [s["addressType"] for s in endpoint_slice_manifests(service)] == ["IPv4", "IPv6"]
    assert service_manifest(service)["spec"]["ipFamilyPolicy"] == "PreferDualStack"


def test_legacy_endpoints_for_old_clusters() -> None:
    manifests = desired_manifests(parse(GOOD), legacy_endpoints=True)
    assert [m["kind"] for m in manifests] == ["Service", "Endpoints"]
    assert manifests[1]["subsets"][0]["addresses"] == [{"ip": "192.168.26.81"}, {"ip": "192.168.26.82"}]


def test_external_name_is_dns_only() -> None:
    (service,) = parse("services:\n  - name: wiki\n    externalName: wiki.example.com.\n")
    assert service_manifest(service)["spec"] == {"type": "ExternalName", "externalName": "wiki.example.com"}
    assert desired_manifests([service]) == [service_manifest(service)]


@pytest.mark.parametrize(
    ("text", "path", "line", "needle"),
    [
        (GOOD.replace("name: external-service", "name: External_Service"), "services[0].name", 3, "DNS-1035"),
        (GOOD.replace("192.168.26.82", "127.0.0.1"), "services[0].addresses[1]", 7, "127.0.0.0/8"),
        (GOOD.replace("192.168.26.82", "192.168.26.300"), "services[0].addresses[1]", 7, "not an IP address"),
        (GOOD.replace("targetPort: 3306", "targetPort: mysql"), "services[0].ports[0].targetPort", 6, "a name"),
        (GOOD.replace("port: 30056", "port: 70000"), "services[0].ports[0].port", 6, "1 to 65535"),
        (GOOD.replace("protocol: TCP", "protocol: tcp"), "services[0].ports[0].protocol", 6, "unknown protocol"),
        (GOOD.replace("namespace: default", "namespce: default"), "services[0].namespce", 4, "unknown field"),
        (GOOD + "    externalName: db.example.com\n", "services[0]", 3, "not both"),
        (GOOD.replace("{name: mysql, ", "{"), None, None, None),  # one unnamed port is fine
        (
            GOOD.replace("appProtocol: http}", "appProtocol: http}\n      - {port: 1, targetPort: 1}"),
            "services[0].ports[1].name",
            7,
            "needs a name",
        ),
        (GOOD + GOOD.split("services:\n")[1], "services[1].name", 8, "listed twice"),
        (GOOD.replace("version: 1", "version: 2"), "version", 1, "unsupported version"),
    ],
)
def test_bad_input_names_file_line_path_and_fix(
    text: str, path: str | None, line: int | None, needle: str | None
) -> None:
    if path is None:
        assert parse(text)
        return
    exc = error(text)
    assert (exc.file, exc.path, exc.line) == ("services.yaml", path, line)
    assert needle is not None and needle in exc.message
    assert exc.fix


def test_external_name_must_be_a_name_not_an_ip() -> None:
    exc = error("services:\n  - name: db\n    externalName: 192.168.26.81\n")
    assert exc.path == "services[0].externalName" and "addresses" in (exc.fix or "")


def test_external_name_cannot_map_ports() -> None:
    exc = error(
        "services:\n  - name: db\n    externalName: db.example.com\n    ports: [{port: 80, targetPort: 8080}]\n"
    )
    assert exc.path == "services[0].ports[0].targetPort"


# --- plan --------------------------------------------------------------------------------------------


def served(manifest: dict[str, Any], rv: str = "7") -> dict[str, Any]:
    """The object as the API server returns it: defaults filled in, metadata added."""
    obj = copy.deepcopy(manifest)
    obj["metadata"].update(resourceVersion=rv, uid="u-1")
    if obj["kind"] == "Service" and obj["spec"]["type"] == "ClusterIP":
        obj["spec"].update(clusterIP="10.233.12.4", clusterIPs=["10.233.12.4"], ipFamilies=["IPv4"])
        obj["spec"].setdefault("sessionAffinity", "None")
    if obj["kind"] == "EndpointSlice":
        obj["endpoints"] = list(reversed(obj["endpoints"]))  # order is not meaning
    return obj


def test_plan_creates_then_finds_nothing_to_do() -> None:
    desired = desired_manifests(parse(GOOD))
    first = make_external_plan(desired=desired, observed={})
    assert [(c.action, c.key) for c in first.changes] == [
        ("create", "Service/default/external-service"),
        ("create", "EndpointSlice/default/external-service-ipv4"),
    ]
    assert [s.name for s in first.stages] == ["services", "endpoints"]  # the Service exists first
    observed = {object_key(m): served(m) for m in desired}
    again = make_external_plan(desired=desired, observed=observed)
    assert not again.has_changes
    assert str(again.summary) == "Plan: 0 to add, 0 to change, 0 to delete."
    assert external_plan_text(again) == (
        "  Service/default/external-service\n"
        "  EndpointSlice/default/external-service-ipv4\n"
        "Plan: 0 to add, 0 to change, 0 to delete.\n"
    )


def test_plan_updates_only_owned_fields_with_the_resource_version() -> None:
    desired = desired_manifests(parse(GOOD))
    observed = {object_key(m): served(m) for m in desired}
    moved = desired_manifests(parse(GOOD.replace("192.168.26.82", "192.168.26.83")))
    plan = make_external_plan(desired=moved, observed=observed)
    (change,) = [c for c in plan.changes if c.action is Action.UPDATE]
    assert change.key == "EndpointSlice/default/external-service-ipv4"
    assert [f.path for f in change.fields] == ["endpoints"]
    assert change.resource_version == "7"
    assert change.patch is not None
    assert [e["addresses"] for e in change.patch["endpoints"]] == [["192.168.26.81"], ["192.168.26.83"]]
    assert external_plan_text(plan) == (
        "  Service/default/external-service\n"
        "~ EndpointSlice/default/external-service-ipv4 (endpoints)\n"
        "Plan: 0 to add, 1 to change, 0 to delete.\n"
    )


def test_plan_lists_objects_in_the_files_order_whatever_their_names() -> None:
    # "a-b-ipv4" sorts before "a-ipv4", but Service a comes first in the file, so its slice does too.
    services = parse(
        "services:\n  - {name: a, ports: [{port: 1}], addresses: [10.0.0.1]}\n"
        "  - {name: a-b, ports: [{port: 1}], addresses: [10.0.0.2]}\n"
    )
    plan = make_external_plan(desired=desired_manifests(services), observed={})
    assert external_plan_text(plan).splitlines()[:4] == [
        "+ Service/default/a",
        "+ Service/default/a-b",
        "+ EndpointSlice/default/a-ipv4",
        "+ EndpointSlice/default/a-b-ipv4",
    ]


def test_plan_refuses_objects_it_does_not_manage() -> None:
    desired = desired_manifests(parse(GOOD))
    theirs = served(desired[0])
    theirs["metadata"]["labels"] = {"app": "mysql"}
    with pytest.raises(PlanError, match="not managed by bgpflat"):
        make_external_plan(desired=desired, observed={object_key(desired[0]): theirs})


def test_switching_to_external_name_releases_the_cluster_ip() -> None:
    (service,) = parse("services:\n  - name: db\n    ports: [{port: 5432}]\n    addresses: [10.1.2.3]\n")
    before = served(service_manifest(service))
    (renamed,) = parse("services:\n  - name: db\n    externalName: db.example.com\n    ports: [{port: 5432}]\n")
    plan = make_external_plan(desired=[service_manifest(renamed)], observed={object_key(before): before})
    (change,) = plan.changes
    assert change.action is Action.UPDATE and change.patch is not None
    assert change.patch["spec"]["clusterIP"] is None and change.patch["spec"]["type"] == "ExternalName"
    # Rollback puts the ClusterIP Service back over the same owned fields.
    after = served(service_manifest(renamed))
    assert restore_patch("Service", before, after)["spec"]["type"] == "ClusterIP"
    assert restore_patch("Service", before, before) == {}


def test_plan_deletes_managed_endpoints_the_file_no_longer_needs() -> None:
    (service,) = parse(GOOD)
    desired = desired_manifests([service])
    observed = {object_key(m): served(m) for m in desired}
    leftover = served(endpoint_slice_manifests(parse(GOOD.replace("192.168.26.82", "'fd00::5'"))[0])[1], rv="9")
    foreign = {**leftover, "metadata": {**leftover["metadata"], "name": "theirs", "labels": {}}}
    plan = make_external_plan(desired=desired, observed=observed, related=[leftover, foreign])
    assert [(c.action, c.key, c.resource_version) for c in plan.changes] == [
        ("delete", "EndpointSlice/default/external-service-ipv6", "9")
    ]
    assert str(plan.summary) == "Plan: 0 to add, 0 to change, 1 to delete."


def test_prune_deletes_unlisted_managed_services_after_their_endpoints_and_never_foreign_ones() -> None:
    (service,) = parse(GOOD)
    desired = desired_manifests([service])
    observed = {object_key(m): served(m) for m in desired}
    gone = parse(GOOD.replace("external-service", "old-db"))[0]
    gone_service, gone_slice = served(service_manifest(gone), rv="7"), served(endpoint_slice_manifests(gone)[0], rv="8")
    foreign = {**gone_service, "metadata": {**gone_service["metadata"], "name": "theirs", "labels": {}}}
    listed = [served(service_manifest(service)), gone_service, foreign]
    plan = make_external_plan(desired=desired, observed=observed, related=[gone_slice], managed_services=listed)
    assert [(c.action, c.key, c.resource_version) for c in plan.changes] == [
        ("delete", "EndpointSlice/default/old-db-ipv4", "8"),
        ("delete", "Service/default/old-db", "7"),
    ]
    assert plan.prune and plan.observed_versions["Service/default/old-db"] == "7"


def test_saved_plan_round_trips_and_is_told_apart_from_a_calico_plan() -> None:
    (service,) = parse(GOOD)
    desired = desired_manifests([service])
    plan = make_external_plan(desired=desired, observed={object_key(m): None for m in desired})
    data = json.loads(plan.to_json())
    assert data["stages"][0]["changes"][0]["namespace"] == "default"
    assert Plan.from_dict(data) == plan
    assert is_external_plan(plan) and not is_external_plan(Plan(observed_versions={"IPPool/p": "1"}))


def test_a_plan_in_the_old_external_format_is_refused_in_one_line_naming_the_new_one() -> None:
    old = {"kind": LEGACY_PLAN_KIND, "format_version": 1, "changes": [], "observed": {}, "target": {}}
    with pytest.raises(PlanError) as caught:
        refuse_legacy_plan(old, file="plan.json")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("plan.json: ")
    assert "format_version 1" in message and "bgpflat external plan --out" in message
    refuse_legacy_plan({"format_version": 1}, file="plan.json")  # a current plan passes


def test_the_order_of_endpoints_addresses_is_no_difference() -> None:
    (service,) = parse(GOOD.replace("[192.168.26.81, 192.168.26.82]", "[192.168.26.82, 192.168.26.81]"))
    desired = desired_manifests([service], legacy_endpoints=True)
    stored = served(desired[1])
    stored["subsets"][0]["addresses"].reverse()  # repacked, sorted
    plan = make_external_plan(
        desired=desired, observed={object_key(desired[0]): served(desired[0]), object_key(desired[1]): stored}
    )
    assert not plan.has_changes
