"""``bgpflat lab …``: local labs.

``lab up|down|status|check`` run a whole scenario (``labs/<name>``): a real API server seeded with
the scenario's cluster, the namespace fabric rendered from it and kept in line with it, and the
verification peer (``bgpflat.lab.fabric.lifecycle``, ``bgpflat.lab.fabric.check``). ``lab control-plane
build|up|down|status|seed`` run the API server alone.

``lab`` owns a sub-parser; each family of lab commands registers itself on it through its own
``_register_*`` function.

Exit codes: ``up``/``down`` 0 or 2 (error); ``check`` 0 passed, 1 a step failed (named on stderr
and in the output), 2 the check could not run; ``status`` 0 every recorded lab healthy, 1 one is
not (or none is recorded).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bgpflat.cli.arguments.common import LISTING_FORMATS, add_output_option
from bgpflat.cli.conformance_commands import register_conformance
from bgpflat.cli.output import EXIT_DIFFERENCES, EXIT_OK, MACHINE_FORMATS, info, write_data
from bgpflat.errors import LabError


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add this group's sub-commands to the CLI."""
    lab = sub.add_parser(
        "lab",
        help="local labs: office, ToR, Calico nodes and a real API server in network namespaces",
        description="Local labs for trying bgpflat without a real cluster.",
    )
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="SUBCOMMAND")
    lab_sub.required = True
    _register_scenario_lab(lab_sub)
    _register_control_plane(lab_sub)
    register_conformance(lab_sub)


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
        "--calico-api",
        choices=("v1", "v3", "apiserver", "all"),
        default="all",
        help="which CRD flavours to fetch, and for apiserver (or all) build Calico's API server (default: all)",
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
        choices=("v1", "v3", "apiserver"),
        default="v1",
        help="v1: crd.projectcalico.org/v1 CRDs (KDD, no Calico API server); "
        "v3: Calico's native projectcalico.org/v3 CRDs; apiserver: the v1 CRDs with projectcalico.org/v3 "
        "served by Calico's own aggregated API server (default: v1)",
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
    seed.add_argument("scenario", metavar="NAME|DIR", help="a scenario name (labs/NAME) or directory")
    state_dir_option(seed)
    seed.set_defaults(func=_cmd_seed)


def _state_dir(args: argparse.Namespace) -> Path:
    from bgpflat.lab.controlplane.server import default_state_dir

    return Path(args.state_dir) if args.state_dir else default_state_dir()


def _cmd_build(args: argparse.Namespace) -> int:
    from bgpflat.lab.controlplane import crds
    from bgpflat.lab.controlplane.binaries import ensure_binaries

    binaries = ensure_binaries(progress=info)
    info(f"kube-apiserver and etcd: {binaries.directory}")
    flavours: tuple[crds.Flavour, ...] = crds.FLAVOURS if args.calico_api == "all" else (args.calico_api,)
    failed = []
    for flavour in flavours:
        try:
            manifests = crds.crd_manifests(flavour)
            derived = sum(crds.DERIVED_ANNOTATION in m["metadata"].get("annotations", {}) for m in manifests)
            note = f" ({derived} derived from the v1 schemas: the native set cannot be fetched)" if derived else ""
            info(f"Calico {flavour} CRDs: {len(manifests)} CRDs ready{note}")
        except LabError as exc:
            failed.append(flavour)
            info(f"Calico {flavour} CRDs: {exc}")
    if "apiserver" in flavours:
        from bgpflat.lab.controlplane.binaries import ensure_calico_apiserver

        info(f"Calico API server: {ensure_calico_apiserver(progress=info)}")
    print(binaries.directory)
    if failed:
        raise LabError(f"could not fetch the CRDs of flavour(s) {', '.join(failed)} (see above)")
    return EXIT_OK


def _cmd_up(args: argparse.Namespace) -> int:
    from bgpflat.lab.controlplane.seed import load_scenario
    from bgpflat.lab.controlplane.server import STATE_FILE, ControlPlane
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
    from bgpflat.lab.controlplane.server import STATE_FILE, ControlPlane

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
    from bgpflat.lab.controlplane.server import STATE_FILE, ControlPlane

    state_dir = _state_dir(args)
    if not (state_dir / STATE_FILE).is_file():
        if args.json:
            print(json.dumps({"state_dir": str(state_dir), "ready": False, "processes": []}))
        else:
            print(f"not running (nothing recorded in {state_dir})")
        # A status command that could report exits 0 whatever it reports (as kubectl get does).
        return EXIT_OK
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
    return EXIT_OK


