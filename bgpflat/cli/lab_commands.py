"""``bgpflat lab …``: local labs. For now ``lab control-plane build|up|down|status|seed``.

``lab`` owns a sub-parser; each family of lab commands registers itself on it through its own
``_register_*`` function, so the network-namespace lab (``lab up|down|check``) slots in next to
``_register_control_plane`` without touching it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bgpflat.cli.output import EXIT_DIFFERENCES, EXIT_OK, info
from bgpflat.errors import LabError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this group's sub-commands to the CLI."""
    lab = sub.add_parser(
        "lab",
        help="local labs: a real control plane with Calico's CRDs",
        description="Local labs for trying bgpflat without a real cluster.",
    )
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="SUBCOMMAND")
    lab_sub.required = True
    _register_control_plane(lab_sub)


def _register_control_plane(lab_sub: argparse._SubParsersAction[Any]) -> None:
    cp = lab_sub.add_parser(
        "control-plane",
        help="a real etcd + kube-apiserver on loopback with Calico's CRDs",
        description="Run etcd and kube-apiserver (built from the Go module proxy, cached) on free "
        "loopback ports with Calico's CRDs installed, for kubectl and bgpflat to talk to.",
    )
    cp_sub = cp.add_subparsers(dest="control_plane_command", metavar="SUBCOMMAND")
    cp_sub.required = True

    def state_dir_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--state-dir",
            metavar="DIR",
            type=Path,
            help="where the processes' state, logs and kubeconfig live "
            "(default: $XDG_STATE_HOME/bgpflat/control-plane)",
        )

    build = cp_sub.add_parser(
        "build",
        help="build (or reuse) the binaries and fetch the CRDs, without starting anything",
        description="Build kube-apiserver and etcd into the cache if they are not there yet, fetch "
        "the CRDs of the given Calico API flavours, and print the binaries' directory.",
    )
    build.add_argument(
        "--calico-api", choices=("v1", "v3", "all"), default="all", help="which CRD flavours to fetch (default: all)"
    )
    build.set_defaults(func=_cmd_build)

    up = cp_sub.add_parser(
        "up",
        help="start etcd + kube-apiserver and install Calico's CRDs; prints the kubeconfig path",
        description="Start the control plane (building it first if the cache is empty), install the "
        "chosen Calico CRD flavour and the operator's Installation CRD, write a kubeconfig and print "
        "its path as the last line of stdout.",
    )
    up.add_argument(
        "--calico-api",
        choices=("v1", "v3"),
        default="v1",
        help="v1: crd.projectcalico.org/v1 CRDs (KDD, no Calico API server); "
        "v3: Calico's native projectcalico.org/v3 CRDs (default: v1)",
    )
    state_dir_option(up)
    up.add_argument(
        "--service-cluster-ip-range",
        metavar="CIDR",
        help="the server's service range (default: the scenario's, else 10.96.0.0/12)",
    )
    up.add_argument("--scenario", metavar="NAME|DIR", help="seed this lab scenario (labs/NAME) once ready")
    up.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS", help="how long to wait for readiness (default 120)"
    )
    up.set_defaults(func=_cmd_up)

    down = cp_sub.add_parser(
        "down",
        help="stop the processes `up` started and remove their files",
        description="Stop exactly the processes recorded by `up` (by PID) and remove the state directory.",
    )
    state_dir_option(down)
    down.set_defaults(func=_cmd_down)

    status = cp_sub.add_parser(
        "status",
        help="show whether etcd and kube-apiserver run and answer",
        description="Show both processes, their memory, and /readyz. Exit 0 when "
        "ready, 1 when not running or not ready.",
    )
    state_dir_option(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_cmd_status)

    seed = cp_sub.add_parser(
        "seed",
        help="load a lab scenario's cluster state into the running server",
        description="Create a scenario's objects (labs/NAME/cluster.yaml), translated "
        "to the Calico API the server serves.",
    )
    seed.add_argument("scenario", metavar="NAME|DIR")
    state_dir_option(seed)
    seed.set_defaults(func=_cmd_seed)


def _state_dir(args: argparse.Namespace) -> Path:
    from bgpflat.lab.controlplane import default_state_dir

    return Path(args.state_dir) if args.state_dir else default_state_dir()


