"""Benchmark: `bgpflat plan` and `bgpflat snapshot` on a big cluster, next to `kubectl get` of the same objects.

Starts a real kube-apiserver + etcd (the lab control plane, Calico v1 CRDs), loads 5,000 Nodes
(with a kubelet-like status), 20,000 IPAMBlocks and 20,000 BlockAffinities, 2,000 Services and the
scenario's Calico objects, then times, in the same run and on the same server:

* ``bgpflat plan -f labs/calico-bgp/bgpflat.yaml`` (with its route impact: the whole state the
  route model reads, laid over with the spec, expected routes before and after) against ``kubectl
  get`` of the same objects;
* ``bgpflat snapshot`` against ``kubectl get`` of everything the snapshot holds.

A third anchor, ``curl``, is the bare transfer of the lists bgpflat reads: one curl process
fetching each of them (the adapter's own ``read_sources``, Nodes as metadata) in one request, as
many at once as bgpflat reads (``READ_THREADS``), writing the bytes nowhere. kubectl reads more
than bgpflat (whole Nodes, in pages of 500); curl reads the same bytes and decodes none, so
bgpflat/curl is what bgpflat adds to what the API server and the wire cost.

Wall time and peak RSS of each process (``wait4``); the goals are bgpflat ≤ 0.5× kubectl and
≤ 3× the bare transfer. Prints figures only; nothing here asserts a time.

    python tests/bench/bench_plan.py [--nodes 5000] [--blocks 20000] [--services 2000] [--repeat 3] [--case plan]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "labs" / "calico-bgp" / "bgpflat.yaml"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
TIME = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"
BGPFLAT = [sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())"]
V1 = "/apis/crd.projectcalico.org/v1"


class Loader:
    """Creates objects over keep-alive TLS connections, one per thread."""

    def __init__(self, port: int, ca: str, cert: str, key: str) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=ca)
        self.context.load_cert_chain(cert, key)
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPSConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=60)
            self.local.conn = conn
        return conn

    def post(self, path: str, body: dict[str, Any]) -> None:
        for attempt in range(3):
            conn = self._conn()
            try:
                conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
                continue
            if response.status not in (200, 201, 409):
                raise RuntimeError(f"POST {path}: {response.status} {data[:300]!r}")
            return


def node(i: int) -> dict[str, Any]:
    name = f"node-{i:05d}"
    ip = f"10.{200 + i // 65000}.{(i // 250) % 256}.{i % 250 + 1}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": f"zone-{i % 3}",
                **({"node-role.kubernetes.io/ingress": "ingress"} if i % 50 == 0 else {}),
            },
            "annotations": {
                "projectcalico.org/IPv4Address": f"{ip}/16",
                "projectcalico.org/IPv4IPIPTunnelAddr": f"10.{64 + i // 4096}.{(i // 16) % 256}.{(i % 16) * 16}",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {"podCIDR": f"10.244.{i % 256}.0/24"},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"},
            "allocatable": {"cpu": "8", "memory": "31Gi", "pods": "110", "ephemeral-storage": "95Gi"},
            "conditions": [
                {
                    "type": t,
                    "status": "False" if t != "Ready" else "True",
                    "reason": f"Kubelet{t}",
                    "message": f"kubelet reports {t}",
                    "lastHeartbeatTime": "2026-11-21T06:00:00Z",
                    "lastTransitionTime": "2026-11-01T06:00:00Z",
                }
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
            ],
            "nodeInfo": {
                "machineID": f"{i:032x}",
                "systemUUID": f"{i:032x}",
                "bootID": f"{i:032x}",
                "kernelVersion": "6.1.0-27-amd64",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kubeletVersion": "v1.35.4",
                "kubeProxyVersion": "v1.35.4",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": [
                {
                    "names": [
                        f"registry.example.com/team/app-{j}@sha256:{j:064x}",
                        f"registry.example.com/team/app-{j}:v{j}",
                    ],
                    "sizeBytes": 10_000_000 + j,
                }
                for j in range(20)
            ],
        },
    }


def block(i: int, nodes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    a, b = 64 + i // 1024, (i // 4) % 256
    c = (i % 4) * 64
    cidr = f"10.{a}.{b}.{c}/26"
    name = f"10-{a}-{b}-{c}-26"
    host = f"node-{i % nodes:05d}"
    used = 1 + i % 20
    ipam = {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "IPAMBlock",
        "metadata": {"name": name},
        "spec": {
            "cidr": cidr,
            "affinity": f"host:{host}",
            "allocations": [k if k < used else None for k in range(64)],
            "unallocated": list(range(used, 64)),
            "attributes": [
                {
                    "handle_id": f"k8s-pod-network.{i:08x}{k:04x}",
                    "secondary": {
                        "namespace": "default",
                        "node": host,
                        "pod": f"app-{i}-{k}",
                        "timestamp": "2026-11-21",
                    },
                }
                for k in range(used)
            ],
            "sequenceNumber": 1,
            "sequenceNumberForAllocation": {str(k): 0 for k in range(used)},
            "strictAffinity": False,
        },
    }
    affinity = {
        "apiVersion": "crd.projectcalico.org/v1",
        "kind": "BlockAffinity",
        "metadata": {"name": f"{host}-{name}"},
        "spec": {"cidr": cidr, "node": host, "state": "confirmed", "deleted": "false", "type": "host"},
    }
    return ipam, affinity


def service(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"svc-{i:05d}", "namespace": "default", "labels": {"app": f"app-{i}"}},
        "spec": {"selector": {"app": f"app-{i}"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    }


def load(loader: Loader, *, nodes: int, blocks: int, services: int) -> float:
    started = time.monotonic()
    jobs: list[tuple[str, dict[str, Any]]] = []
    jobs += [("/api/v1/nodes", node(i)) for i in range(nodes)]
    for i in range(blocks):
        ipam, affinity = block(i, nodes)
        jobs.append((f"{V1}/ipamblocks", ipam))
        jobs.append((f"{V1}/blockaffinities", affinity))
    jobs += [("/api/v1/namespaces/default/services", service(i)) for i in range(services)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in pool.map(lambda job: loader.post(*job), jobs, chunksize=64):
            pass
    return time.monotonic() - started


LAST_OUTPUT: dict[str, bytes] = {}  # the last stdout of each command, by its first arguments


def measure(argv: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in MiB, bytes of stdout) of one process.

    Peak RSS comes from GNU time, which forks from a small process: measured from this benchmark's
    own process, the child's maximum RSS would include the parent's pages between fork and exec.
    """
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "time.txt"
        started = time.monotonic()
        with open(Path(tmp) / "out", "wb") as out:
            proc = subprocess.run(
                [TIME, "-f", "%M", "-o", str(report), *argv],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
        wall = time.monotonic() - started
        size = (Path(tmp) / "out").stat().st_size
        LAST_OUTPUT[" ".join(argv[:6])] = (Path(tmp) / "out").read_bytes()
        peak_kib = int(report.read_text().split()[-1])
    if proc.returncode == 2:  # plan exits 2 on an error finding, and on an error it could not get past
        print(f"  ({' '.join(argv[3:5])} exited 2: {proc.stderr.decode().strip().splitlines()[-1:]})", file=sys.stderr)
    if proc.returncode not in (0, 2):
        raise RuntimeError(f"{' '.join(argv[:6])}… exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return wall, peak_kib // 1024, size


def client_credentials(kubeconfig: Path, work: Path) -> tuple[str, list[str]]:
    """(server URL, curl's TLS options) of the kubeconfig's current context, client certificate only."""
    import base64

    import yaml

    config = yaml.safe_load(kubeconfig.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])

    def file_of(section: dict[str, Any], key: str, name: str) -> str:
        if section.get(f"{key}-data"):
            path = work / name
            path.write_bytes(base64.b64decode(section[f"{key}-data"]))
            path.chmod(0o600)
            return str(path)
        return str(Path(kubeconfig).parent / section[key])

    options = [
        "--cacert",
        file_of(cluster, "certificate-authority", "ca.crt"),
        "--cert",
        file_of(user, "client-certificate", "client.crt"),
        "--key",
        file_of(user, "client-key", "client.key"),
    ]
    return str(cluster["server"]), options


def bare_transfer(kubeconfig: Path, work: Path) -> list[str]:
    """One curl process that GETs every list ``plan`` and ``snapshot`` read, each in one request,
    ``READ_THREADS`` at a time.

    The list comes from the adapter (``read_sources``) so that it is the same list; the user agent
    is not curl's, for which the API server indents its JSON (2.2x the bytes for IPAMBlocks).
    """
    from bgpflat.adapters.kube.calico import read_sources
    from bgpflat.adapters.kube.reads import READ_THREADS
    from bgpflat.adapters.kube.storage import V1

    server, tls = client_credentials(kubeconfig, work)
    argv = [
        shutil.which("curl") or "/usr/bin/curl",
        "--silent",
        "--show-error",
        "--no-progress-meter",
        "--parallel",
        "--parallel-max",
        str(READ_THREADS),
    ]
    for index, source in enumerate(read_sources(calico_api_version=V1, ipam_v1=True)):
        path = source.path if source.name is None else f"{source.path}/{source.name}"
        if index:
            argv.append("--next")  # per-URL options; the connection is kept
        argv += ["-sS", "-A", "bench", *tls, "-H", f"Accept: {source.accept()}", "-o", "/dev/null"]
        argv += ["-w", "%{size_download}\n", server + path]
    return argv


def best(runs: list[tuple[float, int, int]]) -> tuple[float, int, int]:
    return min(runs, key=lambda r: r[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--blocks", type=int, default=20000)
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--case", choices=("plan", "snapshot"), action="append", help="only these cases (repeatable)")
    parser.add_argument("--kubeconfig", help="measure against this already loaded server instead of starting one")
    args = parser.parse_args()
    if not Path(TIME).exists():
        print("GNU time (/usr/bin/time) is needed to measure peak memory", file=sys.stderr)
        return 2

    sys.path.insert(0, str(ROOT))
    from bgpflat.lab.controlplane.server import ControlPlane

    state = Path(tempfile.mkdtemp(prefix="bgpflat-bench-"))
    plane = None
    try:
        if args.kubeconfig:
            kubeconfig = Path(args.kubeconfig)
        else:
            plane = ControlPlane.start(
                state_dir=state / "cp",
                flavour="v1",
                service_cluster_ip_range="10.233.0.0/18",
                progress=lambda line: print(f"  {line}", file=sys.stderr),
                tied_to_caller=True,
            )
            plane.seed_scenario("calico-bgp")
            creds = plane.credentials
            loader = Loader(plane.state.api_port, str(creds.ca_cert), str(creds.admin_cert), str(creds.admin_key))
            seconds = load(loader, nodes=args.nodes, blocks=args.blocks, services=args.services)
            print(
                f"loaded {args.nodes} Nodes, {args.blocks} IPAMBlocks + {args.blocks} BlockAffinities, "
                f"{args.services} Services in {seconds:.0f} s"
            )
            kubeconfig = plane.kubeconfig
        run_cases(kubeconfig, work=state, repeat=args.repeat, only=args.case)
    finally:
        if plane is not None:
            plane.stop()
        shutil.rmtree(state, ignore_errors=True)
    return 0


def run_cases(kubeconfig: Path, *, work: Path, repeat: int, only: list[str] | None = None) -> None:
    # This tree's bgpflat, whatever the working directory and whatever is installed.
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_COLOR": "1", "PYTHONPATH": pythonpath}
    group = "crd.projectcalico.org"
    everything = [
        KUBECTL,
        "get",
        f"nodes,services,endpointslices,ippools.{group},bgppeers.{group},"
        f"bgpconfigurations.{group},bgpfilters.{group},clusterinformations.{group},ipamblocks.{group},"
        f"blockaffinities.{group},ipamconfigs.{group}",
        "-A",
        "-o",
        "json",
    ]
    bare = bare_transfer(kubeconfig, work)
    cases = {
        # With route impact, plan reads what the snapshot holds: the kubectl reference reads the same.
        "plan": [*BGPFLAT, "plan", "-f", str(SPEC), "-o", "json"],
        "snapshot": [*BGPFLAT, "snapshot", "--output-file", str(work / "snap.yaml")],
    }
    print(f"\n{'case':<10} {'tool':<8} {'wall s':>8} {'peak MiB':>9} {'output MiB':>11}   ratios (bgpflat/anchor)")
    for name, ours in cases.items():
        if only and name not in only:
            continue
        tools = {"kubectl": everything, "curl": bare, "bgpflat": ours}
        runs: dict[str, list[tuple[float, int, int]]] = {tool: [] for tool in tools}
        for _ in range(repeat):  # interleaved so that all see the same server and machine load
            for tool, argv in tools.items():
                runs[tool].append(measure(argv, cwd=work, env=env))
        results = {tool: best(r) for tool, r in runs.items()}
        # curl's stdout is the size of each list; the bytes themselves went to /dev/null.
        transferred = sum(int(n) for n in LAST_OUTPUT[" ".join(bare[:6])].split())
        results["curl"] = (*results["curl"][:2], transferred)
        if name == "snapshot":
            size = (work / "snap.yaml").stat().st_size
            results["bgpflat"] = (*results["bgpflat"][:2], size)
        for tool in tools:
            wall, rss, size = results[tool]
            line = f"{name:<10} {tool:<8} {wall:>8.2f} {rss:>9d} {size / 2**20:>11.1f}"
            if tool == "bgpflat":
                kubectl, curl = results["kubectl"], results["curl"]
                line += (
                    f"   time {wall / kubectl[0]:.2f}x kubectl, {wall / curl[0]:.2f}x bare transfer;"
                    f" memory {rss / kubectl[1]:.2f}x kubectl"
                )
            print(line)
        if name == "plan":
            plan = json.loads(LAST_OUTPUT[" ".join(ours[:6])] or b"{}")
            for impact in plan.get("route_impact", []):
                print(
                    f"{'':<10} route impact for {impact['peer']}: +{impact['added']} -{impact['withdrawn']} "
                    f"~{impact['changed']} ({impact['before_total']} -> {impact['after_total']} routes)"
                )
    print(f"\n(best of {repeat} runs each; kubectl reads whole Nodes in pages of 500, bgpflat and curl the")
    print(" lists bgpflat reads, Nodes as metadata; output: kubectl's JSON on stdout, bytes curl received,")
    print(" bgpflat's plan JSON or snapshot YAML file)")


if __name__ == "__main__":
    sys.exit(main())
