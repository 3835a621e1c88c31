"""The BMP station against the ExaBGP verification peer: the same BIRD table, the same run.

    sudo python tests/bench/bench_bmp.py [--routes 100000] [--runs 3] [--tor frr,gobgp] [--policies pre,post]

A Calico-style BIRD 1.6 node (tests/integration/netns.py) holds N /32s plus its 3 Calico routes and
has one session per receiver, enabled one at a time, run by run interleaved:

* ``peer``: straight to ``bgpflat peer run`` (ExaBGP under bgpflat), as ``bench_peer.py`` measures
  it: session up -> End-of-RIB, the times bgpflat records when it applies them;
* ``bmp`` through each ToR (``--tor``): the node's session goes to the ToR, which streams its tables
  to ``bgpflat bmp run``. Time: from the station's Peer Up for the node to the moment the station
  holds all N+3 routes in every monitored table (polled every 0.05 s; neither ToR sends End-of-RIB
  for a peer that comes up under a running BMP session). This includes the ToR's own work of
  receiving and re-sending the table, which is the path the issue asks about.
  - ``frr``: ``bgpd -M bmp -n`` (BMP module, no kernel routes); ``--policies`` (pre and post by
    default, as ``render tor --bmp`` configures it). FRR writes one prefix per BMP message.
  - ``gobgp``: ``gobgpd`` (3.10) with the station added per run (``gobgp bmp add``, so that its
    reconnect backoff never delays a run); one table gives that ``route-monitoring-policy``, more
    give ``all``, which streams pre-policy, post-policy and Loc-RIB (all three are then waited
    for). Its pre-policy feed is the node's UPDATEs as received (many prefixes per message); its
    post-policy and Loc-RIB feeds are one path per message.

Printed per path: time (median of runs), routes/s, CPU seconds of bgpflat's processes (the
station; the peer with ExaBGP and the collector) and of the ToR, peak RSS (VmHWM), and CPU
microseconds per route of bgpflat's receiver. The ratios peer/bmp per ToR are the figures to quote
(goal: the BMP path at least 2x faster). Nothing is asserted: this is a measurement, not a test.
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
NODE_GOBGP_IP, GOBGP_IP = "10.0.2.1", "10.0.2.254"
GOBGP_MON, GOBGP_STATION_IP = "10.0.8.1", "10.0.8.100"
TO_PEER, TO_TOR, TO_GOBGP = "Global_10_0_0_100", "Global_10_0_1_254", "Global_10_0_2_254"
GOBGP_POLICIES: dict[tuple[str, ...], str] = {("pre",): "pre", ("post",): "post", ("loc-rib",): "local-rib"}


def gobgpd_toml() -> str:
    return (
        f'[global.config]\n  as = 65000\n  router-id = "{GOBGP_IP}"\n'
        f'[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "{NODE_GOBGP_IP}"\n    peer-as = 64512\n'
    )


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


class Tor:
    """One ToR the node's session can go to, and where its BMP feed reaches the station."""

    def __init__(self, name: str, ns: Netns, protocol: str, node_ip: str, station_ip: str, policies: list[str]):
        self.name, self.ns, self.protocol, self.node_ip = name, ns, protocol, node_ip
        self.station_ip, self.policies = station_ip, policies
        self.pid = 0

    def attach(self) -> None:
        """Before the station waits for the ToR's BMP session (FRR dials by itself)."""

    def detach(self) -> None:
        """After a run, before the station stops."""


class GobgpTor(Tor):
    def attach(self) -> None:
        policy = GOBGP_POLICIES.get(tuple(self.policies), "all")
        self.ns.run("gobgp", "bmp", "add", f"{self.station_ip}:{STATION_PORT}", policy)

    def detach(self) -> None:
        self.ns.run("gobgp", "bmp", "del", f"{self.station_ip}:{STATION_PORT}")

    @property
    def tables(self) -> list[str]:
        return self.policies if tuple(self.policies) in GOBGP_POLICIES else ["pre", "post", "loc-rib"]


