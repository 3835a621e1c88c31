"""Benchmark: the CLI as users run it, on snapshots of 500 to 10,000 nodes.

Run: ``python tests/bench/bench_cli.py [--sizes 500,2000,5000,10000] [--yaml]`` (not collected by
pytest; prints figures, asserts only that each command succeeded).

For each size, the cluster of ``bench_routes`` (4 blocks and a pod per node, a borrowed /32 per
node, 0.4 LoadBalancer Services per node, a ToR BGPPeer per rack of 100) is written as
``bgpflat snapshot --output-file`` writes it, then timed as a process, wall time and peak RSS (``wait4``):

* ``bgpflat routes expected --snapshot FILE --peer <ToR of rack 0> -o json``;
* ``bgpflat plan -f SPEC --snapshot FILE -o json``.

References from the same run, so that the figures compare across machines and loads: the model
in-process (``ClusterState.from_objects`` and the expected routes of that peer, from objects
already in memory) and the bare parse of the same file in a process of its own (``json.loads``;
``yaml.load`` with libyaml for ``--yaml``, which also times the YAML shape older versions wrote). Growth per
doubling is (t₂/t₁)^(1/log₂(n₂/n₁)): 2.0 is linear.

Then, as processes too (median of at least 3 runs, with CPU seconds beside the wall time):
``routes expected -o table`` of 40,000 rows, and the JSON of 250,000 and 310,000 routes (a mesh
re-exported to an eBGP peer) as ``routes expected``, ``verify --learned`` and ``peer routes``
write it, against the model's time in-process; a file of 1,000,000 learned routes read as
``verify --learned`` reads it, against ``json.loads`` of the same file; and in-process, the
address-plan check with 20,000 and 100,000 office entries, with the comparison of every pair on a
plan it can still do as the reference.

Goals: at 5,000 nodes ≤ 2 s and ≤ 300 MB whole process; near-linear growth; a YAML snapshot
≤ 1.5× its bare libyaml parse; the table ≤ 3 s, the JSON ≤ 2 s; learned routes ≤ 3 s and
≤ 600 MB; the check < 1 s at 100,000.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_routes import calibration, cluster_objects  # noqa: E402

from bgpflat.adapters import files  # noqa: E402
from bgpflat.adapters.collector import collector_paused  # noqa: E402
from bgpflat.core.routes.advertise import expected_routes  # noqa: E402
from bgpflat.core.routes.cluster import ClusterState  # noqa: E402
from bgpflat.core.routes.expected import ModelOptions, OutsidePeer  # noqa: E402

TIME = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"
BGPFLAT = [sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())"]
# The bare parse of the same file, also as a process of its own: what reading it can cost at least.
PARSE_JSON = "import json, sys; json.loads(open(sys.argv[1]).read())"
PARSE_YAML = "import sys, yaml; yaml.load(open(sys.argv[1]).read(), Loader=yaml.CSafeLoader)"
PEER = "172.31.0.1"  # the ToR of rack 0 (bench_routes)
# The bench cluster's own plan: its pool, AS and ToR peers, nothing to change but the spec's view.
SPEC = """\
version: 1
cluster: {name: bench, environment: dev}
bgp: {asNumber: 64512, nodeToNodeMesh: false}
pools:
  - {name: pods, cidr: 10.128.0.0/10, blockSize: 26, encapsulation: None, nodeSelector: all()}
services:
  clusterIPs: [10.96.0.0/12]
  loadBalancerIPs: [192.168.0.0/16]
networks:
  nodes: [172.16.0.0/16]
"""


def _env(tree: Path) -> dict[str, str]:
    """This tree's bgpflat (or --tree's), whatever the working directory and whatever is installed."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}