def _cmd_build(args: argparse.Namespace) -> int:
    from bgpflat.lab import crds
    from bgpflat.lab.binaries import ensure_binaries

    binaries = ensure_binaries(progress=info)
    info(f"kube-apiserver and etcd: {binaries.directory}")
    flavours: tuple[crds.Flavour, ...] = crds.FLAVOURS if args.calico_api == "all" else (args.calico_api,)
    failed = []
    for flavour in flavours:
        try:
            count = len(crds.crd_manifests(flavour))
            info(f"Calico {flavour} CRDs: {count} CRDs ready")
        except LabError as exc:
            failed.append(flavour)
            info(f"Calico {flavour} CRDs: {exc}")
    print(binaries.directory)
    if failed:
        raise LabError(f"could not fetch the CRDs of flavour(s) {', '.join(failed)} (see above)")
    return EXIT_OK


def _cmd_up(args: argparse.Namespace) -> int:
    from bgpflat.lab.controlplane import STATE_FILE, ControlPlane
    from bgpflat.lab.seed import load_scenario
    from bgpflat.lab.versions import DEFAULT_SERVICE_CLUSTER_IP_RANGE

    state_dir = _state_dir(args)
    if (state_dir / STATE_FILE).is_file():
        running = ControlPlane.attach(state_dir)
        status = running.status()
        if status["ready"] and running.flavour == args.calico_api:
            info(f"already running ({running.server}, Calico {running.flavour})")
            print(running.kubeconfig)
            return EXIT_OK
        if status["ready"]:
            raise LabError(
                f"a control plane with Calico {running.flavour} already runs in {state_dir}; "
                "run `bgpflat lab control-plane down` first"
            )
        info(f"cleaning up a control plane that no longer runs in {state_dir}")
        running.stop()
    scenario = load_scenario(args.scenario) if args.scenario else None
    service_range = (
        args.service_cluster_ip_range
        or (scenario.service_cluster_ip_range if scenario else None)
        or DEFAULT_SERVICE_CLUSTER_IP_RANGE
    )
    plane = ControlPlane.start(
        state_dir=state_dir,
        flavour=args.calico_api,
        service_cluster_ip_range=service_range,
        progress=info,
        timeout=args.timeout,
    )
    info(f"ready in {plane.state.ready_seconds:.1f} s: {plane.server} (service range {service_range})")
    if scenario is not None:
        try:
            result = plane.seed_scenario(scenario)
        except LabError:
            plane.stop()
            raise
        info(f"seeded scenario {result.scenario}: {len(result.created)} objects")
    info(f"stop it with: bgpflat lab control-plane down --state-dir {state_dir}")
    print(plane.kubeconfig)
    return EXIT_OK


def _cmd_down(args: argparse.Namespace) -> int:
    from bgpflat.lab.controlplane import STATE_FILE, ControlPlane

    state_dir = _state_dir(args)
    if not (state_dir / STATE_FILE).is_file():
        info(f"no control plane recorded in {state_dir}; nothing to stop")
        return EXIT_OK
    plane = ControlPlane.attach(state_dir)
    pids = ", ".join(f"{p.name} {p.pid}" for p in plane.state.processes)
    plane.stop()
    info(f"stopped {pids or 'nothing'}; removed {state_dir}")
    return EXIT_OK


def _cmd_status(args: argparse.Namespace) -> int:
    from bgpflat.lab.controlplane import STATE_FILE, ControlPlane

    state_dir = _state_dir(args)
    if not (state_dir / STATE_FILE).is_file():
        if args.json:
            print(json.dumps({"state_dir": str(state_dir), "ready": False, "processes": []}))
        else:
            print(f"not running (nothing recorded in {state_dir})")
        return EXIT_DIFFERENCES
    status = ControlPlane.attach(state_dir).status()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print(
            f"control plane  {'ready' if status['ready'] else 'NOT READY'}  {status['server']}  "
            f"Calico {status['flavour']}  kube-apiserver v{status['kubernetes_version']}  "
            f"etcd v{status['etcd_version']}"
        )
        for proc in status["processes"]:
            rss = f"{proc['rss_bytes'] / 2**20:.0f} MiB" if proc["rss_bytes"] else "-"
            print(
                f"  {proc['name']:<15} pid {proc['pid']:<8} {'running' if proc['running'] else 'STOPPED':<8} "
                f"rss {rss:<9} log {proc['log']}"
            )
        print(f"  kubeconfig      {status['kubeconfig']}")
    return EXIT_OK if status["ready"] else EXIT_DIFFERENCES


def _cmd_seed(args: argparse.Namespace) -> int:
    from bgpflat.lab.controlplane import ControlPlane

    plane = ControlPlane.attach(_state_dir(args))
    result = plane.seed_scenario(args.scenario)
    for kind, namespace, name in result.created:
        print(f"created {kind} {namespace + '/' if namespace else ''}{name}")
    for service, ip in sorted(result.cluster_ips.items()):
        info(f"service {service}: cluster IP {ip}")
    return EXIT_OK