def _cmd_seed(args: argparse.Namespace) -> int:
    from bgpflat.lab.controlplane.server import ControlPlane

    plane = ControlPlane.attach(_state_dir(args))
    result = plane.seed_scenario(args.scenario)
    for kind, namespace, name in result.created:
        print(f"created {kind} {namespace + '/' if namespace else ''}{name}")
    for service, ip in sorted(result.cluster_ips.items()):
        info(f"service {service}: cluster IP {ip}")
    return EXIT_OK


# -- lab up | down | status | check ----------------------------------------------------------------


def _register_scenario_lab(lab_sub: argparse._SubParsersAction[Any]) -> None:
    def state_dir_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--state-dir",
            metavar="DIR",
            type=Path,
            help="the lab's state directory (default: $XDG_STATE_HOME/bgpflat/lab/SCENARIO)",
        )

    up = lab_sub.add_parser(
        "up",
        help="build a scenario's lab: API server, ToR, Calico nodes, pods, DNS, verification peer",
        description="Start a control plane seeded with the scenario's cluster, build the network "
        "namespaces, run Calico's own confd per node (watching the API server and reloading the "
        "node's BIRD on every change, as calico-node does), start a follower that keeps DNAT and "
        "cluster DNS in line with the objects, and start the verification peer. Prints the "
        "kubeconfig path as the last line of stdout.",
    )
    up.add_argument(
        "scenario",
        metavar="SCENARIO",
        help="a name under labs/ (calico-bgp, ipip-migration, forwarding-node, edge-node) or a directory",
    )
    state_dir_option(up)
    up.add_argument(
        "--control-plane",
        metavar="DIR",
        type=Path,
        help="use the control plane already running in DIR (as `lab control-plane up --scenario` left "
        "it) instead of starting one; `lab down` leaves it running",
    )
    up.set_defaults(func=_cmd_lab_up)

    down = lab_sub.add_parser(
        "down",
        help="stop everything a lab started and remove its namespaces and files",
        description="Stop the follower, the verification peer, every daemon and the control plane "
        "(if the lab started it), by recorded PID; delete the namespaces and the state directory. "
        "Safe to repeat.",
    )
    down.add_argument("scenario", metavar="SCENARIO", help="the scenario whose lab to stop and remove")
    state_dir_option(down)
    down.set_defaults(func=_cmd_lab_down)

    status = lab_sub.add_parser(
        "status",
        help="list the labs that exist and whether their namespaces and processes are alive",
        description="Every lab recorded under $XDG_STATE_HOME/bgpflat/lab (or the given --state-dir): "
        "namespaces, processes and control plane. Exit 0 when all are healthy, 1 otherwise.",
    )
    status.add_argument(
        "scenario", nargs="?", metavar="SCENARIO", help="show only this scenario's lab (default: every lab)"
    )
    status.add_argument("--state-dir", metavar="DIR", type=Path, help="show only the lab in DIR")
    add_output_option(status, LISTING_FORMATS)
    status.set_defaults(func=_cmd_lab_status)

    check = lab_sub.add_parser(
        "check",
        help="apply the scenario's flat spec, verify, reach pods and services from the office, revert",
        description="On a running lab: apply the flat spec with bgpflat, wait for `bgpflat verify` to "
        "pass, GET a pod IP, a cluster IP and http://whoami from the office developer host, roll the "
        "apply back and check that the routes and the reachability are gone. Prints each step with "
        "its result and duration. Exit 0 passed, 1 a step failed, 2 the check could not run.",
    )
    check.add_argument("scenario", metavar="SCENARIO", help="the scenario whose running lab to check")
    state_dir_option(check)
    check.add_argument(
        "--verify-timeout",
        type=float,
        default=90.0,
        metavar="SECONDS",
        help="how long `bgpflat verify --wait` may take to turn green (default 90)",
    )
    check.add_argument(
        "--fault",
        choices=("tor-drops-rack",),
        help="migration labs: break the network first (tor-drops-rack: the ToR refuses the last rack's "
        "blocks); the check passes when the gate stops the change before encapsulation goes off",
    )
    check.add_argument(
        "--no-gate",
        action="store_true",
        help="migration labs: apply without the route gate (with --fault: the outage the gate prevents; exits 1)",
    )
    add_output_option(check)
    check.set_defaults(func=_cmd_lab_check)


