"""A real etcd + kube-apiserver on loopback, loaded with Calico's CRDs.

``ControlPlane.start`` runs the two processes the way controller-runtime's envtest does (free
loopback ports, generated credentials, an admin in ``system:masters``), waits for ``/readyz``,
installs the CRDs of the chosen Calico API flavour and writes a kubeconfig. Everything lives in
one state directory::

    state.json           PIDs (with their start times), ports, flavour, timings
    kubeconfig           admin access, file paths to the credentials below
    pki/                 CA, serving, admin and service-account keys
    etcd/                etcd's data
    etcd.log, kube-apiserver.log

The processes outlive the command that started them; ``ControlPlane.attach(state_dir).stop()``
stops exactly those PIDs (checked against their recorded start time, so a recycled PID is never
signalled) and removes the directory. Nothing is ever looked up or killed by name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from bgpflat.adapters.kube import KubeClient
from bgpflat.errors import KubeConflict, KubeError, LabError
from bgpflat.lab import versions
from bgpflat.lab.controlplane import aggregated, pki
from bgpflat.lab.controlplane import crds as crd_sources
from bgpflat.lab.controlplane.binaries import Binaries, ensure_binaries, ensure_calico_apiserver
from bgpflat.lab.controlplane.crds import CALICO_GROUPS, CALICO_VERSIONS, Flavour
from bgpflat.lab.controlplane.seed import Scenario, SeedResult, seed_scenario
from bgpflat.lab.processes import (
    ProcessRecord,
    default_route_exists,
    die_with_caller,
    free_loopback_port,
    log_tail,
    process_start_time,
    rss_bytes,
    stop_process,
)

Progress = Callable[[str], None]

STATE_FILE = "state.json"
START_TIMEOUT = 120.0
"""Seconds to wait for each step. An idle 2-core machine is ready in ~4 s; under heavy load ~10 s."""
STOP_TIMEOUT = 15.0


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/bgpflat/control-plane`` (``~/.local/state/...``)."""
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "state") / "bgpflat" / "control-plane"


@dataclass(slots=True, kw_only=True)
class State:
    flavour: Flavour
    etcd_port: int
    etcd_peer_port: int
    api_port: int
    service_cluster_ip_range: str
    kubernetes_version: str
    etcd_version: str
    processes: list[ProcessRecord]
    started_at: float
    ready_seconds: float | None = None
    calico_api_link: dict[str, str] | None = None
    """The network namespace and veth pair of Calico's API server (flavour ``apiserver``)."""
    calico_api_port: int | None = None

    @classmethod
    def load(cls, path: Path) -> State:
        data = json.loads(path.read_text())
        data["processes"] = [ProcessRecord(**p) for p in data["processes"]]
        return cls(**data)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.rename(path)