class Bench:
    def __init__(self, lab: Lab, nss: dict[str, Netns], work: Path, routes: int) -> None:
        self.lab, self.ns, self.work = lab, nss, work
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

    def run_bmp(self, i: int, tor: Tor) -> dict[str, Any]:
        state = self.work / f"bmp-{tor.name}-{i}"
        argv = bgpflat_argv("bmp", "run", "--listen", f"{tor.station_ip}:{STATION_PORT}", "--state-dir", str(state))
        proc = self.lab.start(
            self.ns["mon"], argv, log=self.work / f"bmp-{tor.name}-{i}.log", env={**os.environ, "PYTHONPATH": str(REPO)}
        )
        endpoint = f"unix:{state / 'bmp.sock'}"

        def status() -> dict[str, Any]:
            return fetch(endpoint, "/status", role="bmp station")

        wait(lambda: (state / "bmp.sock").exists(), 60, "the station")
        tor.attach()
        wait(lambda: any(r["state"] == "up" for r in status()["routers"]), 60, f"{tor.name}'s BMP session")
        time.sleep(0.5)
        baseline = cpu_seconds([proc.pid])
        tor_before = cpu_by_pid([tor.pid]).get(tor.pid, 0.0)
        self.birdc("enable", tor.protocol)
        tables = tor.tables if isinstance(tor, GobgpTor) else tor.policies

        def complete() -> float | None:
            paths: dict[str, int] = {}
            for router in status()["routers"]:
                for peer in router["peers"]:
                    if peer["state"] == "up" and peer["peer"] in (tor.node_ip, "0.0.0.0"):
                        paths.update({policy: table["paths"] for policy, table in peer["tables"].items()})
            done = all(paths.get(p) == self.total for p in tables)
            return time.time() if done else None

        finished = wait(complete, 900, f"the station's complete tables from {tor.name}", interval=0.05)
        events = [json.loads(line) for line in (state / "events.jsonl").read_text().splitlines()]
        up = next(e for e in events if e["event"] == "peer-up" and e["peer"] == tor.node_ip)
        up_at = time.mktime(time.strptime(up["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        up_at += float("0." + up["time"][20:23])
        result = {
            "seconds": finished - up_at,
            "cpu": cpu_seconds([proc.pid]) - baseline,
            "tor_cpu": cpu_by_pid([tor.pid]).get(tor.pid, 0.0) - tor_before,
            "rss_mib": hwm_kib(proc.pid) / 1024,
            "tables": tables,
        }
        self.off(tor.protocol)
        tor.detach()
        Lab.stop(proc)
        return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--routes", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tor", default="frr,gobgp", help="the ToRs that stream BMP (frr, gobgp or both)")
    parser.add_argument(
        "--policies", default=None, help="the BMP tables the ToR streams (pre, post, loc-rib; default per ToR)"
    )
    parser.add_argument("--work", type=Path, default=None, help="keep configs and logs here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    tor_names = args.tor.split(",")
    if not set(tor_names) <= {"frr", "gobgp"}:
        raise SystemExit(f"--tor {args.tor!r}: give frr, gobgp or frr,gobgp")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-bmp-"))
    work.mkdir(parents=True, exist_ok=True)
    frr_dir = Path(tempfile.mkdtemp(prefix="bgpflat-bench-frr-"))  # FRR's user cannot enter root's tmp
    results: dict[str, list[dict[str, Any]]] = {"peer": [], **{name: [] for name in tor_names}}
    try:
        with Lab() as lab:
            nss = {name: lab.netns(name) for name in ("node", "peer", "tor", "gtor", "mon")}
            lab.veth(nss["node"], "n-peer", [f"{NODE_PEER_IP}/24"], nss["peer"], "p-node", [f"{PEER_IP}/24"])
            lab.veth(nss["node"], "n-tor", [f"{NODE_TOR_IP}/24"], nss["tor"], "t-node", [f"{TOR_IP}/24"])
            lab.veth(nss["tor"], "t-mon", [f"{TOR_MON}/24"], nss["mon"], "m-tor", [f"{STATION_IP}/24"])
            lab.veth(nss["node"], "n-gtor", [f"{NODE_GOBGP_IP}/24"], nss["gtor"], "g-node", [f"{GOBGP_IP}/24"])
            lab.veth(nss["gtor"], "g-mon", [f"{GOBGP_MON}/24"], nss["mon"], "m-gtor", [f"{GOBGP_STATION_IP}/24"])
            conf = calico_bird_conf(
                directory=work / "node",
                router_id=NODE_PEER_IP,
                local_as=64512,
                peers=[
                    (TO_PEER, PEER_IP, NODE_PEER_IP, 65000),
                    (TO_TOR, TOR_IP, NODE_TOR_IP, 65000),
                    (TO_GOBGP, GOBGP_IP, NODE_GOBGP_IP, 65000),
                ],
                bulk_routes=args.routes,
            )
            bird = ["bird", "-f", "-c", str(conf), "-s", str(work / "node" / "bird.ctl")]
            lab.start(nss["node"], bird, log=work / "bird.out")
            bench = Bench(lab, nss, work, args.routes)
            wait(
                lambda: (
                    (work / "node" / "bird.ctl").exists()
                    and f"{args.routes} imported" in bench.birdc("show", "protocols", "all", "bulk")
                ),
                120,
                "BIRD to load the routes",
            )
            for protocol in (TO_PEER, TO_TOR, TO_GOBGP):
                bench.off(protocol)
            tors: list[Tor] = []
            if "frr" in tor_names:
                policies = (args.policies or "pre,post").split(",")
                (frr_dir / "zebra.conf").write_text("hostname tor\n")
                (frr_dir / "bgpd.conf").write_text(bgpd_conf(policies))
                user = pwd.getpwnam("frr")
                for path in (frr_dir, *frr_dir.iterdir()):
                    os.chown(path, user.pw_uid, user.pw_gid)
                lab.start(nss["tor"], frr_argv("/usr/lib/frr/zebra", frr_dir, "zebra"), log=work / "zebra.out")
                wait(lambda: (frr_dir / "zserv.api").exists(), 30, "zebra")
                bgpd = lab.start(nss["tor"], frr_argv("/usr/lib/frr/bgpd", frr_dir, "bgpd", "-M", "bmp", "-n"))
                wait(lambda: (frr_dir / "bgpd.vty").exists(), 30, "bgpd")
                frr = Tor("frr", nss["tor"], TO_TOR, NODE_TOR_IP, STATION_IP, policies)
                frr.pid = bgpd.pid
                tors.append(frr)
            if "gobgp" in tor_names:
                policies = (args.policies or "pre,post,loc-rib").split(",")
                (work / "gobgpd.toml").write_text(gobgpd_toml())
                argv = ["gobgpd", "-f", str(work / "gobgpd.toml"), "-p", "--api-hosts", "127.0.0.1:50051"]
                gobgpd = lab.start(nss["gtor"], [*argv, "--pprof-disable"], log=work / "gobgpd.log")
                wait(lambda: nss["gtor"].run("gobgp", "global", check=False).returncode == 0, 30, "gobgpd")
                gobgp = GobgpTor("gobgp", nss["gtor"], TO_GOBGP, NODE_GOBGP_IP, GOBGP_STATION_IP, policies)
                gobgp.pid = gobgpd.pid
                tors.append(gobgp)
            print(f"BIRD holds {bench.total} routes; {args.runs} run(s) per path, interleaved", file=sys.stderr)
            for i in range(args.runs):
                result = bench.run_peer(i)
                results["peer"].append(result)
                print(f"  run {i + 1} peer  {json.dumps(result)}", file=sys.stderr)
                for tor in tors:
                    result = bench.run_bmp(i, tor)
                    results[tor.name].append(result)
                    print(f"  run {i + 1} {tor.name:5} {json.dumps(result)}", file=sys.stderr)
    finally:
        shutil.rmtree(frr_dir, ignore_errors=True)
    print_summary(bench.total, args.runs, results)
    return 0


def print_summary(total: int, runs: int, results: dict[str, list[dict[str, Any]]]) -> None:
    summary: dict[str, Any] = {"routes": total, "runs": runs, "paths": {}, "ratios_peer_over_bmp": {}}
    for name, rows in results.items():
        seconds = statistics.median(r["seconds"] for r in rows)
        cpu = statistics.median(r["cpu"] for r in rows)
        row = summary["paths"][name] = {
            "median_seconds": round(seconds, 3),
            "all_seconds": [round(r["seconds"], 3) for r in rows],
            "routes_per_second": round(total / seconds),
            "median_cpu_seconds": round(cpu, 3),
            "cpu_us_per_route": round(cpu / total * 1e6, 1),
            "peak_rss_mib": round(max(r["rss_mib"] for r in rows), 1),
        }
        if name != "peer":
            row["tables"] = rows[0]["tables"]
            row["median_tor_cpu_seconds"] = round(statistics.median(r["tor_cpu"] for r in rows), 3)
    peer = summary["paths"]["peer"]
    for name, row in summary["paths"].items():
        if name != "peer":
            summary["ratios_peer_over_bmp"][name] = {
                "time": round(peer["median_seconds"] / row["median_seconds"], 2),
                "routes_per_second": round(row["routes_per_second"] / peer["routes_per_second"], 2),
                "cpu": round(peer["median_cpu_seconds"] / row["median_cpu_seconds"], 2),
                "rss": round(peer["peak_rss_mib"] / row["peak_rss_mib"], 2),
            }
    print(f"\n{'path':10} {'tables':18} {'up->complete':>13} {'routes/s':>10} {'CPU s':>7} {'us/route':>9} "
          f"{'ToR CPU s':>10} {'peak RSS':>10}")  # fmt: skip
    for name, row in summary["paths"].items():
        label = "peer" if name == "peer" else f"bmp/{name}"
        tor_cpu = f"{row['median_tor_cpu_seconds']:>10.2f}" if name != "peer" else f"{'':>10}"
        print(
            f"{label:10} {','.join(row.get('tables', ['-'])):18} {row['median_seconds']:>11.3f} s "
            f"{row['routes_per_second']:>10,} {row['median_cpu_seconds']:>7.2f} {row['cpu_us_per_route']:>9.1f} "
            f"{tor_cpu} {row['peak_rss_mib']:>7.1f} MiB"
        )
    for name, ratio in summary["ratios_peer_over_bmp"].items():
        print(
            f"peer/bmp via {name}: time {ratio['time']}x, routes/s {ratio['routes_per_second']}x, "
            f"bgpflat CPU {ratio['cpu']}x, RSS {ratio['rss']}x (goal: time >= 2x)"
        )
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
