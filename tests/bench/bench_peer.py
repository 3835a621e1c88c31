"""Throughput of ``bgpflat peer`` against raw ExaBGP and GoBGP, same feed, same run.

    sudo python tests/bench/bench_peer.py [--routes 100000] [--runs 3]

A Calico-style BIRD 1.6 node (tests/integration/netns.py) holds N /32s plus its 3 Calico routes
and sends them over one ADD-PATH session to each receiver in turn, interleaved run by run:

* ``exabgp``: ExaBGP 5.0 with bgpflat's own generated config, but a no-op API script that only
  timestamps the ``up`` and End-of-RIB lines (the floor for anything built on ExaBGP);
* ``gobgp``: GoBGP receiving the same feed (up from ``gobgp monitor neighbor``, End-of-RIB polled
  with the list form ``gobgp neighbor -j`` every 0.1 s, so ~0.1-0.2 s resolution);
* ``bgpflat``: ``bgpflat peer run``; times are the ones bgpflat records when it applies the
  ``up`` and the End-of-RIB events to its RIB, i.e. after every route is in the table.

Each run starts the receiver, waits until it is idle and ready, then enables BIRD's session to it.
Printed per receiver: session up -> End-of-RIB (median of runs), routes/s, the CPU seconds the
receiving processes spent on the feed (robust when the machine is busy, unlike wall time), and
peak RSS (VmHWM) of the receiving processes. Goals: >= 70k routes/s, <= 10 % over raw ExaBGP, within 2x of GoBGP.
Nothing is asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration"))

from netns import Lab, Netns, calico_bird_conf, start_peer  # noqa: E402

from bgpflat.core.exabgp import config as exabgp_conf  # noqa: E402
from bgpflat.peer.endpoint import fetch  # noqa: E402
from bgpflat.peer.process import exabgp_environment  # noqa: E402

NODE_IP, PEER_IP = "10.0.0.1", "10.0.0.100"
PROTOCOL = "Global_10_0_0_100"

NOOP_API = r"""
import sys, time
up = None
print("ready", file=open(sys.argv[1] + ".ready", "w"), flush=True)
for line in sys.stdin.buffer:
    if up is None and b'"state"' in line and b'"up"' in line:
        up = time.time()
    elif up is not None and b'"eor"' in line:
        with open(sys.argv[1], "a") as out:
            out.write(f"{up} {time.time()}\n")
        up = None
