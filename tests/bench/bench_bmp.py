"""The BMP station against the ExaBGP verification peer: the same BIRD table, the same run.

    sudo python tests/bench/bench_bmp.py [--routes 100000] [--runs 3] [--policies pre,post]

A Calico-style BIRD 1.6 node (tests/integration/netns.py) holds N /32s plus its 3 Calico routes and
has two sessions, enabled one at a time, run by run interleaved:

* ``peer``: straight to ``bgpflat peer run`` (ExaBGP under bgpflat), as ``bench_peer.py`` measures
  it: session up -> End-of-RIB, the times bgpflat records when it applies them;
* ``bmp``: to an FRR ToR (``bgpd -M bmp -n``: BMP module, no kernel routes) that streams the
  node's Adj-RIB-In (the ``--policies`` tables, pre and post by default, as ``render tor --bmp``
  configures it) to ``bgpflat bmp run``. Time: from the station's Peer Up for the node to the moment
  the station holds all N+3 routes in every monitored table (polled every 0.05 s; FRR sends no
  End-of-RIB for a session that comes up under a running BMP session). This includes FRR's own
  work of receiving and re-sending the table, which is the path the issue asks about.

Printed per path: time (median of runs), routes/s, CPU seconds of bgpflat's processes (the
station; the peer with ExaBGP and the collector) and, for the BMP path, of FRR's bgpd; peak RSS
(VmHWM). The ratios peer/bmp are the figures to quote (goal: the BMP path at least 2x faster).
Nothing is asserted: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(HERE))

from bench_peer import cpu_by_pid, cpu_seconds, hwm_kib, tree, wait  # noqa: E402
from netns import Lab, Netns, bgpflat_argv, calico_bird_conf, start_peer  # noqa: E402

from bgpflat.daemon.endpoint import fetch  # noqa: E402

NODE_PEER_IP, PEER_IP = "10.0.0.1", "10.0.0.100"
NODE_TOR_IP, TOR_IP = "10.0.1.1", "10.0.1.254"
TOR_MON, STATION_IP, STATION_PORT = "10.0.9.1", "10.0.9.100", 5000
TO_PEER, TO_TOR = "Global_10_0_0_100", "Global_10_0_1_254"


def bgpd_conf(policies: list[str]) -> str:
    monitors = "".join(f"  bmp monitor ipv4 unicast {p}-policy\n" for p in policies)
    return (
        "frr defaults traditional\nhostname tor\n"
        f"router bgp 65000\n bgp router-id {TOR_IP}\n no bgp ebgp-requires-policy\n"
        f" neighbor {NODE_TOR_IP} remote-as 64512\n"
        f" address-family ipv4 unicast\n  neighbor {NODE_TOR_IP} soft-reconfiguration inbound\n"
        " exit-address-family\n"
        f" bmp targets bgpflat\n  bmp connect {STATION_IP} port {STATION_PORT} min-retry 100 max-retry 1000\n"
        f"{monitors} exit\nexit\n"
    )


def frr_argv(binary: str, runtime: Path, name: str, *extra: str) -> list[str]:
    return [
        binary, "-u", "frr", "-g", "frr", "--vty_socket", str(runtime), "-P", "0",
        "-f", str(runtime / f"{name}.conf"), "-z", str(runtime / "zserv.api"),
        "-i", str(runtime / f"{name}.pid"), "--log", f"file:{runtime / f'{name}.log'}", *extra,
    ]  # fmt: skip


class Bench:
    def __init__(self, lab: Lab, nss: dict[str, Netns], work: Path, routes: int, policies: list[str]) -> None:
        self.lab, self.ns, self.work, self.policies = lab, nss, work, policies
        self.total = routes + 3

    def birdc(self, *args: str) -> str:
        return self.ns["node"].run("birdc", "-s", str(self.work / "node" / "bird.ctl"), *args).stdout

    def off(self, protocol: str) -> None:
        self.birdc("disable", protocol)
        wait(lambda: "Established" not in self.birdc("show", "protocols", protocol), 60, "BIRD to drop a session")

    def run_peer(self, i: int) -> dict[str, Any]:
        state = self.work / f"peer-{i}"
        proc = start_peer(
            self.lab,
            self.ns["peer"],
            listen=PEER_IP,
            neighbor=NODE_PEER_IP,
            state_dir=state,
            log=self.work / f"peer-{i}.log",
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        endpoint = f"unix:{state / 'peer.sock'}"
        wait(
            lambda: (state / "peer.sock").exists() and fetch(endpoint, "/status")["exabgp"]["running"],
            60,
            "the peer and its ExaBGP to start",
        )
        time.sleep(0.5)
        baseline = cpu_seconds(tree(proc.pid))
        self.birdc("enable", TO_PEER)

        def session() -> dict[str, Any] | None:
            sessions = fetch(endpoint, "/status")["sessions"]
            s = sessions[0] if sessions else None
            return s if s and s["state"] == "up" and s["eor"].get("ipv4 unicast") else None

        s = wait(session, 600, "the peer's End-of-RIB", interval=0.25)
        pids = tree(proc.pid)
        result = {
            "seconds": s["eor"]["ipv4 unicast"] - s["up_since"],
            "cpu": cpu_seconds(pids) - baseline,
            "rss_mib": sum(hwm_kib(p) for p in pids) / 1024,
            "paths": s["paths"],
        }
        Lab.stop(proc)
        self.off(TO_PEER)
        return result

    def run_bmp(self, i: int, bgpd_pid: int) -> dict[str, Any]:
        state = self.work / f"bmp-{i}"
        argv = bgpflat_argv("bmp", "run", "--listen", f"{STATION_IP}:{STATION_PORT}", "--state-dir", str(state))
        proc = self.lab.start(
            self.ns["mon"], argv, log=self.work / f"bmp-{i}.log", env={**os.environ, "PYTHONPATH": str(REPO)}
        )
        endpoint = f"unix:{state / 'bmp.sock'}"

        def status() -> dict[str, Any]:
            return fetch(endpoint, "/status", role="bmp station")

        wait(lambda: (state / "bmp.sock").exists() and any(r["state"] == "up" for r in status()["routers"]), 60, "FRR")
        time.sleep(0.5)
        baseline = cpu_seconds([proc.pid])
        frr_before = cpu_by_pid([bgpd_pid]).get(bgpd_pid, 0.0)
        self.birdc("enable", TO_TOR)

        def complete() -> float | None:
            routers = status()["routers"]
            peers = [p for r in routers for p in r["peers"] if p["peer"] == NODE_TOR_IP and p["state"] == "up"]
            tables = peers[0]["tables"] if peers else {}
            done = all(tables.get(p, {}).get("paths") == self.total for p in self.policies)
            return time.time() if done else None

        finished = wait(complete, 600, "the station's complete tables", interval=0.05)
        events = [json.loads(line) for line in (state / "events.jsonl").read_text().splitlines()]
        up = next(e for e in events if e["event"] == "peer-up" and e["peer"] == NODE_TOR_IP)
        up_at = time.mktime(time.strptime(up["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        up_at += float("0." + up["time"][20:23])
        result = {
            "seconds": finished - up_at,
            "cpu": cpu_seconds([proc.pid]) - baseline,
            "frr_cpu": cpu_by_pid([bgpd_pid]).get(bgpd_pid, 0.0) - frr_before,
            "rss_mib": hwm_kib(proc.pid) / 1024,
        }
        self.off(TO_TOR)
        Lab.stop(proc)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--policies", default="pre,post", help="the BMP tables FRR streams (pre, post or both)")
    parser.add_argument("--work", type=Path, default=None, help="keep configs and logs here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    policies = args.policies.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-bmp-"))
    work.mkdir(parents=True, exist_ok=True)
    frr_dir = Path(tempfile.mkdtemp(prefix="bgpflat-bench-frr-"))  # FRR's user cannot enter root's tmp
    results: dict[str, list[dict[str, Any]]] = {"peer": [], "bmp": []}
    try:
        with Lab() as lab:
            nss = {name: lab.netns(name) for name in ("node", "peer", "tor", "mon")}
            lab.veth(nss["node"], "n-peer", [f"{NODE_PEER_IP}/24"], nss["peer"], "p-node", [f"{PEER_IP}/24"])
            lab.veth(nss["node"], "n-tor", [f"{NODE_TOR_IP}/24"], nss["tor"], "t-node", [f"{TOR_IP}/24"])
            lab.veth(nss["tor"], "t-mon", [f"{TOR_MON}/24"], nss["mon"], "m-tor", [f"{STATION_IP}/24"])
            conf = calico_bird_conf(
                directory=work / "node",
                router_id=NODE_PEER_IP,
                local_as=64512,
                peers=[(TO_PEER, PEER_IP, NODE_PEER_IP, 65000), (TO_TOR, TOR_IP, NODE_TOR_IP, 65000)],
                bulk_routes=args.routes,
            )
            bird = ["bird", "-f", "-c", str(conf), "-s", str(work / "node" / "bird.ctl")]
            lab.start(nss["node"], bird, log=work / "bird.out")
            bench = Bench(lab, nss, work, args.routes, policies)
            wait(
                lambda: (
                    (work / "node" / "bird.ctl").exists()
                    and f"{args.routes} imported" in bench.birdc("show", "protocols", "all", "bulk")
                ),
                120,
                "BIRD to load the routes",
            )
            for protocol in (TO_PEER, TO_TOR):
                bench.off(protocol)
            (frr_dir / "zebra.conf").write_text("hostname tor\n")
            (frr_dir / "bgpd.conf").write_text(bgpd_conf(policies))
            user = pwd.getpwnam("frr")
            for path in (frr_dir, *frr_dir.iterdir()):
                os.chown(path, user.pw_uid, user.pw_gid)
            lab.start(nss["tor"], frr_argv("/usr/lib/frr/zebra", frr_dir, "zebra"), log=work / "zebra.out")
            wait(lambda: (frr_dir / "zserv.api").exists(), 30, "zebra")
            bgpd = lab.start(nss["tor"], frr_argv("/usr/lib/frr/bgpd", frr_dir, "bgpd", "-M", "bmp", "-n"))
            wait(lambda: (frr_dir / "bgpd.vty").exists(), 30, "bgpd")
            print(f"BIRD holds {bench.total} routes; {args.runs} run(s) per path, interleaved", file=sys.stderr)
            for i in range(args.runs):
                for name in ("peer", "bmp"):
                    result = bench.run_peer(i) if name == "peer" else bench.run_bmp(i, bgpd.pid)
                    results[name].append(result)
                    print(f"  run {i + 1} {name:5} {json.dumps(result)}", file=sys.stderr)
    finally:
        shutil.rmtree(frr_dir, ignore_errors=True)
    summary: dict[str, Any] = {"routes": bench.total, "runs": args.runs, "policies": policies, "paths": {}}
    for name, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        summary["paths"][name] = {
            "median_seconds": round(seconds, 3),
            "all_seconds": [round(r["seconds"], 3) for r in runs],
            "routes_per_second": round(bench.total / seconds),
            "median_cpu_seconds": round(statistics.median(r["cpu"] for r in runs), 3),
            "peak_rss_mib": round(max(r["rss_mib"] for r in runs), 1),
        }
        if name == "bmp":
            summary["paths"][name]["median_frr_cpu_seconds"] = round(statistics.median(r["frr_cpu"] for r in runs), 3)
    peer, bmp = summary["paths"]["peer"], summary["paths"]["bmp"]
    summary["time_ratio_peer_over_bmp"] = round(peer["median_seconds"] / bmp["median_seconds"], 2)
    summary["cpu_ratio_peer_over_bmp"] = round(peer["median_cpu_seconds"] / bmp["median_cpu_seconds"], 2)
    summary["rss_ratio_peer_over_bmp"] = round(peer["peak_rss_mib"] / bmp["peak_rss_mib"], 2)
    print(f"\n{'path':6} {'up->complete':>13} {'routes/s':>10} {'CPU s':>7} {'peak RSS':>10}")
    for name, row in summary["paths"].items():
        print(
            f"{name:6} {row['median_seconds']:>11.3f} s {row['routes_per_second']:>10,} "
            f"{row['median_cpu_seconds']:>7.2f} {row['peak_rss_mib']:>7.1f} MiB"
        )
    print(
        f"\npeer/bmp: time {summary['time_ratio_peer_over_bmp']}x, CPU {summary['cpu_ratio_peer_over_bmp']}x, "
        f"RSS {summary['rss_ratio_peer_over_bmp']}x (goal: time >= 2x)"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