class ControlPlane:
    """One running (or stopped) etcd + kube-apiserver pair and its state directory."""

    def __init__(self, state_dir: Path, state: State) -> None:
        self.state_dir = state_dir
        self.state = state
        # Popen handles exist only in the process that started the pair; they let it reap the
        # children. A later `down` from another process stops the same PIDs without them.
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._tied_to_caller = False

    # -- paths ------------------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def credentials(self) -> pki.Credentials:
        return pki.credentials_in(self.state_dir / "pki")

    @property
    def flavour(self) -> Flavour:
        return self.state.flavour

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.state.api_port}"

    def client(self) -> KubeClient:
        """A client for the admin user, by certificate: usable before the kubeconfig is written."""
        creds = self.credentials
        return KubeClient.with_certificate(
            server=self.server,
            ca_cert=str(creds.ca_cert),
            client_cert=str(creds.admin_cert),
            client_key=str(creds.admin_key),
            context="bgpflat-lab",
        )

    def seed_scenario(self, scenario: Scenario | str | Path) -> SeedResult:
        """Load a lab scenario (name under ``labs/``, directory, or loaded ``Scenario``) into this server."""
        with self.client() as kube:
            return seed_scenario(kube, scenario, flavour=self.flavour)

    # -- lifecycle --------------------------------------------------------------------------------
    @classmethod
    def attach(cls, state_dir: Path) -> ControlPlane:
        """The control plane recorded in ``state_dir``; ``LabError`` when there is none."""
        path = state_dir / STATE_FILE
        if not path.is_file():
            raise LabError(f"no control plane recorded in {state_dir}")
        try:
            return cls(state_dir, State.load(path))
        except (ValueError, TypeError, KeyError) as exc:
            raise LabError(f"{path} is not a control-plane state file: {exc}") from exc

    @classmethod
    def start(
        cls,
        *,
        state_dir: Path,
        flavour: Flavour,
        service_cluster_ip_range: str = versions.DEFAULT_SERVICE_CLUSTER_IP_RANGE,
        binaries: Binaries | None = None,
        progress: Progress | None = None,
        timeout: float = START_TIMEOUT,
        tied_to_caller: bool = False,
    ) -> ControlPlane:
        """Start etcd and kube-apiserver, install the CRDs of ``flavour``, write the kubeconfig.

        ``tied_to_caller``: the kernel kills both processes when the calling process dies, even
        without a teardown (for test sessions and private runs; ``lab control-plane up`` leaves
        them running on purpose). Must be called from the thread that lives as long as they should.
        """
        say = progress or (lambda _line: None)
        if flavour not in crd_sources.FLAVOURS:
            raise LabError(f"unknown Calico API flavour {flavour!r}; use v1, v3 or apiserver")
        if state_dir.exists() and any(state_dir.iterdir()):
            raise LabError(
                f"{state_dir} is not empty; stop what runs there first (bgpflat lab control-plane down "
                f"--state-dir {state_dir}) or choose another --state-dir"
            )
        # Fetch the CRDs before starting anything: a missing module is the likeliest failure.
        manifests = crd_sources.crd_manifests(flavour)
        if any(crd_sources.DERIVED_ANNOTATION in m["metadata"].get("annotations", {}) for m in manifests):
            say(
                "warning: the native projectcalico.org/v3 CRDs of "
                f"{versions.V3_CRDS_SOURCE.path}@{versions.V3_CRDS_SOURCE.version} cannot be fetched; serving "
                "projectcalico.org/v3 with CRDs derived from the v1 schemas (no CEL rules or admission policies)"
            )
        bins = binaries or ensure_binaries(progress=say)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            state_dir.chmod(0o700)
        except OSError as exc:
            raise LabError(f"cannot use {state_dir} as the state directory: {exc}") from exc
        state = State(
            flavour=flavour,
            etcd_port=0,
            etcd_peer_port=0,
            api_port=0,
            service_cluster_ip_range=service_cluster_ip_range,
            kubernetes_version=versions.KUBERNETES_VERSION,
            etcd_version=versions.ETCD_VERSION,
            processes=[],
            started_at=time.time(),
        )
        calico_apiserver = ensure_calico_apiserver(progress=say) if flavour == "apiserver" else None
        plane = cls(state_dir, state)
        plane._tied_to_caller = tied_to_caller
        started = time.monotonic()
        try:
            link = None
            if calico_apiserver is not None:
                link = aggregated.plan_link(state_dir)
                state.calico_api_link = asdict(link)
                state.save(state_dir / STATE_FILE)  # recorded before it exists: a failed start removes it
                aggregated.create_link(link)
            pki.make_credentials(
                state_dir / "pki",
                apiserver_ips=(link.host_address,) if link else (),
                calico_api=(link.address, aggregated.SERVICE_DNS) if link else None,
            )
            plane._start_etcd(bins, timeout=timeout)
            say(f"etcd ready on 127.0.0.1:{state.etcd_port}")
            plane._start_apiserver(bins, timeout=timeout)
            say(f"kube-apiserver ready on {plane.server}")
            plane._install_crds(manifests, timeout=timeout)
            plane._write_kubeconfig()
            if calico_apiserver is not None and link is not None:
                plane._start_calico_apiserver(calico_apiserver, link, timeout=timeout)
                say(f"Calico API server ready in network namespace {link.netns} ({link.address})")
            say(f"installed {len(manifests)} CRDs; Calico API {CALICO_GROUPS[flavour]}/{CALICO_VERSIONS[flavour]}")
        except OSError as exc:
            plane.stop()
            raise LabError(f"starting the control plane failed: {exc}") from exc
        except BaseException:
            plane.stop()  # Ctrl-C or a LabError: leave no process or file behind
            raise
        state.ready_seconds = round(time.monotonic() - started, 2)
        state.save(state_dir / STATE_FILE)
        return plane

    def _spawn(
        self,
        name: str,
        binary: Path,
        args: list[str],
        *,
        wrap: Callable[[list[str]], list[str]] | None = None,
        env: dict[str, str] | None = None,
    ) -> ProcessRecord:
        log_path = self.state_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            argv = [str(binary), *args]
            argv = wrap(argv) if wrap else argv
            proc = subprocess.Popen(
                die_with_caller(argv) if self._tied_to_caller else argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # no terminal signals; outlives `up`
                cwd=self.state_dir,
                env=None if env is None else {**os.environ, **env},
            )
        start_time = None
        for _ in range(50):
            start_time = process_start_time(proc.pid)
            if start_time is not None or proc.poll() is not None:
                break
            time.sleep(0.01)
        if start_time is None:
            raise LabError(f"{name} exited at once:\n{log_tail(log_path, 20)}")
        record = ProcessRecord(name=name, pid=proc.pid, start_time=start_time, binary=str(binary), log=str(log_path))
        self._children[proc.pid] = proc
        self.state.processes.append(record)
        # Record every PID as soon as it exists, so that a failed start can still be cleaned up.
        self.state.save(self.state_dir / STATE_FILE)
        return record

    def _wait(self, record: ProcessRecord, check: Callable[[], bool], *, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not record.alive():
                raise LabError(f"{record.name} exited while starting:\n{log_tail(record.log, 20)}")
            if check():
                return
            time.sleep(0.1)
        raise LabError(f"{what} not ready after {timeout:.0f} s; log {record.log}:\n{log_tail(record.log, 20)}")

    def _start_etcd(self, bins: Binaries, *, timeout: float) -> None:
        self.state.etcd_port = free_loopback_port()
        self.state.etcd_peer_port = free_loopback_port()
        client = f"http://127.0.0.1:{self.state.etcd_port}"
        peer = f"http://127.0.0.1:{self.state.etcd_peer_port}"
        record = self._spawn(
            "etcd",
            bins.etcd,
            [
                "--name=bgpflat",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=bgpflat={peer}",
                # A test datastore: losing it on power failure is fine, waiting for fsync is not.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=2) as answer:
                    return bool(json.loads(answer.read()).get("health") == "true")
            except (OSError, ValueError, urllib.error.URLError):
                return False

        self._wait(record, healthy, what="etcd", timeout=timeout)

    def _start_apiserver(self, bins: Binaries, *, timeout: float) -> None:
        self.state.api_port = free_loopback_port()
        creds = self.credentials
        args = [
            f"--etcd-servers=http://127.0.0.1:{self.state.etcd_port}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.state.api_port}",
            f"--tls-cert-file={creds.serving_cert}",
            f"--tls-private-key-file={creds.serving_key}",
            f"--client-ca-file={creds.ca_cert}",
            "--authorization-mode=RBAC",
            f"--service-cluster-ip-range={self.state.service_cluster_ip_range}",
            f"--service-account-issuer=https://127.0.0.1:{self.state.api_port}",
            f"--service-account-key-file={creds.sa_pub}",
            f"--service-account-signing-key-file={creds.sa_key}",
            # No controller-manager runs, so nothing would create the default ServiceAccounts.
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--profiling=false",
        ]
        if self.state.calico_api_link is not None:
            args += aggregated.kube_apiserver_args(
                front_proxy_ca=creds.front_proxy_ca_cert,
                proxy_cert=creds.front_proxy_client_cert,
                proxy_key=creds.front_proxy_client_key,
            )
        if not default_route_exists():
            # kube-apiserver picks its advertise address from the default route and refuses
            # loopback; without one, give it an unroutable documentation address and no endpoint
            # reconciler (nothing ever connects to that address).
            args += ["--advertise-address=198.51.100.1", "--endpoint-reconciler-type=none"]
        record = self._spawn("kube-apiserver", bins.kube_apiserver, args)
        with self.client() as kube:
            self._wait(record, kube.ready, what="kube-apiserver /readyz", timeout=timeout)

            # envtest waits for this too: the first write of a namespaced object needs it.
            def default_namespace() -> bool:
                try:
                    return kube.get_object("v1", "Namespace", "default") is not None
                except KubeError:
                    return False

            self._wait(record, default_namespace, what="namespace default", timeout=timeout)

    def _start_calico_apiserver(self, binary: Path, link: aggregated.Link, *, timeout: float) -> None:
        """Run Calico's API server in its namespace, wire the APIService, wait until it is Available."""
        creds = self.credentials
        port = self.state.calico_api_port = free_loopback_port()  # any free port: the namespace is empty
        kubeconfig = self.state_dir / "calico-apiserver.kubeconfig"
        self._write_kubeconfig(kubeconfig, server=f"https://{link.host_address}:{self.state.api_port}")
        record = self._spawn(
            "calico-apiserver",
            binary,
            aggregated.calico_apiserver_args(
                link=link, port=port, kubeconfig=kubeconfig, cert=creds.calico_apiserver_cert,
                key=creds.calico_apiserver_key,
            ),
            wrap=lambda argv: aggregated.in_netns(link, argv),
            env={"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(kubeconfig)},
        )  # fmt: skip
        with self.client() as kube:
            for obj in aggregated.wiring(link=link, port=port, ca_cert=creds.ca_cert):
                try:
                    kube.create_object(obj)
                except KubeConflict:
                    continue
            message = ""

            def available() -> bool:
                nonlocal message
                body = kube.get_object("apiregistration.k8s.io/v1", "APIService", aggregated.APISERVICE_NAME)
                ok, message = aggregated.apiservice_available(body)
                return ok and "ippools" in kube.served_resources(aggregated.GROUP_VERSION)

            try:
                self._wait(
                    record, available, what="Calico API server (APIService v3.projectcalico.org)", timeout=timeout
                )
            except LabError as exc:
                raise LabError(f"{exc}\nAPIService: {message}") from None

    def _install_crds(self, manifests: list[dict[str, Any]], *, timeout: float) -> None:
        with self.client() as kube:
            self._install_crds_with(kube, manifests, timeout=timeout)

    @staticmethod
    def _install_crds_with(kube: KubeClient, manifests: list[dict[str, Any]], *, timeout: float) -> None:
        crd_api = "apiextensions.k8s.io/v1"
        for crd in manifests:
            try:
                kube.create_object({"apiVersion": crd_api, "kind": "CustomResourceDefinition", **crd})
            except KubeConflict:
                continue  # already there
            except KubeError as exc:
                raise LabError(f"installing CRD {crd['metadata']['name']} failed: {exc}") from exc
        pending = {crd["metadata"]["name"] for crd in manifests}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                body = kube.get_object(crd_api, "CustomResourceDefinition", name) or {}
                conditions = (body.get("status") or {}).get("conditions") or []
                if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
                    pending.discard(name)
            if pending:
                time.sleep(0.1)
        if pending:
            raise LabError(f"CRDs not established after {timeout:.0f} s: {', '.join(sorted(pending))}")
        # Established does not mean discoverable yet; clients that start right away use discovery.
        wanted: dict[str, set[str]] = {}
        for crd in manifests:
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    wanted.setdefault(f"{spec['group']}/{version['name']}", set()).add(spec["names"]["plural"])

        def served(group_version: str) -> set[str]:
            try:
                return kube.served_resources(group_version)
            except KubeError:
                return set()  # the group's discovery is still being assembled

        while time.monotonic() < deadline:
            missing = [gv for gv, plurals in wanted.items() if not plurals <= served(gv)]
            if not missing:
                return
            time.sleep(0.1)
        raise LabError("CRDs established but not yet in discovery")

    def _write_kubeconfig(self, path: Path | None = None, *, server: str | None = None) -> None:
        creds = self.credentials
        path = path or self.kubeconfig
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "bgpflat-lab",
                    "cluster": {"server": server or self.server, "certificate-authority": str(creds.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": "bgpflat-admin",
                    "user": {"client-certificate": str(creds.admin_cert), "client-key": str(creds.admin_key)},
                }
            ],
            "contexts": [{"name": "bgpflat-lab", "context": {"cluster": "bgpflat-lab", "user": "bgpflat-admin"}}],
            "current-context": "bgpflat-lab",
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
        tmp.chmod(0o600)
        tmp.rename(path)

    def stop(self, *, remove: bool = True) -> None:
        """Stop the recorded processes (apiserver first) by PID and remove the state directory."""
        for record in reversed(self.state.processes):
            stop_process(record, self._children.pop(record.pid, None), timeout=STOP_TIMEOUT)
        if self.state.calico_api_link is not None:
            aggregated.delete_link(aggregated.Link(**self.state.calico_api_link))
        if remove:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- status -----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What runs, on which ports, and whether the API server answers /readyz."""
        processes = []
        for record in self.state.processes:
            alive = record.alive()
            processes.append(
                {
                    "name": record.name,
                    "pid": record.pid,
                    "running": alive,
                    "rss_bytes": rss_bytes(record.pid) if alive else None,
                    "log": record.log,
                }
            )
        ready = False
        if all(p["running"] for p in processes) and processes:
            with self.client() as kube:
                ready = kube.ready()
        return {
            "state_dir": str(self.state_dir),
            "flavour": self.state.flavour,
            "server": self.server,
            "etcd": f"http://127.0.0.1:{self.state.etcd_port}",
            "kubeconfig": str(self.kubeconfig),
            "kubernetes_version": self.state.kubernetes_version,
            "etcd_version": self.state.etcd_version,
            "service_cluster_ip_range": self.state.service_cluster_ip_range,
            "ready_seconds": self.state.ready_seconds,
            "ready": ready,
            "processes": processes,
        }