"""

GOBGPD_TOML = f"""
[global.config]
  as = 65000
  router-id = "{PEER_IP}"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{NODE_IP}"
    peer-as = 64512
  [neighbors.transport.config]
    local-address = "{PEER_IP}"
  [neighbors.graceful-restart.config]
    enabled = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
    [neighbors.afi-safis.add-paths.config]
      receive = true
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
"""

CLK_TCK = os.sysconf("SC_CLK_TCK")


def hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_by_pid(pids).values())


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    found: dict[int, float] = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    return found


def cpu_split(names: list[str], pids: list[int], before: dict[int, float]) -> dict[str, float]:
    """CPU seconds per receiving process since ``before`` (which process costs what)."""
    after = cpu_by_pid(pids)
    pairs = zip(names, pids, strict=False)  # a process that already exited is simply missing
    return {name: round(after.get(pid, 0.0) - before.get(pid, 0.0), 2) for name, pid in pairs}


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *descendants(int(child))]
    except OSError:
        pass
    return found


def tree(pid: int) -> list[int]:
    # ip netns exec execs the command, so the PID is the receiver itself.
    return [pid, *descendants(pid)]


def wait(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


class Bench:
    """Each run: start the receiver, wait until it is ready, then enable BIRD's session to it."""

    def __init__(self, lab: Lab, node: Netns, peer: Netns, work: Path, routes: int) -> None:
        self.lab, self.node, self.peer, self.work, self.routes = lab, node, peer, work, routes
        self.total = routes + 3

    def birdc(self, *args: str) -> str:
        return self.node.run("birdc", "-s", str(self.work / "node" / "bird.ctl"), *args).stdout

    def session_off(self) -> None:
        self.birdc("disable", PROTOCOL)
        wait(
            lambda: "Established" not in self.birdc("show", "protocols", PROTOCOL),
            30,
            "BIRD to drop the session",
            interval=0.1,
        )

    def feed(self, pids: list[int]) -> float:
        """Enable the session; returns the receivers' CPU seconds before it (the baseline)."""
        baseline = cpu_seconds(pids)
        self.birdc("enable", PROTOCOL)
        return baseline

    def config(self, collector_command: str) -> str:
        return exabgp_conf.render(
            exabgp_conf.PeerConfig(
                local_as=65000,
                router_id=PEER_IP,
                local_addresses=(PEER_IP,),
                neighbors=(exabgp_conf.neighbor(NODE_IP, peer_as=64512),),
            ),
            collector_command=collector_command,
        )

    def run_exabgp(self, i: int) -> dict[str, Any]:
        times = self.work / f"noop-{i}.times"
        api = self.work / "noop_api.py"
        api.write_text(NOOP_API)
        conf = self.work / f"exabgp-noop-{i}.conf"
        conf.write_text(self.config(f"{sys.executable} {api} {times}"))
        proc = self.lab.start(
            self.peer,
            [sys.executable, "-m", "exabgp", "server", str(conf)],
            log=self.work / f"exabgp-noop-{i}.log",
            env=exabgp_environment(),
        )
        wait(lambda: Path(f"{times}.ready").exists(), 60, "raw ExaBGP to start")
        time.sleep(0.5)
        before = cpu_by_pid(tree(proc.pid))
        baseline = self.feed(tree(proc.pid))
        line = wait(lambda: times.exists() and times.read_text().strip(), 300, "raw ExaBGP's End-of-RIB")
        up, eor = (float(x) for x in line.split())
        pids = tree(proc.pid)
        result = {
            "seconds": eor - up,
            "cpu": cpu_seconds(pids) - baseline,
            "cpu_split": cpu_split(["exabgp", "api"], pids, before),
            "rss_kib": {"exabgp+api": sum(hwm_kib(p) for p in pids)},
        }
        Lab.stop(proc)
        return result

    def run_gobgp(self, i: int) -> dict[str, Any]:
        conf = self.work / "gobgpd.toml"
        conf.write_text(GOBGPD_TOML)
        proc = self.lab.start(
            self.peer,
            ["gobgpd", "-f", str(conf), "-p", "--pprof-disable", "--api-hosts", "127.0.0.1:50051"],
            log=self.work / f"gobgpd-{i}.log",
        )

        def neighbor() -> dict[str, Any]:
            # The list form: `gobgp neighbor ADDR` also counts the routes advertised to ADDR, a walk
            # of gobgpd's whole table per poll, which would slow the receiver being measured.
            result = self.peer.run("gobgp", "neighbor", "-j", check=False)
            if result.returncode != 0 or not result.stdout.strip():
                return {}
            for entry in json.loads(result.stdout) or []:
                if entry.get("state", {}).get("neighbor_address") == NODE_IP:
                    return dict(entry)
            return {}

        wait(neighbor, 60, "gobgpd's API", interval=0.1)
        # One long-lived monitor stream timestamps "established" without polling.
        monitor = subprocess.Popen(
            self.peer.command(["gobgp", "monitor", "neighbor", NODE_IP, "-j"]), stdout=subprocess.PIPE, text=True
        )
        self.lab.processes.append(monitor)
        up_at: list[float] = []

        def watch() -> None:
            assert monitor.stdout is not None
            for line in monitor.stdout:
                if not up_at and '"session_state":6' in line.replace(" ", ""):
                    up_at.append(time.time())

        threading.Thread(target=watch, daemon=True).start()
        time.sleep(0.5)
        baseline = self.feed([proc.pid])

        def done() -> float | None:
            afi = neighbor().get("afi_safis", [{}])[0]
            eor = afi.get("mp_graceful_restart", {}).get("state", {}).get("end_of_rib_received")
            received = afi.get("state", {}).get("received", 0)
            return time.time() if eor and received >= self.total else None

        eor = wait(done, 300, "GoBGP's End-of-RIB", interval=0.1)
        wait(lambda: up_at, 10, "GoBGP's monitor to report the session")
        result = {
            "seconds": eor - up_at[0],
            "cpu": cpu_seconds([proc.pid]) - baseline,
            "rss_kib": {"gobgpd": hwm_kib(proc.pid)},
        }
        Lab.stop(monitor)
        Lab.stop(proc)
        return result

    def run_bgpflat(self, i: int) -> dict[str, Any]:
        state = self.work / f"bgpflat-{i}"
        proc = start_peer(
            self.lab,
            self.peer,
            listen=PEER_IP,
            neighbor=NODE_IP,
            state_dir=state,
            log=self.work / f"bgpflat-{i}.log",
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        endpoint = f"unix:{state / 'peer.sock'}"
        wait(
            lambda: (
                (state / "peer.sock").exists()
                and fetch(endpoint, "/status")["exabgp"]["running"]
                and len(tree(proc.pid)) >= 3
            ),
            60,
            "bgpflat and its ExaBGP to start",
            interval=0.1,
        )
        time.sleep(0.5)
        before = cpu_by_pid(tree(proc.pid))
        baseline = self.feed(tree(proc.pid))

        def session() -> dict[str, Any] | None:
            sessions = fetch(endpoint, "/status")["sessions"]
            s = sessions[0] if sessions else None
            return s if s and s["state"] == "up" and s["eor"].get("ipv4 unicast") else None

        s = wait(session, 300, "bgpflat's End-of-RIB", interval=0.25)
        pids = tree(proc.pid)
        result = {
            "seconds": s["eor"]["ipv4 unicast"] - s["up_since"],
            "cpu": cpu_seconds(pids) - baseline,
            "cpu_split": cpu_split(["bgpflat", "exabgp", "collector"], pids, before),
            "rss_kib": {"bgpflat": hwm_kib(proc.pid), "exabgp+collector": sum(hwm_kib(p) for p in pids[1:])},
        }
        if s["paths"] != self.total:
            raise SystemExit(f"bgpflat learned {s['paths']} paths, expected {self.total}")
        Lab.stop(proc)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--receivers", default="exabgp,gobgp,bgpflat")
    parser.add_argument("--work", type=Path, default=None, help="keep configs and logs here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    import tempfile

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-peer-"))
    work.mkdir(parents=True, exist_ok=True)
    receivers = args.receivers.split(",")
    results: dict[str, list[dict[str, Any]]] = {r: [] for r in receivers}
    with Lab() as lab:
        node = lab.netns("node")
        peer = lab.netns("peer")
        lab.veth(node, "n-peer", [f"{NODE_IP}/24"], peer, "p-node", [f"{PEER_IP}/24"])
        conf = calico_bird_conf(
            directory=work / "node",
            router_id=NODE_IP,
            local_as=64512,
            peers=[(PROTOCOL, PEER_IP, NODE_IP, 65000)],
            bulk_routes=args.routes,
        )
        lab.start(node, ["bird", "-f", "-c", str(conf), "-s", str(work / "node" / "bird.ctl")], log=work / "bird.out")
        bench = Bench(lab, node, peer, work, args.routes)
        wait(
            lambda: (
                (work / "node" / "bird.ctl").exists()
                and f"{args.routes} imported" in bench.birdc("show", "protocols", "all", "bulk")
            ),
            60,
            "BIRD to load the routes",
            interval=0.2,
        )
        print(
            f"BIRD holds {bench.total} exportable routes; {args.runs} run(s) per receiver, interleaved", file=sys.stderr
        )
        for i in range(args.runs):
            for receiver in receivers:
                bench.session_off()
                result = getattr(bench, f"run_{receiver}")(i)
                results[receiver].append(result)
                print(
                    f"  run {i + 1} {receiver:8} {result['seconds']:.3f} s  cpu {result['cpu']:.2f} s "
                    f"{result.get('cpu_split', '')}  rss {result['rss_kib']}",
                    file=sys.stderr,
                )
    summary: dict[str, Any] = {"routes": bench.total, "runs": args.runs, "receivers": {}}
    for receiver, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = max(sum(r["rss_kib"].values()) for r in runs)
        summary["receivers"][receiver] = {
            "median_seconds": round(seconds, 3),
            "median_cpu_seconds": round(statistics.median(r["cpu"] for r in runs), 3),
            "median_cpu_by_process": {
                name: round(statistics.median(r["cpu_split"][name] for r in runs), 3)
                for name in runs[0].get("cpu_split", {})
            },
            "all_seconds": [round(r["seconds"], 3) for r in runs],
            "routes_per_second": round(bench.total / seconds),
            "peak_rss_mib": round(peak / 1024, 1),
            "peak_rss_by_process_mib": {k: round(v / 1024, 1) for k, v in runs[-1]["rss_kib"].items()},
        }
    print(f"\n{'receiver':10} {'up->EOR (median)':>17} {'routes/s':>10} {'CPU s':>7} {'peak RSS':>10}")
    for receiver, row in summary["receivers"].items():
        print(
            f"{receiver:10} {row['median_seconds']:>15.3f} s {row['routes_per_second']:>10,} "
            f"{row['median_cpu_seconds']:>7.2f} {row['peak_rss_mib']:>7.1f} MiB"
        )
    ours = summary["receivers"].get("bgpflat")
    raw = summary["receivers"].get("exabgp")
    gobgp = summary["receivers"].get("gobgp")
    if ours and raw:
        overhead = ours["median_seconds"] / raw["median_seconds"] - 1
        summary["overhead_vs_raw_exabgp"] = round(overhead, 3)
        cpu_overhead = ours["median_cpu_seconds"] / raw["median_cpu_seconds"] - 1
        summary["cpu_overhead_vs_raw_exabgp"] = round(cpu_overhead, 3)
        print(f"\nbgpflat vs raw ExaBGP: {overhead:+.1%} time (goal <= +10%), {cpu_overhead:+.1%} CPU")
    if ours and gobgp:
        ratio = ours["median_seconds"] / gobgp["median_seconds"]
        summary["ratio_vs_gobgp"] = round(ratio, 2)
        print(f"bgpflat vs GoBGP: {ratio:.2f}x the time (goal <= 2x)")
    if ours:
        print(f"bgpflat routes/s: {ours['routes_per_second']:,} (goal >= 70,000)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
