"""Network namespaces, veth pairs and processes for tests, all cleaned up by name and PID.

    with Lab() as lab:
        node = lab.netns("node")
        peer = lab.netns("peer")
        lab.veth(node, "eth0", ["10.0.0.1/24"], peer, "eth0", ["10.0.0.100/24"])
        bird = lab.start(node, ["bird", "-f", ...], log=tmp_path / "bird.log")
        ...

Every namespace gets a random suffix, so concurrent runs never collide. ``Lab.close`` (also on
exceptions) stops every process it started and every process still inside its namespaces, by PID
(SIGTERM, then SIGKILL), then deletes the namespaces. Nothing is ever killed by name.

Also here: ``calico_bird_conf``, a BIRD 1.6 config shaped like calico/node's confd templates
(exabgp-lab-notes §3), because several suites need a "Calico node" to talk to.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def bgpflat_argv(*args: str) -> list[str]:
    """Run the CLI of this checkout with this interpreter."""
    return [sys.executable, "-c", "import sys; from bgpflat.cli import main; sys.exit(main())", *args]


def bgpflat_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "NO_COLOR": "1", "COLUMNS": "200"}


def start_peer(
    lab: Lab,
    ns: Netns,
    *,
    listen: str,
    neighbor: str,
    state_dir: Path,
    local_as: str = "65000",
    peer_as: str = "64512",
    extra: Sequence[str] = (),
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[Any]:
    """``bgpflat peer run`` inside ``ns`` with one neighbor, tracked by ``lab``."""
    argv = bgpflat_argv(
        "peer",
        "run",
        "--local-as",
        local_as,
        "--listen",
        listen,
        "--neighbor",
        neighbor,
        "--peer-as",
        peer_as,
        "--state-dir",
        str(state_dir),
        *extra,
    )
    return lab.start(ns, argv, log=log, env=bgpflat_env() if env is None else env)


def skip_unless_root_and(*binaries: str) -> None:
    """Skip the calling test (or module) when it cannot run here, saying why."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (ip)")
    missing = [b for b in binaries if shutil.which(b) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH")


def wait_for(condition: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    """Poll until ``condition()`` is truthy; returns its value or fails the test with ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what or condition}; last value {last!r}")


class Netns:
    def __init__(self, name: str) -> None:
        self.name = name

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(argv), check=check, capture_output=True, text=True, timeout=timeout)

    def pids(self) -> list[int]:
        result = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True, check=False)
        return [int(p) for p in result.stdout.split()]

    def __repr__(self) -> str:
        return f"Netns({self.name!r})"


class Lab:
    """A set of namespaces and processes owned by one test."""

    def __init__(self, prefix: str = "bf") -> None:
        self.suffix = secrets.token_hex(3)
        self.prefix = prefix
        self.namespaces: list[Netns] = []
        self.processes: list[subprocess.Popen[Any]] = []
        self._logs: list[IO[bytes]] = []

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def netns(self, short: str) -> Netns:
        name = f"{self.prefix}{self.suffix}-{short}"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        ns = Netns(name)
        self.namespaces.append(ns)
        ns.run("ip", "link", "set", "lo", "up")
        return ns

    def veth(self, a: Netns, a_if: str, a_addrs: Iterable[str], b: Netns, b_if: str, b_addrs: Iterable[str]) -> None:
        """A veth pair between two namespaces, with addresses (``10.0.0.1/24``, ``fd00::1/64``)."""
        subprocess.run(
            ["ip", "link", "add", a_if, "netns", a.name, "type", "veth", "peer", "name", b_if, "netns", b.name],
            check=True,
            capture_output=True,
        )
        for ns, ifname, addrs in ((a, a_if, a_addrs), (b, b_if, b_addrs)):
            for addr in addrs:
                # nodad: IPv6 addresses are usable at once instead of after duplicate detection.
                extra = ["nodad"] if ":" in addr else []
                ns.run("ip", "addr", "add", addr, "dev", ifname, *extra)
            ns.run("ip", "link", "set", ifname, "up")

    def start(
        self,
        ns: Netns | None,
        argv: Sequence[str],
        *,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[Any]:
        """Start a process (inside ``ns`` if given), tracked for cleanup by PID."""
        output: IO[bytes] | int = subprocess.DEVNULL
        if log is not None:
            handle = log.open("ab")
            self._logs.append(handle)
            output = handle
        command = ns.command(argv) if ns is not None else list(argv)
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
        self.processes.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        """Signal one process by PID and wait for it; SIGKILL if it does not go in time."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        return proc.returncode

    def close(self) -> None:
        for proc in reversed(self.processes):
            self.stop(proc, timeout=5)
        # Children the tracked processes started (ExaBGP under bgpflat, its collector…) may
        # outlive them; whatever still runs inside our namespaces is ours, and goes by PID.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [pid for ns in self.namespaces for pid in ns.pids()]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 3
            while pids and time.monotonic() < deadline and any(_alive(p) for p in pids):
                time.sleep(0.05)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns.name], check=False, capture_output=True)
        self.namespaces.clear()
        self.processes.clear()
        for handle in self._logs:
            handle.close()
        self._logs.clear()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0; it is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def calico_bird_conf(
    *,
    directory: Path,
    router_id: str,
    local_as: int,
    peers: Sequence[tuple[str, str, str, int]],
    blocks: Sequence[str] = ("10.244.0.0/26", "10.244.0.64/26"),
    service_cidrs: Sequence[str] = ("10.96.0.0/12",),
    community_cidr: str | None = "10.244.0.0/26",
    bulk_routes: int = 0,
) -> Path:
    """Write a calico/node-style BIRD 1.6 config into ``directory``; returns bird.conf.

    ``peers`` are (protocol name, neighbor IP, source address, neighbor AS). ``bulk_routes``
    adds N /32 blackholes from 100.64.0.0/10 in their own ``protocol static bulk`` (a pool CIDR,
    so they are exported), for throughput tests. The static routes live in ``statics.cfg`` so a
    test can rewrite it and run ``birdc configure`` to announce or withdraw.
    """
    directory.mkdir(parents=True, exist_ok=True)
    write_bird_statics(directory, blocks=blocks, service_cidrs=service_cidrs)
    bulk = write_bird_bulk(directory, bulk_routes)
    aggr = ["function calico_aggr ()", "{"]
    for block in blocks:
        aggr += [f"      if ( net = {block} ) then {{ accept; }}", f"      if ( net ~ {block} ) then {{ reject; }}"]
    aggr.append("}")
    communities = ""
    if community_cidr:
        communities = (
            f"  if ( net ~ {community_cidr} ) then {{\n"
            f"    bgp_community.add(({local_as}, 100));\n"
            f"    bgp_large_community.add(({local_as}, 1, 2));\n  }}\n"
        )
    accepts = "".join(
        f"  if ( net ~ {cidr} ) then {{ accept; }}\n" for cidr in (*service_cidrs, "10.244.0.0/16", "100.64.0.0/10")
    )
    conf = directory / "bird.conf"
    conf.write_text(
        f'include "{directory}/statics.cfg";\n'
        f'include "{bulk}";\n' + "\n".join(aggr) + "\n"
        "function apply_communities ()\n{\n" + communities + "}\n"
        "filter calico_export_to_bgp_peers {\n  apply_communities();\n  calico_aggr();\n" + accepts + "  reject;\n}\n"
        'filter calico_kernel_programming {\n  if ( proto = "bulk" ) then reject;\n  accept;\n}\n'
        f"router id {router_id};\n"
        f'log "{directory}/bird.log" all;\n'
        "protocol kernel { learn; persist; scan time 2; import all; export filter calico_kernel_programming;"
        " graceful restart; merge paths on; }\n"
        "protocol device { scan time 2; }\n"
        'protocol direct { debug { states }; interface -"cali*", -"kube-ipvs*", "*"; }\n'
        "template bgp bgp_template {\n"
        "  debug { states };\n"
        '  description "Connection to BGP peer";\n'
        f"  local as {local_as};\n"
        "  multihop;\n  gateway recursive;\n  import all;\n"
        "  export filter calico_export_to_bgp_peers;\n"
        "  add paths on;\n  graceful restart;\n"
        "  connect delay time 2;\n  connect retry time 5;\n  error wait time 5,30;\n"
        "}\n"
        + "".join(
            f"protocol bgp {name} from bgp_template {{ neighbor {ip} as {asn}; source address {source}; }}\n"
            for name, ip, source, asn in peers
        )
    )
    return conf


def write_bird_statics(directory: Path, *, blocks: Sequence[str], service_cidrs: Sequence[str]) -> None:
    """The anonymous static protocol Calico uses for its blocks and service CIDRs."""
    routes = "".join(f"   route {cidr} blackhole;\n" for cidr in (*blocks, *service_cidrs))
    (directory / "statics.cfg").write_text("protocol static {\n" + routes + "}\n")


def write_bird_bulk(directory: Path, count: int) -> Path:
    """``bulk.cfg``: ``count`` /32 blackholes from 100.64.0.0/10 (empty when 0)."""
    lines = []
    if count:
        lines.append("protocol static bulk {")
        for i in range(count):
            value = (100 << 24) | (64 << 16) | i
            lines.append(f"   route {value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}/32 blackhole;")
        lines.append("}")
    path = directory / "bulk.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path
