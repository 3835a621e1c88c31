"""``bgpflat lab check``: flatten a running lab with bgpflat, prove it, undo it, prove that too.

A scenario declares how its office reaches the cluster (``mode`` in ``topology.yaml``), and that
decides what flattening means and so which sequence runs: ``bgp`` changes Calico (``BgpCheck``),
``static-nat`` changes only the office side (``StaticNatCheck``). Both share the probes. A setup
with a sequence of its own (``edge-node``: ``bgpflat.lab.setups.edge_check``) passes it to ``run_check``.

``bgp`` — the steps, each timed, stopping at the first failure (which names the step):

``lab healthy``         every recorded process runs, every namespace exists, the API server is ready
``unreachable before``  the developer host cannot reach the whoami pod yet (the lab starts unflattened)
``apply``               ``bgpflat apply -f <state>/bgpflat.yaml --yes --allow-crd-v1`` against the lab's
                        API server, as a user would; each node's confd (Calico's own) re-renders
                        BIRD's config from the new objects and reloads BIRD
``verify``              ``bgpflat verify --wait --strict`` against the verification peer: what the
                        Calico nodes, configured by real Calico, advertise equals bgpflat's
                        expected-route model
``verify bmp pre-policy``   where the lab has a BMP station: the same model checked against what
                        each node sent the FRR ToR, as the ToR streams it over BMP (``verify
                        --source bmp:<state>/bmp --policy pre``); the station is restarted first, as
                        FRR sends routes its policy refused only in a new BMP session's table dump
``verify bmp post-policy``  … and against what the ToR kept (``--policy post``); a route a node sent
                        but the ToR's policy refused fails as ``filtered-by-router``. The peer and
                        both BMP tables are compared with one model, so all three green is the
                        peer and the real ToR agreeing route for route
``http pod IP``         the developer host GETs ``http://<whoami pod IP>/`` via ToR → node → pod
``http cluster IP``     … and ``http://<whoami cluster IP>/`` (service range advertised, DNAT on the node)
``http name``           … and ``http://whoami/`` through the office resolver and the search domain
``revert``              ``bgpflat rollback <the apply's backup> --yes``
``withdrawn``           the ToR's BGP routes are back to what they were before the apply
``unreachable after``   pod IP, cluster IP and name all fail again from the developer host

When ``apply`` (part-way) or a step after it fails, the revert still runs (as ``revert (cleanup)``) so the lab is
left as it was found; the lab itself stays up either way (``lab down`` is separate). Every command's
output is kept in ``<state>/check/<step>.log``.

``static-nat`` (scenario C: no BGP; nothing in Calico changes):

``lab healthy``, ``unreachable before``  as above
``render``              ``bgpflat render static-routes --via <node>``, ``render nat`` (nftables and
                        sysctl) and ``render dns --dnsmasq --to <forwarding DNS>`` against the lab's
                        API server, into ``<state>/check/office/``
``install``             the routes into the office edge router, NAT and forwarding into the
                        forwarding node, the dnsmasq lines into the office resolver
``http pod IP``, ``http cluster IP``, ``http name``  as above, through the forwarding node
``revert``              routes, NAT table and resolver removed again
``unreachable after``   as above
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgpflat.errors import LabError
from bgpflat.lab.fabric import office, services
from bgpflat.lab.fabric.flatlab import FlatLab
from bgpflat.lab.fabric.follower import api_source
from bgpflat.lab.fabric.lifecycle import Lab, bgpflat_argv, child_env
from bgpflat.lab.fabric.topology import MODE_BGP, MODE_STATIC_NAT

FORMAT_VERSION = 1
CHECK_SERVICE = "whoami"
VERIFY_TIMEOUT = 90.0
# The station's tables come from one table dump that ends with End-of-RIB: a diff that stays the
# same this long is final (a match returns at once).
BMP_SETTLE = 3.0
CONVERGE_TIMEOUT = 30.0
PROBE_TIMEOUT = 1.5
COMMAND_TIMEOUT = 180.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str
    probes: Mapping[str, Any] | None = None  # what the probes running meanwhile saw (migration check)

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "ok": self.ok, "seconds": round(self.seconds, 2), "detail": self.detail}
        return data if self.probes is None else {**data, "probes": dict(self.probes)}


@dataclass(slots=True, kw_only=True)
class CheckReport:
    scenario: str
    steps: list[Step] = field(default_factory=list)
    lab_up_seconds: float | None = None
    apply_to_verify_green_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # what a check sequence adds (probes, gate)

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def failed_step(self) -> str | None:
        return next((s.name for s in self.steps if not s.ok), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "scenario": self.scenario,
            "passed": self.passed,
            "failed_step": self.failed_step,
            "lab_up_seconds": self.lab_up_seconds,
            "apply_to_verify_green_seconds": self.apply_to_verify_green_seconds,
            "total_seconds": round(sum(s.seconds for s in self.steps), 2),
            "steps": [s.to_dict() for s in self.steps],
            **self.extra,
        }


class StepFailed(Exception):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Targets:
    pod_ip: str
    pod_name: str
    cluster_ip: str
    name_url: str


def wait_until(probe: Callable[[], tuple[bool, str]], *, timeout: float) -> str:
    """Run ``probe`` until it reports success or ``timeout`` passes; return its last message."""
    deadline = time.monotonic() + timeout
    while True:
        ok, message = probe()
        if ok:
            return message
        if time.monotonic() > deadline:
            raise StepFailed(f"{message} (still after {timeout:g} s)")
        time.sleep(0.25)


class LabCheck:
    """What every check sequence shares: steps, logged ``bgpflat`` runs, reachability probes."""

    def __init__(
        self, lab: Lab, *, verify_timeout: float = VERIFY_TIMEOUT, progress: Callable[[str], None] | None = None
    ) -> None:
        self.lab = lab
        self.verify_timeout = verify_timeout
        self.fabric: FlatLab = lab.fabric()
        self.say = progress or (lambda _line: None)
        self.report = CheckReport(scenario=lab.record.scenario, lab_up_seconds=lab.record.timings.get("up"))
        self.log_dir = lab.state_dir / "check"
        self.log_dir.mkdir(exist_ok=True)

    # -- running steps ----------------------------------------------------------------------------
    def _step(self, name: str, action: Callable[[], str]) -> bool:
        self.say(f"{name} …")
        started = time.monotonic()
        try:
            detail, ok = action(), True
        except (StepFailed, LabError, OSError) as exc:
            detail, ok = str(exc), False
        step = Step(name=name, ok=ok, seconds=time.monotonic() - started, detail=detail)
        self.report.steps.append(step)
        self.say(f"{name}: {'ok' if ok else 'FAILED'} in {step.seconds:.1f} s — {detail}")
        return ok

    def _bgpflat(self, step: str, *args: str) -> subprocess.CompletedProcess[str]:
        log = self.log_dir / f"{step.replace(' ', '-')}.log"
        try:
            result = subprocess.run(
                bgpflat_argv(*args),
                capture_output=True,
                text=True,
                env=child_env(),
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StepFailed(f"bgpflat {args[0]} did not finish within {COMMAND_TIMEOUT:g} s") from exc
        log.write_text(f"$ bgpflat {' '.join(args)}\n--- exit {result.returncode}; stdout:\n{result.stdout}\n"
                       f"--- stderr:\n{result.stderr}")  # fmt: skip
        return result

    @staticmethod
    def _last_error(result: subprocess.CompletedProcess[str]) -> str:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        return (errors or lines or ["(no output)"])[-1].strip()

    def run(self) -> CheckReport:
        raise NotImplementedError

    def _healthy(self) -> str:
        status = self.lab.status()
        dead = [p["name"] for p in status["processes"] if not p["running"]]
        dead += [f"netns {n['name']}" for n in status["namespaces"] if not n["exists"]]
        plane = status["control_plane"]
        if plane is None or not plane["ready"]:
            dead.append("control plane (not ready)")
        if dead:
            raise StepFailed(f"not running: {', '.join(dead)}; `bgpflat lab down` and `up` again")
        return f"{len(status['processes'])} processes, {len(status['namespaces'])} namespaces, API server ready"

    def _targets(self) -> Targets:
        plane = self.lab.control_plane()
        objects = api_source(plane.client(), plane.flavour)()
        namespace = (self.fabric.topology.office.search_domain or "default").split(".")[0]
        for service in services.services_from_objects(objects):
            if service.name == CHECK_SERVICE and service.namespace == namespace:
                if not service.cluster_ips or not service.endpoint_ips:
                    break
                pod_ip = sorted(service.endpoint_ips)[0]
                pod_name = next((p["name"] for p in self.fabric.info.get("pods", []) if p["ip"] == pod_ip), "")
                return Targets(
                    pod_ip=pod_ip,
                    pod_name=pod_name,
                    cluster_ip=service.cluster_ips[0],
                    name_url=f"http://{CHECK_SERVICE}/",
                )
        raise LabError(f"the scenario has no Service {namespace}/{CHECK_SERVICE} with a cluster IP and endpoints")

    def _unreachable(self, targets: Targets, *, pod_only: bool, role: str = "developer") -> str:
        urls = [f"http://{targets.pod_ip}/"]
        if not pod_only:
            urls += [f"http://{targets.cluster_ip}/", targets.name_url]

        def probe() -> tuple[bool, str]:
            answered = [u for u in urls if self.fabric.http_get(role, u, timeout=PROBE_TIMEOUT).ok]
            if answered:
                return False, f"still answering: {', '.join(answered)}"
            return True, f"no answer from {', '.join(urls)}"

        return wait_until(probe, timeout=CONVERGE_TIMEOUT)

    def _reachable(self, targets: Targets, url: str, *, any_pod: bool = False, role: str = "developer") -> str:
        def probe() -> tuple[bool, str]:
            answer = self.fabric.http_get(role, url, timeout=PROBE_TIMEOUT)
            if not answer.ok:
                return False, f"GET {url}: {answer.error or answer.status}"
            served = next((line.split(":", 1)[1].strip() for line in answer.body.splitlines()
                           if line.startswith("Hostname:")), "?")  # fmt: skip
            if not any_pod and targets.pod_name and served != targets.pod_name:
                return False, f"GET {url} answered by {served}, not {targets.pod_name}"
            return True, f"GET {url} → {answer.status} from {served}"

        return wait_until(probe, timeout=CONVERGE_TIMEOUT)


class BgpCheck(LabCheck):
    """Flattening changes Calico: apply the flat spec, verify what the nodes advertise, roll back."""

    def run(self) -> CheckReport:
        if not self._step("lab healthy", self._healthy):
            return self.report
        targets = self._targets()
        baseline = self.fabric.tor_bgp_routes()
        backup: list[str] = []
        applied_at: list[float] = []
        if not self._step("unreachable before", lambda: self._unreachable(targets, pod_only=True)):
            return self.report
        ok = self._step("apply", lambda: self._apply(backup, applied_at))
        ok = ok and self._step("verify", lambda: self._verify(applied_at[0]))
        if self.lab.record.bmp_station:
            ok = ok and self._step("verify bmp pre-policy", lambda: self._verify_bmp("pre", restart=True))
            ok = ok and self._step("verify bmp post-policy", lambda: self._verify_bmp("post", restart=False))
        ok = ok and self._step("http pod IP", lambda: self._reachable(targets, f"http://{targets.pod_ip}/"))
        ok = ok and self._step(
            "http cluster IP", lambda: self._reachable(targets, f"http://{targets.cluster_ip}/", any_pod=True)
        )
        ok = ok and self._step("http name", lambda: self._reachable(targets, targets.name_url, any_pod=True))
        if not backup:
            return self.report  # nothing was written, so nothing to revert
        flat = self.fabric.tor_bgp_routes() if ok else {}
        if not self._step("revert" if ok else "revert (cleanup)", lambda: self._revert(backup[0])):
            return self.report
        if ok:
            ok = self._step("withdrawn", lambda: self._withdrawn(baseline, flat))
            ok = ok and self._step("unreachable after", lambda: self._unreachable(targets, pod_only=False))
        return self.report

    def _apply(self, backup: list[str], applied_at: list[float]) -> str:
        lab = self.lab
        applied_at.append(time.monotonic())
        result = self._bgpflat(
            "apply",
            "apply", "-f", str(lab.spec_file), "--yes", "--allow-crd-v1",
            "--kubeconfig", str(lab.kubeconfig), "--backup-dir", str(lab.backup_dir), "-o", "json",
        )  # fmt: skip
        report: dict[str, Any] = {}
        with contextlib.suppress(json.JSONDecodeError):
            report = json.loads(result.stdout) if result.stdout.strip() else {}
        if report.get("backup"):
            backup.append(str(report["backup"]))  # revert even a partial apply
        if result.returncode != 0 or not report.get("completed"):
            raise StepFailed(f"exit {result.returncode}: {report.get('error') or self._last_error(result)}")
        results = report.get("results") or []
        if not results:
            raise StepFailed("nothing to apply: the lab is already flat (run `bgpflat rollback` or `lab down`/`up`)")
        stages = list(dict.fromkeys(str(r.get("stage")) for r in results))  # in the order applied
        findings = sorted(set(re.findall(r"(?:warning|error|info): \[([a-z0-9-]+)\]", result.stderr)))
        return f"{len(results)} change(s) in {len(stages)} stage(s) ({', '.join(stages)})" + (
            f"; findings: {', '.join(findings)}" if findings else ""
        )

    def _verify(self, applied_at: float) -> str:
        lab = self.lab
        if not lab.record.verifier_address:
            raise StepFailed(f"{self.fabric.topology.directory / 'topology.yaml'} places no verifier")
        result = self._bgpflat(
            "verify",
            "verify", "--peer", lab.record.verifier_address,
            "--kubeconfig", str(lab.kubeconfig), "--state-dir", str(lab.peer_state),
            "--wait", "--timeout", f"{self.verify_timeout:g}", "--interval", "0.5", "--strict",
            "--no-github-summary", "-o", "json",
        )  # fmt: skip
        green = time.monotonic() - applied_at
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError:
            data = {}
        if result.returncode != 0:
            raise StepFailed(f"exit {result.returncode}: {data.get('message') or self._last_error(result)}")
        self.report.apply_to_verify_green_seconds = round(green, 2)
        compliance = data.get("compliance") or {}
        counts = {k: len(v) for k, v in compliance.items() if isinstance(v, list)}
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or data.get("message", "")
        return f"{summary}; green {green:.1f} s after apply started"

    def _verify_bmp(self, policy: str, *, restart: bool) -> str:
        lab = self.lab
        if restart:
            lab.restart_station()
        router = lab.record.bmp_router
        result = self._bgpflat(
            f"verify bmp {policy}",
            "verify", "--peer", router, "--kubeconfig", str(lab.kubeconfig),
            "--source", f"bmp:{lab.bmp_state}", "--router", router, "--policy", policy,
            "--wait", "--timeout", f"{self.verify_timeout:g}", "--interval", "0.5", "--settle", f"{BMP_SETTLE:g}",
            "--strict", "--no-github-summary", "-o", "json",
        )  # fmt: skip
        try:
            data = json.loads(result.stdout)
        except json.JSONDecodeError:
            data = {}
        findings = [f for f in (data.get("diff") or {}).get("findings") or [] if f.get("fails")]
        named = "; ".join(
            f"{f.get('code')} {f.get('prefix')}"
            + (f" from {f['node']}" if f.get("node") else "")
            + (f" at router {f['router']}" if f.get("router") else "")
            for f in findings
        )
        if result.returncode != 0:
            message = data.get("message") or self._last_error(result)
            raise StepFailed(f"exit {result.returncode}: {message}" + (f" ({named})" if named else ""))
        counts = {k: len(v) for k, v in (data.get("compliance") or {}).items() if isinstance(v, list)}
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or data.get("message", "")
        return f"ToR {router} {policy}-policy: {summary}" + ("; station restarted for a table dump" if restart else "")

    def _revert(self, backup: str) -> str:
        lab = self.lab
        result = self._bgpflat(
            "revert", "rollback", backup, "--yes", "--kubeconfig", str(lab.kubeconfig)
        )  # fmt: skip
        if result.returncode != 0:
            raise StepFailed(f"exit {result.returncode}: {self._last_error(result)}")
        return f"rolled back from {Path(backup).name}"

    def _withdrawn(self, baseline: dict[str, list[str]], flat: dict[str, list[str]]) -> str:
        def probe() -> tuple[bool, str]:
            now = self.fabric.tor_bgp_routes()
            if now == baseline:
                gone = sorted(set(flat) - set(baseline))
                return (
                    True,
                    f"ToR withdrew {len(gone)} route(s) ({', '.join(gone)}); back to the {len(baseline)} it had before",
                )
            extra = sorted(set(now) - set(baseline))
            return False, f"ToR still has {', '.join(extra) or 'changed next hops'}"

        return wait_until(probe, timeout=CONVERGE_TIMEOUT)


class StaticNatCheck(LabCheck):
    """Flattening is office-side configuration only: render it with bgpflat, install it, remove it."""

    def run(self) -> CheckReport:
        if not self._step("lab healthy", self._healthy):
            return self.report
        targets = self._targets()
        if not self._step("unreachable before", lambda: self._unreachable(targets, pod_only=True)):
            return self.report
        rendered: list[office.OfficeConfigs] = []
        if not self._step("render", lambda: self._render(rendered)):
            return self.report
        configs = rendered[0]
        ok = self._step("install", lambda: office.install(self.fabric, configs))
        ok = ok and self._step("http pod IP", lambda: self._reachable(targets, f"http://{targets.pod_ip}/"))
        ok = ok and self._step(
            "http cluster IP", lambda: self._reachable(targets, f"http://{targets.cluster_ip}/", any_pod=True)
        )
        ok = ok and self._step("http name", lambda: self._reachable(targets, targets.name_url, any_pod=True))
        # Whatever failed, take the office side away again so the lab is left as it was found.
        if not self._step("revert" if ok else "revert (cleanup)", lambda: office.remove(self.fabric, configs)):
            return self.report
        if ok:
            self._step("unreachable after", lambda: self._unreachable(targets, pod_only=False))
        return self.report

    def _render(self, rendered: list[office.OfficeConfigs]) -> str:
        directory = self.log_dir / "office"
        try:
            configs = office.render(self.lab, directory, self._bgpflat)
        except LabError as exc:
            raise StepFailed(str(exc)) from exc
        rendered.append(configs)
        return f"static routes, nftables, sysctl and dnsmasq configs in {directory}"


CHECKS: dict[str, type[LabCheck]] = {MODE_BGP: BgpCheck, MODE_STATIC_NAT: StaticNatCheck}


def run_check(
    lab: Lab,
    *,
    verify_timeout: float = VERIFY_TIMEOUT,
    progress: Callable[[str], None] | None = None,
    check: type[LabCheck] | None = None,
) -> CheckReport:
    """The check sequence of the lab's mode on a running lab (see the module docstring), or
    ``check``, the sequence of a setup that brings its own (``bgpflat.lab.setups``)."""
    mode = lab.fabric().topology.mode
    chosen = check or CHECKS.get(mode)
    if chosen is None:
        raise LabError(f"no lab check for topology mode {mode!r}")
    return chosen(lab, verify_timeout=verify_timeout, progress=progress).run()
