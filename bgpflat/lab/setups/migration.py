"""``bgpflat lab check`` for ``mode: migration`` labs: turn encapsulation off, gated, under probes.

The lab starts on VXLAN with the ToR peering already up (the office reaches pods and Services).
The check applies the scenario's flat spec (vxlanMode Always -> CrossSubnet -> Never, staged by
bgpflat) with ``apply --gate bmp:<station>``: after each stage the gate waits until what the ToR
reports over BMP (post-policy: what it kept) equals the expected routes of the state just
written, and before encapsulation goes off it requires every node's blocks delivered. All the
while probers (``bgpflat.lab.prober``) GET, at 10+ requests a second in all: every pod from the
office developer host, the pods of each rack from a pod in another rack, and ``http://whoami/``
by name through the office resolver. Then the apply is rolled back, still under probes.

Steps: ``lab healthy``; with ``--fault tor-drops-rack``, ``fault tor-drops-rack`` (an inbound
prefix list on the ToR refusing the last rack's blocks from every node); ``probes ready`` (every
probe answered once; a target that never answers, such as that rack's pods from the office under
the fault, is excluded and listed); ``ToR view`` (gated runs: the station restarted for a table
dump, and without a fault the ToR's post-policy table matching the cluster); ``apply (gated)``
or, with ``--no-gate``, ``apply (no gate)``;
``settle`` (probes keep running while the last change takes effect); ``revert`` and ``settle
after revert``; ``probes`` (at least 100 sent and none failed); ``fault removed``.

Healthy, the gate passes every stage and no probe fails. Under the fault it stops the apply at
the first stage, before encapsulation goes off, and undoes that stage: no probe fails either, and
the check passes. ``--fault tor-drops-rack --no-gate`` is the demonstration of what the gate
prevents: the same apply reaches vxlanMode Never, pod traffic between the racks goes to a ToR
without the route, the probes fail, and the check exits 1.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgpflat.errors import LabError
from bgpflat.lab import prober
from bgpflat.lab.fabric.check import VERIFY_TIMEOUT as CHECK_VERIFY_TIMEOUT
from bgpflat.lab.fabric.check import CheckReport, LabCheck, StepFailed, wait_until
from bgpflat.lab.fabric.flatlab import FlatLab
from bgpflat.lab.fabric.lifecycle import Lab
from bgpflat.lab.fabric.netns import ns_argv, run

FAULT_TOR_DROPS_RACK = "tor-drops-rack"
FAULTS = (FAULT_TOR_DROPS_RACK,)
FAULT_PREFIX_LIST = "BGPFLAT-FAULT-RACK"
PROBE_INTERVAL = 0.2  # seconds between a prober's rounds
PROBE_TIMEOUT = 2.0  # one GET: a TCP SYN lost in a route change is re-sent after 1 s
READY_TIMEOUT = 15.0
SETTLE_SECONDS = 8.0  # BIRD's kernel scan (2 s), confd's reload and the follower's poll, with margin
GATE_TIMEOUT = 30.0
MIN_PROBES = 100


@dataclass(frozen=True, slots=True)
class Result:
    t: float
    source: str
    url: str
    ok: bool
    error: str


@dataclass(slots=True)
class Probes:
    """Probers in the lab's namespaces, read by one thread each; started and stopped by PID."""

    fabric: FlatLab
    targets: dict[str, list[str]]  # source role -> URLs
    results: list[Result] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)  # "source -> url" that never answered
    counted_from: float = 0.0
    _procs: list[subprocess.Popen[str]] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for role, urls in self.targets.items():
            argv = [sys.executable, "-I", prober.__file__, "--interval", str(PROBE_INTERVAL)]
            argv += ["--timeout", str(PROBE_TIMEOUT), *urls]
            proc = subprocess.Popen(
                ns_argv(self.fabric.namespace(role), argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
            )
            self._procs.append(proc)
            thread = threading.Thread(target=self._read, args=(role, proc), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read(self, role: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            result = Result(float(data["t"]), role, str(data["url"]), bool(data["ok"]), str(data.get("error", "")))
            with self._lock:
                self.results.append(result)

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(timeout=PROBE_TIMEOUT + 3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for thread in self._threads:
            thread.join(timeout=2)

    def answered(self) -> set[str]:
        with self._lock:
            return {f"{r.source} -> {r.url}" for r in self.results if r.ok}

    def counted(self, since: float, until: float | None = None) -> dict[str, Any]:
        """Sent and failed probes between ``since`` and ``until`` (unix time), excluded targets left out."""
        with self._lock:
            window = [
                r
                for r in self.results
                if r.t >= max(since, self.counted_from)
                and (until is None or r.t <= until)
                and f"{r.source} -> {r.url}" not in self.excluded
            ]
        failed = [r for r in window if not r.ok]
        data: dict[str, Any] = {"sent": len(window), "failed": len(failed)}
        if failed:
            by_target: dict[str, int] = {}
            for r in failed:
                by_target[f"{r.source} -> {r.url}"] = by_target.get(f"{r.source} -> {r.url}", 0) + 1
            data["failed_by_target"] = dict(sorted(by_target.items()))
            data["first_error"] = failed[0].error
        return data


class MigrationCheck(LabCheck):
    """A gated encapsulation change with probes running (see the module docstring)."""

    def __init__(
        self,
        lab: Lab,
        *,
        verify_timeout: float = CHECK_VERIFY_TIMEOUT,
        progress: Callable[[str], None] | None = None,
        fault: str | None = None,
        gate: bool = True,
    ) -> None:
        super().__init__(lab, verify_timeout=verify_timeout, progress=progress)
        if fault is not None and fault not in FAULTS:
            raise LabError(f"unknown fault {fault!r}; this lab knows {', '.join(FAULTS)}")
        if gate and not lab.record.bmp_station:
            raise LabError(f"{lab.record.scenario}: the gated check needs a BMP station (verifier.bmpPort)")
        self.fault = fault
        self.gate = gate
        self.probes: Probes | None = None

    def run(self) -> CheckReport:
        if not self._step("lab healthy", self._healthy):
            return self.report
        fault_on = False
        try:
            if self.fault is not None:
                fault_on = True
                if not self._step(f"fault {self.fault}", self._install_fault):
                    return self.report
            self.probes = Probes(fabric=self.fabric, targets=self._probe_targets())
            self.probes.start()
            if not self._step("probes ready", self._probes_ready):
                return self.report
            if self.gate and not self._step("ToR view", self._tor_view):
                return self.report
            backup: list[str] = []
            gate: dict[str, Any] = {}
            name = "apply (gated)" if self.gate else "apply (no gate)"
            self._probed(name, lambda: self._apply(backup, gate))
            self.report.extra["gate"] = gate.get("status") if self.gate else None
            self._probed("settle", lambda: self._settle(SETTLE_SECONDS) + "; " + self._path())
            if backup and not gate.get("undone"):
                self._probed("revert", lambda: self._revert(backup[0]))
                self._probed("settle after revert", lambda: self._settle(SETTLE_SECONDS) + "; " + self._path())
            self._finish_probes(demonstration=not self.gate and self.fault is not None)
        finally:
            if self.probes is not None:
                self.probes.stop()
            if fault_on:
                self._step("fault removed", self._remove_fault)
        return self.report

    # -- probes -----------------------------------------------------------------------------------
    def _probe_targets(self) -> dict[str, list[str]]:
        info = self.fabric.info
        segment_of = {n["name"]: n["segment"] for n in info.get("nodes", [])}
        pods = [p for p in info.get("pods", []) if p["node"] in segment_of]
        if not pods:
            raise LabError("the lab has no pods to probe")
        targets = {"developer": [f"http://{p['ip']}/" for p in pods] + ["http://whoami/"]}
        for segment in sorted({segment_of[p["node"]] for p in pods}):
            here = [p for p in pods if segment_of[p["node"]] == segment and p["namespace"] == "default"]
            elsewhere = [f"http://{p['ip']}/" for p in pods if segment_of[p["node"]] != segment]
            if here and elsewhere:
                targets[f"pod-{here[0]['namespace']}-{here[0]['name']}"] = elsewhere
        return targets

    def _probes_ready(self) -> str:
        probes = self._probes()
        wanted = {f"{role} -> {url}" for role, urls in probes.targets.items() for url in urls}
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and probes.answered() != wanted:
            time.sleep(0.5)
        probes.excluded = sorted(wanted - probes.answered())
        probes.counted_from = time.time()
        self.report.extra["probes"] = {"sent": 0, "failed": 0, "excluded": probes.excluded}
        answered = len(wanted) - len(probes.excluded)
        if not answered:
            raise StepFailed(f"none of the {len(wanted)} probes ever answered")
        note = f"; excluded (never answered before the change): {', '.join(probes.excluded)}" if probes.excluded else ""
        return f"{answered} of {len(wanted)} probe targets answer from {len(probes.targets)} sources" + note

    def _probes(self) -> Probes:
        if self.probes is None:
            raise LabError("probes are not running")
        return self.probes

    def _probed(self, name: str, action: Callable[[], str]) -> bool:
        """A step, with what the probes saw while it ran recorded on it."""
        started = time.time()
        ok = self._step(name, action)
        counted = self._probes().counted(started, time.time())
        step = self.report.steps[-1]
        self.report.steps[-1] = dataclasses.replace(step, probes=counted)
        return ok

    def _finish_probes(self, *, demonstration: bool) -> None:
        probes = self._probes()

        def verdict() -> str:
            total = probes.counted(0.0)
            self.report.extra["probes"] = {**total, "excluded": probes.excluded}
            text = f"{total['sent']} sent, {total['failed']} failed"
            if total["failed"]:
                where = ", ".join(f"{k} ({n})" for k, n in total["failed_by_target"].items())
                lead = "the outage the gate prevents: " if demonstration else ""
                raise StepFailed(f"{lead}{text}: {where}; first error: {total['first_error']}")
            if total["sent"] < MIN_PROBES:
                raise StepFailed(f"only {text}; at least {MIN_PROBES} are needed to call it proven")
            return text

        self._step("probes", verdict)

    def _path(self) -> str:
        """How a node of the first rack reaches a pod of another rack now: the data plane's answer."""
        info = self.fabric.info
        nodes = info.get("nodes", [])
        first = nodes[0] if nodes else None
        other = next(
            (
                p
                for p in info.get("pods", [])
                for n in nodes
                if n["name"] == p["node"] and first and n["segment"] != first["segment"]
            ),
            None,
        )
        if first is None or other is None:
            return "one rack only"
        route = run(["ip", "-n", first["namespace"], "route", "get", other["ip"]], check=False).splitlines()
        return f"{first['name']} -> {other['ip']}: {' '.join((route or ['no route'])[0].split())}"

    @staticmethod
    def _settle(seconds: float) -> str:
        time.sleep(seconds)
        return f"probes ran {seconds:g} s more"

    # -- the change -------------------------------------------------------------------------------
    def _tor_view(self) -> str:
        """The gate's starting point: a fresh table dump from the ToR, complete before the change.

        Right after ``lab up`` the station may have connected while the nodes' sessions were still
        coming up, and FRR's BMP feed does not always re-send what changed since: a new BMP
        session's table dump is the ToR's view as it is. Without a fault it must match the cluster.
        """
        lab = self.lab
        lab.restart_station()
        if self.fault is not None:
            return "station restarted: the gate starts from the faulty ToR's table dump"
        router = lab.record.bmp_router
        result = self._bgpflat(
            "verify tor",
            "verify", "--peer", router, "--kubeconfig", str(lab.kubeconfig),
            "--source", f"bmp:{lab.bmp_state}", "--router", router, "--policy", "post",
            "--wait", "--timeout", f"{self.verify_timeout:g}", "--interval", "0.5", "--settle", "3",
            "--no-github-summary", "-o", "json",
        )  # fmt: skip
        if result.returncode != 0:
            raise StepFailed(f"the ToR's view does not match the cluster before the change: {self._last_error(result)}")
        return f"the ToR's post-policy table ({router}) matches the cluster before the change"

    def _apply(self, backup: list[str], gate: dict[str, Any]) -> str:
        lab = self.lab
        args = ["apply", "-f", str(lab.spec_file), "--yes", "--allow-crd-v1", "--kubeconfig", str(lab.kubeconfig)]
        args += ["--backup-dir", str(lab.backup_dir), "-o", "json"]
        if self.gate:
            args += ["--gate", f"bmp:{lab.bmp_state}", "--gate-router", lab.record.bmp_router]
            args += ["--gate-timeout", f"{GATE_TIMEOUT:g}"]
        result = self._bgpflat("apply", *args)
        try:
            report: dict[str, Any] = json.loads(result.stdout) if result.stdout.strip() else {}
        except json.JSONDecodeError:
            report = {}
        if report.get("backup"):
            backup.append(str(report["backup"]))
        stages = list(dict.fromkeys(str(r.get("stage")) for r in report.get("results") or []))
        if not self.gate:
            if result.returncode != 0 or not report.get("completed"):
                raise StepFailed(f"exit {result.returncode}: {report.get('error') or self._last_error(result)}")
            return f"applied without a gate: stages {', '.join(stages)}"
        found = report.get("gate") or {}
        gate.update(status=found.get("status"))
        timings = ", ".join(
            f"{s['stage']} {s['seconds_until_green']:.1f} s" if s.get("passed") else f"{s['stage']} stopped"
            for s in found.get("stages") or []
        )
        if self.fault is None:
            if result.returncode != 0 or found.get("status") != "passed":
                raise StepFailed(f"exit {result.returncode}: {report.get('error') or self._last_error(result)}")
            return f"gate green at every stage ({timings})"
        # Under the fault the gate must stop before encapsulation goes off, and undo what it wrote.
        stopped = str(found.get("stopped_at") or "")
        undo = found.get("undo") or {}
        if found.get("status") != "stopped":
            raise StepFailed(f"exit {result.returncode}: the gate did not stop the apply ({timings})")
        first_off = next((i for i, name in enumerate(stages) if name.startswith("pools")), len(stages))
        if stopped.removeprefix("before ") not in stages[: first_off + 1] or (
            stopped in stages[first_off:] and not stopped.startswith("before ")
        ):
            raise StepFailed(f"the gate stopped at {stopped}, after encapsulation changed (stages {', '.join(stages)})")
        if undo.get("error"):
            raise StepFailed(f"the gate stopped at {stopped} but undoing it failed: {undo['error']}")
        gate.update(undone=True)
        return f"gate stopped at {stopped or 'the first stage'} and undid it; encapsulation untouched ({timings})"

    def _revert(self, backup: str) -> str:
        lab = self.lab
        result = self._bgpflat("revert", "rollback", backup, "--yes", "--kubeconfig", str(lab.kubeconfig))
        if result.returncode != 0:
            raise StepFailed(f"exit {result.returncode}: {self._last_error(result)}")
        return f"rolled back from {Path(backup).name}"

    # -- the fault --------------------------------------------------------------------------------
    def _rack_blocks(self) -> tuple[str, list[str]]:
        """The last rack (segment) and the block CIDRs of its nodes."""
        info = self.fabric.info
        segments = sorted({n["segment"] for n in info.get("nodes", [])})
        rack = segments[-1]
        nodes = {n["name"] for n in info.get("nodes", []) if n["segment"] == rack}
        plane = self.lab.control_plane()
        from bgpflat.lab.fabric.follower import api_source

        blocks = []
        for obj in api_source(plane.client(), plane.flavour)():
            spec = obj.get("spec") or {}
            if obj.get("kind") == "IPAMBlock" and str(spec.get("affinity", "")).removeprefix("host:") in nodes:
                blocks.append(str(spec.get("cidr")))
        return rack, sorted(blocks)

    def _fault_commands(self, neighbours: Sequence[str], blocks: Sequence[str], *, remove: bool) -> list[str]:
        asn = self.fabric.topology.tor_asn
        no = "no " if remove else ""
        lines = ["configure terminal"]
        if not remove:
            lines += [
                f"ip prefix-list {FAULT_PREFIX_LIST} seq {5 * (i + 1)} deny {b} le 32" for i, b in enumerate(blocks)
            ]
            lines.append(f"ip prefix-list {FAULT_PREFIX_LIST} seq {5 * (len(blocks) + 1)} permit 0.0.0.0/0 le 32")
        lines += [f"router bgp {asn}", "address-family ipv4 unicast"]
        lines += [f"{no}neighbor {n} prefix-list {FAULT_PREFIX_LIST} in" for n in neighbours]
        lines += ["exit-address-family", "exit"]
        if remove:
            lines.append(f"no ip prefix-list {FAULT_PREFIX_LIST}")
        return lines

    def _install_fault(self) -> str:
        rack, blocks = self._rack_blocks()
        neighbours = sorted(self.fabric.tor_sessions())
        self.fabric.vtysh(*self._fault_commands(neighbours, blocks, remove=False))
        self.fabric.vtysh("clear bgp ipv4 unicast * soft in")

        def gone() -> tuple[bool, str]:
            held = sorted(set(blocks) & set(self.fabric.tor_bgp_routes()))
            return (not held, f"the ToR still has {', '.join(held)}" if held else "")

        wait_until(gone, timeout=30.0)
        return f"the ToR refuses {rack}'s blocks ({', '.join(blocks)}) from all {len(neighbours)} neighbours"

    def _remove_fault(self) -> str:
        _rack, blocks = self._rack_blocks()
        neighbours = sorted(self.fabric.tor_sessions())
        self.fabric.vtysh(*self._fault_commands(neighbours, blocks, remove=True))
        self.fabric.vtysh("clear bgp ipv4 unicast * soft in")
        return "prefix list removed; the ToR accepts every block again"


def run_migration_check(
    lab: Lab,
    *,
    verify_timeout: float = CHECK_VERIFY_TIMEOUT,
    progress: Callable[[str], None] | None = None,
    fault: str | None = None,
    gate: bool = True,
) -> CheckReport:
    check = MigrationCheck(lab, verify_timeout=verify_timeout, progress=progress, fault=fault, gate=gate)
    return check.run()