def _lab_dir(args: argparse.Namespace) -> Path:
    from bgpflat.lab.fabric.lifecycle import default_state_dir

    return Path(args.state_dir) if args.state_dir else default_state_dir(args.scenario)


def _known_lab_dir(args: argparse.Namespace) -> Path:
    """The lab's state directory, refusing a scenario name that is a typo before anything is touched."""
    from bgpflat.lab.fabric.lifecycle import require_known_scenario

    state_dir = _lab_dir(args)
    require_known_scenario(args.scenario, state_dir)
    return state_dir


def _scenario_name(name_or_path: str) -> str:
    from bgpflat.lab.controlplane.seed import load_scenario

    return load_scenario(name_or_path).name


def _cmd_lab_up(args: argparse.Namespace) -> int:
    from bgpflat.lab.fabric.lifecycle import RUN_FILE, Lab

    state_dir = _lab_dir(args)
    if (state_dir / RUN_FILE).is_file():
        running = Lab.attach(state_dir)
        if running.record.scenario == _scenario_name(args.scenario) and running.status()["healthy"]:
            info(f"lab {running.record.scenario} is already up in {state_dir}")
            print(running.kubeconfig)
            return EXIT_OK
        raise LabError(
            f"a lab ({running.record.scenario}) is recorded in {state_dir} but is not healthy or is another "
            "scenario; run `bgpflat lab down` for it first"
        )
    from bgpflat.lab import setups
    from bgpflat.lab.fabric.topology import BGP_MODES

    lab = setups.up(args.scenario, state_dir=state_dir, control_plane=args.control_plane, progress=info)
    fabric = lab.fabric()
    office = fabric.topology.office
    timings = lab.record.timings
    info(
        f"lab {args.scenario} up in {timings['up']:.1f} s (control plane {timings.get('control_plane', 0):.1f} s, "
        f"fabric {timings.get('fabric', 0):.1f} s)"
    )
    developer = fabric.namespace("developer")
    # Without BGP (static-nat, or a setup of bgpflat.lab.setups) there is nothing to apply or verify.
    without_bgp = fabric.topology.mode not in BGP_MODES
    setup_hints = setups.hints(lab)  # a setup says itself how to look at its lab
    lines = [
        f"state:        {lab.state_dir}",
        f"API server:   {lab.control_plane().server}",
    ]
    if setup_hints:
        lines += setup_hints
    elif without_bgp:
        # No BGP here: the office side is static routes, NAT on the forwarding node and DNS forwarding.
        kinds = "static-routes|nat|dns|dhcp" if office.dhcp else "static-routes|nat|dns"
        lines += [
            f"office side:  bgpflat render {kinds} --scenario labs/{args.scenario} "
            "(lab check installs and reverts them)",
        ]
    else:
        lines += [
            f"flat spec:    {lab.spec_file}  (the scenario's, plus the BGPPeer to the verifier)",
            f"flatten it:   bgpflat apply -f {lab.spec_file} --kubeconfig {lab.kubeconfig} --allow-crd-v1",
        ]
    if lab.record.verifier_address and not without_bgp:
        lines += [
            f"verify:       bgpflat verify --peer {lab.record.verifier_address} --kubeconfig {lab.kubeconfig} "
            f"--state-dir {lab.peer_state} --wait",
        ]
    if lab.record.bmp_station and not without_bgp:
        lines += [
            f"BMP station:  {lab.record.bmp_station}, the ToR streams to it: "
            f"bgpflat bmp status --state-dir {lab.bmp_state}",
            f"verify (BMP): bgpflat verify --peer {lab.record.bmp_router} --kubeconfig {lab.kubeconfig} "
            f"--source bmp:{lab.bmp_state} --router {lab.record.bmp_router} [--policy pre|post] --wait",
        ]
    if not setup_hints:
        lines += [
            f"office host:  ip netns exec {developer} curl http://whoami"
            + (
                f"   (developer {office.developer} by DHCP; resolver and search domain by DHCP once `lab check` "
                "installed them)"
                if office.dhcp
                else f"   (developer {office.developer}, resolver {office.resolver}, "
                f"search {office.search_domain or '-'})"
            ),
        ]
    if not without_bgp:
        lines.append(f"ToR routes:   ip netns exec {fabric.namespace('tor')} ip route show proto bgp")
    lines += [
        f"check:        bgpflat lab check {args.scenario}"
        + (f" --state-dir {args.state_dir}" if args.state_dir else ""),
        f"take down:    bgpflat lab down {args.scenario}"
        + (f" --state-dir {args.state_dir}" if args.state_dir else ""),
    ]
    for line in lines:
        info(line)
    print(lab.kubeconfig)
    return EXIT_OK


