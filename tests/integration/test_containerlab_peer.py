"""The verification peer as a container in a containerlab topology that really deploys.

``containerlab/peer-lab.clab.yml`` runs with images built here from Debian packages
(``toolchain/image/build.sh``: FRR ToR, BIRD nodes, office host, and the peer image from
``toolchain/image/Containerfile``) and with containerlab built from the Go module proxy
(``toolchain/containerlab/build.sh``); both are cached, so only the first run is slow. The BIRD nodes
run the configs Calico's confd rendered for scenario D, and the peer container, whose entrypoint is
``bgpflat peer run``, learns their routes. The test checks from inside the peer container, with the
image's own CLI, that ``bgpflat verify`` finds every expected route and that ``bgpflat peer routes``
lists them, that the ToR and the office see the same fabric, then destroys the lab and asserts
that no container, network, link or hosts entry of it is left (the images stay, cached).

The same module shows that a running Docker engine, which sets the host's iptables FORWARD policy
to DROP, does not break the namespace lab: every hop of that lab forwards inside its own namespaces.

Needs root, a running Docker engine (``.ci/run`` starts ``dockerd``), mmdebstrap and Go (or the
cached builds). Without them the tests are skipped with the reason; with ``CI`` set they fail.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import yaml

from bgpflat.lab.fabric.netns import NetnsLab
from tests.integration.netns import skip_unless_root_and

pytestmark = [pytest.mark.integration, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
CLAB_DIR = REPO / "containerlab"
TOPOLOGY = "peer-lab.clab.yml"
PEER_ADDRESS = "10.200.20.250"
STATE_DIR = "/var/lib/bgpflat-peer"
NODE_BLOCKS = {"10.200.20.103": "10.233.65.0/24", "10.200.20.104": "10.233.92.0/24", "10.200.20.105": "10.233.110.0/24"}
SERVICE_RANGE = "10.233.0.0/18"


def unavailable(reason: str) -> None:
    """Skip, or fail in CI, where everything this module needs is installed and started first."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs and starts it in .ci/run)")
    pytest.skip(reason)


def run(
    argv: Sequence[str], *, timeout: float = 120, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def docker_running() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30).returncode == 0


@pytest.fixture(scope="module")
def engine() -> str:
    skip_unless_root_and("iptables")
    if not docker_running():
        unavailable("no Docker engine answers `docker info` (start dockerd)")
    return "docker"


@pytest.fixture(scope="module")
def images(engine: str) -> dict[str, str]:
    """ROLE -> image, built from Debian packages (first run: a few minutes; then cached)."""
    if shutil.which("mmdebstrap") is None and not os.environ.get("CI"):
        pytest.skip("needs mmdebstrap to make the images' root filesystems")
    result = run(["bash", str(REPO / "toolchain" / "image" / "build.sh"), engine], timeout=1800)
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.strip())


@pytest.fixture(scope="module")
def containerlab() -> str:
    """containerlab built from the Go module proxy (cached under ~/.cache/bgpflat/containerlab/)."""
    cached = sorted(Path.home().glob(".cache/bgpflat/containerlab/*/containerlab"))
    if not cached and shutil.which("go") is None:
        unavailable("no cached containerlab build and no Go to build one")
    result = run(["nice", "-n", "10", "bash", str(REPO / "toolchain" / "containerlab" / "build.sh")], timeout=1800)
    return result.stdout.strip().splitlines()[-1]


def lab_containers(name: str) -> list[str]:
    result = run(["docker", "ps", "-a", "--filter", f"label=containerlab={name}", "--format", "{{.Names}}"])
    return result.stdout.split()


def host_links() -> set[str]:
    return {line.split(":", 2)[1].strip().split("@")[0] for line in run(["ip", "-o", "link"]).stdout.splitlines()}


