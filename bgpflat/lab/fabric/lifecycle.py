"""``bgpflat lab up|down|status``: a whole scenario lab, from API server to office host, as one unit.

``Lab.up(scenario)`` assembles the pieces that exist on their own:

1. a control plane (``ControlPlane``: etcd + kube-apiserver on loopback, Calico's
   ``crd.projectcalico.org/v1`` CRDs) started with the scenario's service range and seeded with
   its ``cluster.yaml`` — or, with ``control_plane=DIR``, one that already runs there (it is then
   used as it is and left running by ``down``);
2. the fabric (``FlatLab``): namespaces, FRR ToR, per Calico node Calico's own confd watching the
   API server and the BIRD it configures and reloads, pods, DNAT, cluster DNS, office resolver;
3. the follower (``bgpflat.lab.fabric.follower``), a background process that polls the API server and
   keeps DNAT and cluster DNS in line, so ``bgpflat apply`` in any shell changes what the fabric
   learns (BIRD through confd, Services through the follower);
4. the verification peer, ``bgpflat peer run`` in the verifier namespace on a node segment;
5. where the topology gives the verifier a ``bmpPort``, the BMP station, ``bgpflat bmp run`` in the
   same namespace on that port, to which the FRR ToR streams its Adj-RIB-In (pre- and post-policy):
   what each node sent the real ToR and what the ToR kept, beside what the nodes sent the peer.

How the verifier is peered: the cluster's nodes peer with it directly, through a global BGPPeer
(no node selector, so every node) ``bgpflat-verifier`` → the verifier's address and AS. Peering
with the ToR instead would only show what FRR re-advertises after its own best-path choice, which
is not what Calico exports and not what ``bgpflat routes expected --peer`` models; a direct peer
compares Calico's real export (ADD-PATH, every node's paths) with the model, route for route. The
BGPPeer is part of the change being tested, not of the scenario's starting state: ``up`` writes
``<state>/bgpflat.yaml``, the scenario's flat spec plus that peer, and ``lab check`` applies that
file; rolling the apply back removes the verifier's sessions along with everything else.

State, one directory per lab (default ``$XDG_STATE_HOME/bgpflat/lab/<scenario>``)::

    run.json         what ``up`` built: scenario, kubeconfig, verifier, timings, ownership
    bgpflat.yaml     the flat spec ``lab check`` applies (scenario's spec + verifier BGPPeer)
    control-plane/   the control plane's state, when this lab started it
    fabric/          the namespace lab's record (``lab.json``: namespaces, PIDs, paths), configs, logs
    peer/            the verification peer's state (snapshot, event log, endpoint socket)
    bmp/             the BMP station's state (the same files; its socket is ``bmp.sock``)
    backups/         what ``lab check``'s apply backed up (its revert uses them)

``down`` stops the follower first (so nothing is reconfigured while the rest goes), then every recorded
process and namespace of the fabric, then the control plane if the lab started it, and removes
the directory. Every step is skipped when already done, so ``down`` is idempotent and also cleans
up after an ``up`` that failed half-way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bgpflat.errors import LabError
from bgpflat.lab.controlplane.seed import Scenario, labs_dir, load_scenario
from bgpflat.lab.controlplane.server import STATE_FILE as CONTROL_PLANE_STATE
from bgpflat.lab.controlplane.server import ControlPlane
from bgpflat.lab.fabric import netns, node_confd
from bgpflat.lab.fabric.flatlab import FlatLab
from bgpflat.lab.fabric.follower import api_source
from bgpflat.lab.fabric.topology import Topology, load_topology
from bgpflat.lab.versions import DEFAULT_SERVICE_CLUSTER_IP_RANGE

Progress = Callable[[str], None]
# What a setup with daemons of its own (bgpflat.lab.setups) starts once the fabric and the helpers
# run; it records them in the fabric, so `down` stops them, and a failure takes the lab down.
SetupHook = Callable[["Lab", FlatLab, Progress], None]

RUN_FILE = "run.json"
SPEC_FILE = "bgpflat.yaml"
VERIFIER_PEER = "bgpflat-verifier"
CALICO_DEFAULT_AS = 64512  # Calico's AS when no BGPConfiguration sets one
FOLLOWER = "follower"
PEER = "peer"
BMP = "bmp"
START_TIMEOUT = 30.0

# `bgpflat` as a child process: the same interpreter and the same package as this one, whether
# installed or run from a checkout (PYTHONPATH below), inside namespaces where PATH may differ.
CLI_BOOTSTRAP = "import sys; from bgpflat.cli import main; sys.exit(main())"


def labs_root() -> Path:
    """Where labs keep their state by default: ``$XDG_STATE_HOME/bgpflat/lab``."""
    return netns.default_state_dir("_").parent


def default_state_dir(scenario: str) -> Path:
    return labs_root() / Path(scenario).name


def scenario_names() -> list[str]:
    """The scenarios under ``labs/``: directories with a ``cluster.yaml`` (``labs/external`` holds
    only shared files and is not one)."""
    base = labs_dir()
    return sorted(p.name for p in base.iterdir() if (p / "cluster.yaml").is_file()) if base.is_dir() else []


def require_known_scenario(scenario: str, state_dir: Path) -> None:
    """Refuse a name that is neither a scenario nor something recorded in ``state_dir``.

    Without this a typo reads as "no lab recorded", as if the lab had merely not been started. A
    lab started from a scenario directory outside ``labs/`` is still found by its name, because
    then its state directory exists.
    """
    path = Path(scenario)
    if (path / "cluster.yaml").is_file() or path.name in scenario_names() or state_dir.exists():
        return
    known = ", ".join(scenario_names()) or "none found under labs/"
    raise LabError(f"unknown scenario {scenario!r} (fix: one of {known})")


def bgpflat_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", CLI_BOOTSTRAP, *args]


def child_env() -> dict[str, str]:
    """Environment for bgpflat child processes: this package importable, plain output."""
    root = node_confd.package_root()
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root,
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass(slots=True, kw_only=True)
class RunRecord:
    """``run.json``: what ``up`` assembled (mutable: written as each part comes up)."""

    scenario: str
    scenario_dir: str
    control_plane_dir: str
    owns_control_plane: bool
    kubeconfig: str = ""
    verifier_address: str = ""
    verifier_asn: int = 0
    cluster_asn: int = CALICO_DEFAULT_AS
    bmp_station: str = ""  # IP:PORT the station listens on ("" without one)
    bmp_router: str = ""  # the ToR, by the address its BMP session comes from
    timings: dict[str, float] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise LabError(f"{path} is not a lab record: {exc}") from exc

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        tmp.rename(path)


def lab_spec(scenario: Scenario, topology: Topology) -> tuple[dict[str, Any], int]:
    """The scenario's flat spec plus the verifier's global BGPPeer, and the cluster AS it sets."""
    path = scenario.directory / SPEC_FILE
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"cannot read the scenario's flat spec {path}: {exc}") from exc
    if not isinstance(spec, dict):
        raise LabError(f"{path} is not a flat spec")
    asn = int((spec.get("bgp") or {}).get("asNumber") or CALICO_DEFAULT_AS)
    if topology.verifier is not None:
        peers = [p for p in spec.get("peers") or [] if p.get("name") != VERIFIER_PEER]
        peers.append({"name": VERIFIER_PEER, "peerIP": topology.verifier.address, "asNumber": topology.verifier.asn})
        spec["peers"] = peers
    return spec, asn


class Lab:
    """One scenario lab: its state directory and what ``run.json`` says it holds."""

    def __init__(self, state_dir: Path, record: RunRecord) -> None:
        self.state_dir = state_dir
        self.record = record

    # -- paths and parts ----------------------------------------------------------------------------
    @property
    def fabric_dir(self) -> Path:
        return self.state_dir / "fabric"

    @property
    def peer_state(self) -> Path:
        return self.state_dir / "peer"

    @property
    def bmp_state(self) -> Path:
        return self.state_dir / "bmp"

    @property
    def spec_file(self) -> Path:
        return self.state_dir / SPEC_FILE

    @property
    def backup_dir(self) -> Path:
        return self.state_dir / "backups"

    @property
    def kubeconfig(self) -> Path:
        return Path(self.record.kubeconfig)

    def fabric(self) -> FlatLab:
        return FlatLab.attach(self.fabric_dir)

    def control_plane(self) -> ControlPlane:
        return ControlPlane.attach(Path(self.record.control_plane_dir))

    def save(self) -> None:
        self.record.save(self.state_dir / RUN_FILE)

    # -- up ---------------------------------------------------------------------------------------
    @classmethod
    def attach(cls, state_dir: Path) -> Lab:
        path = state_dir / RUN_FILE
        if not path.is_file():
            raise LabError(f"no lab recorded in {state_dir}; start one with `bgpflat lab up SCENARIO`")
        return cls(state_dir, RunRecord.load(path))

    @classmethod
    def up(
        cls,
        scenario_name: str,
        *,
        state_dir: Path | None = None,
        control_plane: Path | None = None,
        progress: Progress | None = None,
        setup: SetupHook | None = None,
    ) -> Lab:
        """Build the scenario's lab; on any failure, take down what was built and re-raise."""
        say = progress or (lambda _line: None)
        started = time.monotonic()
        scenario = load_scenario(scenario_name)
        topology = load_topology(scenario.directory)
        directory = state_dir or default_state_dir(scenario.name)
        if (directory / RUN_FILE).exists() or (directory / "fabric" / netns.STATE_FILE).exists():
            raise LabError(f"a lab is already recorded in {directory}; run `bgpflat lab down` first")
        if directory.is_dir() and any(directory.iterdir()):
            # `down` removes the whole directory: it must hold nothing but the lab.
            raise LabError(f"{directory} is not empty; choose another --state-dir")
        if os.geteuid() != 0:
            raise LabError("the lab needs root (it creates network namespaces)")
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        record = RunRecord(
            scenario=scenario.name,
            scenario_dir=str(scenario.directory.resolve()),
            control_plane_dir=str(control_plane or directory / "control-plane"),
            owns_control_plane=control_plane is None,
        )
        lab = cls(directory, record)
        lab.save()
        try:
            lab._build(scenario, topology, say)
            if setup is not None:
                setup(lab, lab.fabric(), say)
        except BaseException:
            say("lab up failed; taking down what was built")
            with contextlib.suppress(LabError, OSError):
                down(directory)
            raise
        record.timings["up"] = round(time.monotonic() - started, 2)
        lab.save()
        return lab

    def _build(self, scenario: Scenario, topology: Topology, say: Progress) -> None:
        record = self.record
        mark = time.monotonic()
        if record.owns_control_plane:
            say("control plane: etcd + kube-apiserver with Calico's CRDs")
            plane = ControlPlane.start(
                state_dir=Path(record.control_plane_dir),
                # What a KDD Calico cluster without the Calico API server serves; `apply` needs
                # --allow-crd-v1 for it (the native v3 CRDs are not available to every build).
                flavour="v1",
                service_cluster_ip_range=scenario.service_cluster_ip_range or DEFAULT_SERVICE_CLUSTER_IP_RANGE,
                progress=say,
            )
            seeded = plane.seed_scenario(scenario)
            say(f"seeded scenario {scenario.name}: {len(seeded.created)} objects")
        else:
            plane = self.control_plane()
            if not plane.status()["ready"]:
                raise LabError(f"the control plane in {record.control_plane_dir} is not ready")
            say(f"using the running control plane {plane.server} as it is")
        record.kubeconfig = str(plane.kubeconfig)
        record.timings["control_plane"] = round(time.monotonic() - mark, 2)
        self.save()

        spec, asn = lab_spec(scenario, topology)
        record.cluster_asn = asn
        header = (
            f"# The flat spec `bgpflat lab check {scenario.name}` applies: {scenario.directory / SPEC_FILE}\n"
            f"# plus the global BGPPeer {VERIFIER_PEER} to the lab's verification peer.\n"
            if topology.verifier is not None
            else f"# The flat spec `bgpflat lab check {scenario.name}` renders the office side from: "
            f"{scenario.directory / SPEC_FILE}\n"
        )
        self.spec_file.write_text(header + yaml.safe_dump(spec, sort_keys=False))

        mark = time.monotonic()
        source = api_source(plane.client(), plane.flavour)
        fabric = FlatLab.up(topology, source, kubeconfig=plane.kubeconfig, state_dir=self.fabric_dir, progress=say)
        record.timings["fabric"] = round(time.monotonic() - mark, 2)
        self.save()
        fabric.netns.start(
            FOLLOWER,
            "",  # host namespace: the API server listens on the host's loopback
            [sys.executable, "-m", "bgpflat.lab.fabric.follower", str(self.fabric_dir), record.control_plane_dir],
            log=self.fabric_dir / "logs" / "follower.log",
            env=child_env(),
        )
        if topology.verifier is not None:
            verifier = topology.verifier
            record.verifier_address, record.verifier_asn = verifier.address, verifier.asn
            self.save()
            ranges = [arg for s in topology.segments for arg in ("--neighbor-range", s.network)]
            fabric.netns.start(
                PEER,
                fabric.namespace("verifier"),
                bgpflat_argv(
                    "peer", "run",
                    "--listen", verifier.address,
                    "--local-as", str(verifier.asn),
                    "--peer-as", str(asn),
                    *ranges,
                    "--passive",
                    "--state-dir", str(self.peer_state),
                ),
                log=self.fabric_dir / "logs" / "peer.log",
                env=child_env(),
            )  # fmt: skip
            if verifier.bmp_port is not None:
                record.bmp_station = f"{verifier.address}:{verifier.bmp_port}"
                record.bmp_router = str(fabric.info.get("bmp_router") or "")
                self.save()
                self._start_station(fabric)
        self._wait_helpers(fabric)

    def _start_station(self, fabric: FlatLab) -> None:
        """``bgpflat bmp run`` in the verifier's namespace, where the ToR's BMP session lands."""
        fabric.netns.start(
            BMP,
            fabric.namespace("verifier"),
            bgpflat_argv("bmp", "run", "--listen", self.record.bmp_station, "--state-dir", str(self.bmp_state)),
            log=self.fabric_dir / "logs" / "bmp.log",
            env=child_env(),
        )

    def restart_station(self) -> None:
        """Stop the BMP station and start it again on the same state directory.

        FRR sends routes its inbound policy refused to the pre-policy table only in the table dump
        of a new BMP session, not as they arrive; a station that connects after the nodes' routes
        are in sees every table complete. FRR dials again after its ``min-retry``.
        """
        fabric = self.fabric()
        fabric.netns.stop([BMP])
        with contextlib.suppress(FileNotFoundError):
            (self.bmp_state / "bmp.sock").unlink()  # gone with the station, unless it was killed
        self._start_station(fabric)
        self._wait_helpers(fabric)

    def _wait_helpers(self, fabric: FlatLab) -> None:
        """The follower, the peer and the station run; the endpoint sockets of the last two exist."""
        deadline = time.monotonic() + START_TIMEOUT
        sockets = {PEER: self.peer_state / "peer.sock", BMP: self.bmp_state / "bmp.sock"}
        names = [p.name for p in fabric.netns.state.processes if p.name in (FOLLOWER, PEER, BMP)]
        while True:
            for name in names:
                fabric.netns.check_alive(name)
            waiting = [name for name in names if name in sockets and not sockets[name].exists()]
            if not waiting:
                return
            if time.monotonic() > deadline:
                what = " and ".join("the verification peer" if n == PEER else "the BMP station" for n in waiting)
                logs = fabric.netns.state_dir / "logs"
                raise LabError(f"{what} did not start within {START_TIMEOUT:g} s; see the logs in {logs}")
            time.sleep(0.1)

    # -- looking at it ----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """What exists of this lab: namespaces, processes (alive or not), control plane readiness."""
        out: dict[str, Any] = {
            "scenario": self.record.scenario,
            "state_dir": str(self.state_dir),
            "kubeconfig": self.record.kubeconfig,
            "verifier": self.record.verifier_address,
            "bmp_station": (
                {"listen": self.record.bmp_station, "router": self.record.bmp_router, "state_dir": str(self.bmp_state)}
                if self.record.bmp_station
                else None
            ),
            "timings": self.record.timings,
            "namespaces": [],
            "processes": [],
            "control_plane": None,
        }
        if (self.fabric_dir / netns.STATE_FILE).is_file():
            state = netns.NetnsLab.attach(self.fabric_dir).state
            out["lab"] = f"{state.lab}-{state.lab_id}"
            out["namespaces"] = [{"name": n, "exists": netns.netns_exists(n)} for n in state.namespaces]
            out["processes"] = [
                {"name": p.name, "pid": p.pid, "namespace": p.namespace or "(host)", "running": p.alive(), "log": p.log}
                for p in state.processes
            ]
        if (Path(self.record.control_plane_dir) / CONTROL_PLANE_STATE).is_file():
            plane = self.control_plane().status()
            out["control_plane"] = {
                "server": plane["server"],
                "ready": plane["ready"],
                "owned": self.record.owns_control_plane,
                "processes": [
                    {"name": p["name"], "pid": p["pid"], "running": p["running"]} for p in plane["processes"]
                ],
            }
        processes = out["processes"] + (out["control_plane"] or {}).get("processes", [])
        out["healthy"] = (
            bool(out["namespaces"])
            and all(n["exists"] for n in out["namespaces"])
            and all(p["running"] for p in processes)
        )
        return out