def run(command: list[str], cwd: Path, tree: Path = ROOT) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MiB) and CPU seconds (user and system) of one process, measured by
    ``time`` (a child forked from this big process would count the parent's pages in its own peak);
    output goes to /dev/null. CPU seconds tell a busy machine's waits from the command's work."""
    report = cwd / "time.txt"
    with open(os.devnull, "w") as sink:
        done = subprocess.run(
            [TIME, "-f", "%e %M %U %S", "-o", str(report), *command],
            cwd=cwd,
            env=_env(tree),
            stdout=sink,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[3:])} failed ({done.returncode}): {done.stderr.strip()}")
    seconds, kib, user, system = report.read_text().split()[-4:]
    return float(seconds), int(kib) / 1024, float(user) + float(system)


def median_run(command: list[str], cwd: Path, tree: Path, repeat: int) -> tuple[float, float, float]:
    """Median wall seconds of ``repeat`` runs of a process (at least 3), the highest peak RSS, and
    the median CPU seconds."""
    runs = [run(command, cwd, tree) for _ in range(max(repeat, 3))]
    return (
        statistics.median(seconds for seconds, _, _ in runs),
        max(rss for _, rss, _ in runs),
        statistics.median(cpu for _, _, cpu in runs),
    )


def best(function: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs (the machine is shared)."""
    fastest, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = function()
        fastest = min(fastest, time.perf_counter() - start)
    return fastest, result


def model(objects: list[dict[str, Any]]) -> int:
    with collector_paused():
        cluster = ClusterState.from_objects(objects)
    result = expected_routes(cluster=cluster, peer=OutsidePeer(address=PEER), options=ModelOptions())
    return len(result.table)


def growth(previous: tuple[int, float] | None, size: int, value: float) -> str:
    if previous is None or previous[1] <= 0:
        return "—"
    doublings = math.log2(size / previous[0])
    return f"{(value / previous[1]) ** (1 / doublings):.2f}×"


def output_figures(work: Path, tree: Path, repeat: int) -> None:
    """Tables and JSON of many routes: the node-to-node mesh on and an eBGP peer on every node, so
    that each node re-exports every block (nodes × 4 × nodes rows).

    JSON at two sizes: a mesh of 224 nodes (251,104 routes, the size the goal names) and of 250
    (312,750). Each is timed in each command that writes routes as JSON: ``routes
    expected``, ``verify`` against those same routes given as learned (its report lists every
    route present), and ``peer routes`` of a peer whose snapshot holds them. The reference is the
    model's own time in-process, and ``json.loads`` of the written document in a process."""
    for nodes, output in ((100, "table"), (224, "json"), (250, "json")):
        objects = cluster_objects(nodes, 20)
        for obj in objects:
            if obj["kind"] == "BGPConfiguration":
                obj["spec"]["nodeToNodeMeshEnabled"] = True
        objects.append(
            {
                "apiVersion": "projectcalico.org/v3",
                "kind": "BGPPeer",
                "metadata": {"name": "edge"},
                "spec": {"peerIP": "172.31.1.1", "asNumber": 65100},
            }
        )
        path = work / f"mesh-{nodes}.json"
        files.write_snapshot(path, header={"context": "bench"}, objects=objects)
        with collector_paused():
            cluster = ClusterState.from_objects(objects)
        model_time, result = best(
            lambda cluster=cluster: expected_routes(
                cluster=cluster, peer=OutsidePeer(address="172.31.1.1"), options=ModelOptions()
            ),
            repeat,
        )
        expected = [*BGPFLAT, "routes", "expected", "--snapshot", str(path), "--peer", "172.31.1.1"]
        elapsed, rss, cpu = median_run([*expected, "-o", output], work, tree, repeat)
        goal = "≤ 3 s for 40,000 rows" if output == "table" else "≤ 2 s for 250,000 routes"
        print(
            f"routes expected -o {output}, {len(result.table)} routes (mesh of {nodes} nodes re-exported): "
            f"{elapsed:.2f} s (CPU {cpu:.2f} s), {rss:.0f} MiB whole process (median); the model alone "
            f"{model_time:.2f} s in-process "
            f"({elapsed / model_time:.1f}×)  [goal {goal}]"
        )
        if output == "json":
            json_outputs(work, tree, repeat, expected, result, model_time)


def json_outputs(work: Path, tree: Path, repeat: int, expected: list[str], result: Any, model_time: float) -> None:
    """``verify -o json`` and ``peer routes -o json`` of the same routes (see ``output_figures``)."""
    records = result.table.to_records()
    learned = work / "mesh-learned.json"
    learned.write_text(json.dumps({"routes": records}))
    state = work / "peer-state"
    state.mkdir(exist_ok=True)
    (state / "snapshot.json").write_text(json.dumps({"format_version": 1, "routes": records, "sessions": []}))
    written = work / "written.json"
    with written.open("w") as out:
        subprocess.run([*expected, "-o", "json"], stdout=out, check=True, env=_env(ROOT))
    parse_time, _, _ = median_run([sys.executable, "-c", PARSE_JSON, str(written)], work, ROOT, repeat)
    print(
        f"  the document written: {written.stat().st_size / 1e6:.0f} MB; json.loads of it {parse_time:.2f} s "
        "in a process of its own"
    )
    verify = [*BGPFLAT, "verify", *expected[len(BGPFLAT) + 2 :], "--learned", str(learned), "-o", "json"]
    peer = [*BGPFLAT, "peer", "routes", "--state-dir", str(state), "-o", "json"]
    for name, command in (("verify --learned FILE -o json", verify), ("peer routes -o json", peer)):
        elapsed, rss, cpu = median_run(command, work, tree, repeat)
        print(
            f"{name}, {len(records)} routes: {elapsed:.2f} s (CPU {cpu:.2f} s), {rss:.0f} MiB whole process (median); "
            f"the model alone {model_time:.2f} s ({elapsed / model_time:.1f}×)  [goal ≤ 2 s for 250,000 routes]"
        )
    written.unlink()


# What ``verify --learned FILE`` does before the diff: the file read into learned routes.
READ_LEARNED = (
    "import sys; from bgpflat.cli.routes_commands import FileSource; FileSource(sys.argv[1], freeze=True).read()"
)


def learned_figures(work: Path, tree: Path, repeat: int) -> None:
    """A learned-route file of 1,000,000 routes (1,000 sessions × 1,000 prefixes, as ``peer routes
    -o json`` writes them) read as ``verify --learned`` reads it, against ``json.loads`` of the file."""
    path = work / "learned-1m.json"
    with path.open("w") as out:
        out.write('{\n  "routes": [')
        separator = "\n"
        for n in range(1_000_000):
            session = f"10.0.{n // 250_000}.{n // 1000 % 250 + 1}"
            route = {
                "prefix": f"{10 + (n >> 20)}.{n >> 12 & 255}.{n >> 4 & 255}.{(n & 15) << 4}/28",
                "next_hop": session,
                "session": session,
                "as_path": [64512],
                "origin": "igp",
                "communities": [],
                "large_communities": [],
                "path_id": 1,
            }
            out.write(separator + "    " + json.dumps(route))
            separator = ",\n"
        out.write('\n  ],\n  "sessions": []\n}\n')
    elapsed, rss, cpu = median_run([sys.executable, "-c", READ_LEARNED, str(path)], work, tree, repeat)
    parse_time, parse_rss, _ = median_run([sys.executable, "-c", PARSE_JSON, str(path)], work, ROOT, repeat)
    print(
        f"learned routes, 1,000,000 from a {path.stat().st_size / 1e6:.0f} MB file: {elapsed:.2f} s "
        f"(CPU {cpu:.2f} s), {rss:.0f} MiB "
        f"whole process (median); json.loads of the file alone {parse_time:.2f} s, {parse_rss:.0f} MiB "
        f"({elapsed / parse_time:.2f}×)  [goal ≤ 3 s, ≤ 600 MB]"
    )
    path.unlink()


def check_figures(repeat: int) -> None:
    """The address-plan check with many office entries: the sweep, and for a size the pairwise
    comparison can still do, both on the same input."""
    from bgpflat.core.net.prefixes import Prefix
    from bgpflat.core.state.checks import AddressRange, check_address_plan

    def plan(entries: int) -> list[AddressRange]:
        ranges = [
            AddressRange(role="pool", prefix=Prefix.parse("10.128.0.0/10"), source="IPPool/pods"),
            AddressRange(role="service", prefix=Prefix.parse("10.96.0.0/12"), source="services"),
            AddressRange(role="node", prefix=Prefix.parse("172.16.0.0/16"), source="networks.nodes[0]"),
        ]
        # /28s across 192.168.0.0/16 and beyond; every 1,000th one inside the pod pool (a finding).
        for i in range(entries):
            value = (10 << 24 | 128 << 16 | i << 4) if i % 1000 == 0 else (192 << 24 | 168 << 16) + (i << 4)
            ranges.append(AddressRange(role="office", prefix=Prefix(4, value, 28), source=f"networks.office[{i}]"))
        return ranges

    def pairwise(ranges: list[AddressRange]) -> int:
        ordered = sorted(ranges, key=lambda r: (r.prefix, r.role))
        return sum(
            1
            for i, first in enumerate(ordered)
            for second in ordered[i + 1 :]
            if first.prefix.overlaps(second.prefix) and not (first.role == second.role == "office")
        )

    small = plan(2_000)
    sweep_small, findings = best(lambda: check_address_plan(small), repeat)
    pairwise_small, pairs = best(lambda: pairwise(small), repeat)
    assert pairs == len(findings)
    for entries in (20_000, 100_000):
        ranges = plan(entries)
        sweep_time, findings = best(lambda ranges=ranges: check_address_plan(ranges), repeat)
        print(
            f"address-plan check, {entries} office entries: {sweep_time * 1000:.0f} ms, {len(findings)} findings  "
            f"[goal < 1 s at 100,000]"
        )
    print(
        f"  same 2,000-entry plan, best of {repeat} each: sweep {sweep_small * 1000:.1f} ms, every pair "
        f"{pairwise_small * 1000:.0f} ms ({pairwise_small / sweep_small:.0f}×), {pairs} findings both"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,2000,5000,10000", help="node counts, comma-separated (none: '')")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept (default 3)")
    parser.add_argument("--yaml", action="store_true", help="also time the YAML shape older snapshots have")
    parser.add_argument(
        "--tree",
        type=Path,
        default=ROOT,
        help="run the CLI of another bgpflat source tree on the same files (before/after comparisons)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(
        f"machine: 10M-step Python loop takes {calibration():.2f} s CPU "
        f"(load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})"
    )
    print(
        f"{'nodes':>6} {'shape':5} {'MB':>6} │ {'routes expected':>15} {'RSS':>7} {'growth':>7} │ "
        f"{'plan':>7} {'RSS':>7} {'growth':>7} │ {'model':>7} {'parse':>7} │ CLI/model CLI/parse"
    )
    previous: dict[str, tuple[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        work = Path(tmp)
        (work / "bgpflat.yaml").write_text(SPEC)
        for size in sizes:
            objects = cluster_objects(size, size * 2 // 5)
            header = {"context": "bench", "takenAt": "2026-01-01T00:00:00Z"}
            shapes = {"json": work / f"cluster-{size}.json"}
            files.write_snapshot(shapes["json"], header=header, objects=objects)
            if args.yaml:
                shapes["yaml"] = work / f"cluster-{size}.yaml"
                files.write_chunks_atomic(shapes["yaml"], files.snapshot_yaml_chunks(header=header, objects=objects))
            model_time, routes = best(lambda objects=objects: model(objects), args.repeat)
            del objects
            for shape, path in shapes.items():
                parse = PARSE_JSON if shape == "json" else PARSE_YAML
                parse_time = min(run([sys.executable, "-c", parse, str(path)], work) for _ in range(args.repeat))[0]
                routes_runs = [
                    run(
                        [*BGPFLAT, "routes", "expected", "--snapshot", str(path), "--peer", PEER, "-o", "json"],
                        work,
                        args.tree,
                    )
                    for _ in range(args.repeat)
                ]
                plan_runs = [
                    run(
                        [*BGPFLAT, "plan", "-f", "bgpflat.yaml", "--snapshot", str(path), "-o", "json"], work, args.tree
                    )
                    for _ in range(args.repeat)
                ]
                routes_time, routes_rss, _ = min(routes_runs)
                plan_time, plan_rss, _ = min(plan_runs)
                print(
                    f"{size:>6} {shape:5} {path.stat().st_size / 1e6:>6.1f} │ {routes_time:>13.2f} s "
                    f"{routes_rss:>5.0f} MiB {growth(previous.get(shape), size, routes_time):>7} │ "
                    f"{plan_time:>5.2f} s {plan_rss:>5.0f} MiB "
                    f"{growth(previous.get('plan-' + shape), size, plan_time):>7} │ "
                    f"{model_time:>5.2f} s {parse_time:>5.2f} s │ {routes_time / model_time:>8.1f}× "
                    f"{routes_time / parse_time:>8.1f}×"
                )
                previous[shape] = (size, routes_time)
                previous["plan-" + shape] = (size, plan_time)
            print(f"{'':>6} ({routes} routes expected at {PEER})")
        output_figures(work, args.tree, args.repeat)
        learned_figures(work, args.tree, args.repeat)
    check_figures(args.repeat)
    print(
        "goals at 5,000 nodes: routes expected and plan ≤ 2 s and ≤ 300 MB whole process; growth near 2.0× "
        "per doubling; a YAML snapshot ≤ 1.5× its bare libyaml parse"
    )


if __name__ == "__main__":
    main()