@pytest.fixture(scope="module")
def deployed(
    engine: str, images: dict[str, str], containerlab: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The topology deployed under a name of its own; destroyed (and checked to be gone) afterwards."""
    work = tmp_path_factory.mktemp("clab")
    # A copy under a name of its own (containerlab v0.60's destroy ignores --name, so the name is
    # written into the file), run from its directory, where containerlab puts clab-<name>/.
    name = f"bgpflat-peer-{secrets.token_hex(3)}"
    topology = yaml.safe_load((CLAB_DIR / TOPOLOGY).read_text())
    topology["name"] = name
    topology["mgmt"]["network"] = name
    (work / TOPOLOGY).write_text(yaml.safe_dump(topology, sort_keys=False))
    shutil.copytree(CLAB_DIR / "peer-lab", work / "peer-lab")
    shutil.copytree(CLAB_DIR / "calico-bgp", work / "calico-bgp")
    links_before = host_links()
    clab = [containerlab, "--runtime", engine, "-t", str(work / TOPOLOGY)]
    try:
        run([*clab, "deploy", "--reconfigure"], timeout=600, cwd=work)
        yield name
    finally:
        destroyed = run([*clab, "destroy", "--cleanup"], timeout=300, check=False, cwd=work)
    assert destroyed.returncode == 0, destroyed.stderr[-3000:]
    # Nothing of the lab is left: containers, its management network, host links, /etc/hosts lines,
    # its ssh config, its lab directory.
    assert lab_containers(name) == []
    networks = run(["docker", "network", "ls", "--format", "{{.Name}}"]).stdout.split()
    assert name not in networks
    assert host_links() <= links_before
    assert f"clab-{name}" not in Path("/etc/hosts").read_text()
    assert not Path(f"/etc/ssh/ssh_config.d/clab-{name}.conf").exists()
    assert not (work / f"clab-{name}").exists()
    # The images stay for the next run.
    assert all(run(["docker", "image", "inspect", image], check=False).returncode == 0 for image in images.values())


def in_node(name: str, node: str, *argv: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return run(["docker", "exec", f"clab-{name}-{node}", *argv], timeout=timeout, check=False)


def test_the_peer_image_runs_bgpflat_peer_run(engine: str, images: dict[str, str]) -> None:
    inspect = json.loads(run([engine, "image", "inspect", images["peer"]]).stdout)[0]["Config"]
    assert inspect["Entrypoint"] == ["bgpflat", "peer", "run"]
    # Without arguments the image prints the peer's usage, through the installed CLI.
    usage = run([engine, "run", "--rm", "--network", "none", images["peer"]])
    assert "--listen" in usage.stdout and "--state-dir" in usage.stdout
    version = run([engine, "run", "--rm", "--network", "none", "--entrypoint", "bgpflat", images["peer"], "--version"])
    assert version.stdout.startswith("bgpflat ")


def test_verify_and_routes_inside_the_peer_container(deployed: str) -> None:
    name = deployed
    snapshot = "/lab/cluster.yaml"
    verify = in_node(
        name, "peer",
        "bgpflat", "verify", "--peer", PEER_ADDRESS, "--snapshot", snapshot, "--state-dir", STATE_DIR,
        "--wait", "--timeout", "150", "--settle", "5", "-o", "json",
    )  # fmt: skip
    assert verify.returncode == 0, f"verify exited {verify.returncode}\n{verify.stdout[-3000:]}{verify.stderr[-3000:]}"
    report = json.loads(verify.stdout)
    assert report["status"] == "match"
    # Every node's 4 expected routes (the three blocks and the service range) on its own session.
    assert report["diff"]["counts"]["present"] == 4 * len(NODE_BLOCKS)
    assert {s["session"]: (s["present"], s["missing"], s["mismatched"]) for s in report["diff"]["sessions"]} == {
        node: (4, 0, 0) for node in NODE_BLOCKS
    }

    routes = in_node(name, "peer", "bgpflat", "peer", "routes", "--state-dir", STATE_DIR, "-o", "json")
    assert routes.returncode == 0, routes.stderr
    records = json.loads(routes.stdout)["routes"]
    by_session: dict[str, set[str]] = {}
    for record in records:
        by_session.setdefault(record["session"], set()).add(record["prefix"])
    # Each node sends the three blocks (its own, and the others' by mesh re-export) and the
    # service range: 4 prefixes on each of the 3 sessions.
    assert set(by_session) == set(NODE_BLOCKS)
    for prefixes in by_session.values():
        assert prefixes == {*NODE_BLOCKS.values(), SERVICE_RANGE}

    status = in_node(name, "peer", "bgpflat", "peer", "status", "--state-dir", STATE_DIR)
    assert status.returncode == 0, status.stderr
    for node in NODE_BLOCKS:
        row = next(line for line in status.stdout.splitlines() if node in line)
        assert " up " in row and "ipv4✓" in row, row


def test_the_tor_and_the_office_see_the_same_fabric(deployed: str) -> None:
    name = deployed
    # The ingress nodes (node-1, node-2) peer with the ToR; it has every block and the service range,
    # through those two only (node-3 has no BGPPeer to the ToR).
    wanted = {*NODE_BLOCKS.values(), SERVICE_RANGE}
    ingress = {"10.200.20.103", "10.200.20.104"}

    def tor_hops() -> dict[str, set[str]]:
        routes = json.loads(in_node(name, "tor", "vtysh", "-c", "show ip route bgp json").stdout or "{}")
        return {p: {hop["ip"] for entry in routes.get(p, []) for hop in entry["nexthops"]} for p in wanted}

    # Each prefix reaches the ToR over two sessions that come up independently: wait until every
    # one is multipath, not just present (one next hop for a moment is the second session still on
    # its way, not a fault).
    deadline = time.monotonic() + 90
    hops = tor_hops()
    while any(h != ingress for h in hops.values()) and time.monotonic() < deadline:
        time.sleep(1)
        hops = tor_hops()
    assert all(h == ingress for h in hops.values()), f"the ToR's next hops after 90 s: {hops}"
    # The office reaches the node segment and the peer through the ToR (routed inside the containers).
    for target in ("10.200.20.105", PEER_ADDRESS):
        ping = in_node(name, "office", "ping", "-c", "1", "-W", "2", target)
        assert ping.returncode == 0, f"office -> {target}: {ping.stdout}{ping.stderr}"


def forward_policy() -> str:
    for line in run(["iptables", "-S", "FORWARD"]).stdout.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return ""


def test_docker_forward_drop_leaves_the_namespace_lab_working(engine: str, tmp_path: Path) -> None:
    # Docker's FORWARD policy is DROP in the host's namespace (with br_netfilter loaded, bridged
    # frames go through iptables too). The namespace lab forwards only inside its own namespaces,
    # each with its own, empty filter table: here a ToR namespace with a bridge and a routed hop,
    # built with the lab's own NetnsLab as `bgpflat lab up` builds it.
    before = forward_policy()
    if before != "DROP":
        # Docker sets DROP where it turns forwarding on itself; on a host that forwarded already
        # it leaves the policy alone. The test sets it as Docker would, for its own length.
        run(["iptables", "-P", "FORWARD", "DROP"])
    lab = NetnsLab.create(tmp_path / "fabric", lab="bfdk")
    try:
        tor = lab.add_netns("tor", forwarding=True)
        lab.ip(tor, ["link add br0 type bridge", "addr add 10.77.1.1/24 dev br0", "link set br0 up"])
        lab.ip(tor, ["link add br1 type bridge", "addr add 10.77.2.1/24 dev br1", "link set br1 up"])
        a = lab.attach_host("a", bridge_ns=tor, bridge="br0", port="pa", address="10.77.1.2", length=24)
        b = lab.attach_host("b", bridge_ns=tor, bridge="br0", port="pb", address="10.77.1.3", length=24)
        c = lab.attach_host("c", bridge_ns=tor, bridge="br1", port="pc", address="10.77.2.2", length=24)
        for host, gateway in ((a, "10.77.1.1"), (b, "10.77.1.1"), (c, "10.77.2.1")):
            lab.ip(host, [f"route add default via {gateway}"])
        for source, target in ((a, "10.77.1.3"), (a, "10.77.2.2"), (c, "10.77.1.3")):
            ping = run(["ip", "netns", "exec", source, "ping", "-c", "1", "-W", "2", target], check=False)
            assert ping.returncode == 0, f"{source} -> {target}: {ping.stdout}{ping.stderr}"
        lab.teardown()
        assert forward_policy() == "DROP"  # the lab never touched the host's firewall
    finally:
        lab.teardown()  # safe to repeat
        if before != "DROP":
            run(["iptables", "-P", "FORWARD", before or "ACCEPT"])
    assert not any(lab.leftovers().values())


def test_the_topology_names_the_images_build_sh_tags() -> None:
    topology = yaml.safe_load((CLAB_DIR / TOPOLOGY).read_text())
    used = {node["image"] for node in topology["topology"]["nodes"].values()}
    script = (REPO / "toolchain" / "image" / "build.sh").read_text()
    roles = {image.split("/", 1)[1].split(":", 1)[0] for image in used}
    assert {image.split(":")[1] for image in used} == {"lab"}
    for role in roles:
        assert f"tag {role} " in script, f"build.sh tags no bgpflat/{role}:lab"