def _cmd_lab_down(args: argparse.Namespace) -> int:
    from bgpflat.lab.fabric.lifecycle import down

    state_dir = _known_lab_dir(args)
    done = down(state_dir)
    if done:
        info(f"lab {args.scenario} down: stopped and removed {len(done)} item(s)")
        for item in done:
            info(f"  {item}")
    else:
        info(f"no lab recorded in {state_dir}; nothing to do")
    return EXIT_OK


def _cmd_lab_status(args: argparse.Namespace) -> int:
    from bgpflat.lab.fabric.lifecycle import Lab, recorded_labs

    if args.scenario:
        directories = [_known_lab_dir(args)]
    else:
        directories = [Path(args.state_dir)] if args.state_dir else recorded_labs()
    labs = [Lab.attach(d).status() for d in directories]
    if args.output in MACHINE_FORMATS:
        write_data({"format_version": 1, "labs": labs}, args.output)
    elif not labs:
        print("no labs recorded")
    else:
        for lab in labs:
            namespaces = lab["namespaces"]
            alive = sum(1 for n in namespaces if n["exists"])
            plane = lab["control_plane"]
            plane_text = (
                f"{plane['server']} {'ready' if plane['ready'] else 'NOT READY'}"
                f"{'' if plane['owned'] else ' (not started by this lab)'}"
                if plane
                else "none"
            )
            print(
                f"{lab['scenario']:<16} {'healthy' if lab['healthy'] else 'DEGRADED':<9} {lab['state_dir']}\n"
                f"  namespaces     {alive}/{len(namespaces)} exist ({lab.get('lab', '-')}-*)\n"
                f"  control plane  {plane_text}\n"
                f"  kubeconfig     {lab['kubeconfig'] or '-'}"
            )
            station = lab.get("bmp_station")
            if station:
                print(
                    f"  BMP station    {station['listen']} from ToR {station['router']} (state {station['state_dir']})"
                )
            for proc in lab["processes"]:
                print(
                    f"  {proc['name']:<40} pid {proc['pid']:<8} {'running' if proc['running'] else 'STOPPED':<8} "
                    f"netns {proc['namespace']}"
                )
    return EXIT_OK


def _cmd_lab_check(args: argparse.Namespace) -> int:
    from bgpflat.lab.fabric.lifecycle import Lab
    from bgpflat.lab.fabric.topology import MODE_MIGRATION
    from bgpflat.lab.setups import run_check

    lab = Lab.attach(_known_lab_dir(args))
    if lab.fabric().topology.mode == MODE_MIGRATION:
        from bgpflat.lab.setups.migration import run_migration_check

        report = run_migration_check(
            lab, verify_timeout=args.verify_timeout, progress=info, fault=args.fault, gate=not args.no_gate
        )
    elif args.fault or args.no_gate:
        raise LabError(
            f"--fault and --no-gate are for migration labs; {args.scenario} is not one (mode in topology.yaml)"
        )
    else:
        report = run_check(lab, verify_timeout=args.verify_timeout, progress=info)
    if args.output == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        width = max(len(s.name) for s in report.steps) if report.steps else 4
        print(f"{'step':<{width}}  {'result':<6}  {'seconds':>7}  detail")
        for step in report.steps:
            print(f"{step.name:<{width}}  {'ok' if step.ok else 'FAILED':<6}  {step.seconds:>7.1f}  {step.detail}")
        summary = [f"total {sum(s.seconds for s in report.steps):.1f} s"]
        if report.lab_up_seconds is not None:
            summary.append(f"lab up {report.lab_up_seconds:.1f} s")
        if report.apply_to_verify_green_seconds is not None:
            summary.append(f"apply → verify green {report.apply_to_verify_green_seconds:.1f} s")
        print(f"{'PASSED' if report.passed else 'FAILED'}: " + ", ".join(summary))
    if not report.passed:
        info(f"lab check {args.scenario}: step {report.failed_step!r} failed; logs in {lab.state_dir / 'check'}")
        return EXIT_DIFFERENCES
    return EXIT_OK