def down(state_dir: Path) -> list[str]:
    """Take the lab in ``state_dir`` down completely; returns what was stopped or removed (may be empty)."""
    done: list[str] = []
    record = RunRecord.load(state_dir / RUN_FILE) if (state_dir / RUN_FILE).is_file() else None
    fabric_dir = state_dir / "fabric"
    if record is None and not (fabric_dir / netns.STATE_FILE).is_file():
        return done  # no lab here (or already down): never remove a directory that is not a lab's
    if (fabric_dir / netns.STATE_FILE).is_file():
        fabric = netns.NetnsLab.attach(fabric_dir)
        # The follower first: it must not reconfigure daemons that are being stopped.
        if any(p.name == FOLLOWER for p in fabric.state.processes):
            fabric.stop([FOLLOWER])
            done.append(FOLLOWER)
        done += [f"{p.name} (pid {p.pid})" for p in fabric.state.processes]
        done += [f"netns {n}" for n in fabric.state.namespaces if netns.netns_exists(n)]
        fabric.teardown()
    plane_dir = Path(record.control_plane_dir) if record else state_dir / "control-plane"
    owned = record.owns_control_plane if record else plane_dir.is_relative_to(state_dir)
    if owned and (plane_dir / CONTROL_PLANE_STATE).is_file():
        plane = ControlPlane.attach(plane_dir)
        done += [f"{p.name} (pid {p.pid})" for p in plane.state.processes]
        plane.stop()
    if state_dir.exists():
        shutil.rmtree(state_dir)
        done.append(str(state_dir))
    if state_dir.parent == labs_root():
        with contextlib.suppress(OSError):
            state_dir.parent.rmdir()  # only when no other lab is recorded there
    return done


def recorded_labs(root: Path | None = None) -> list[Path]:
    """State directories of the labs recorded under ``root`` (default ``labs_root()``)."""
    base = root or labs_root()
    return sorted(p.parent for p in base.glob(f"*/{RUN_FILE}")) if base.is_dir() else []
