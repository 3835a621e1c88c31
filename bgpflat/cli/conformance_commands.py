"""``bgpflat lab conformance``: bgpflat's expected routes against confd-configured BIRD, situation by situation.

Exit codes (ux-conventions §1): 0 every cell matches, 1 at least one cell differs, 2 the lab could
not run (not root, no BIRD, no control plane…).
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bgpflat.cli.arguments.common import LISTING_FORMATS, add_output_option
from bgpflat.cli.output import EXIT_DIFFERENCES, EXIT_OK, MACHINE_FORMATS, console, info, write_data
from bgpflat.errors import LabError

if TYPE_CHECKING:
    from rich.console import RenderableType

    from bgpflat.lab.conformance.results import ConformanceReport


def register_conformance(lab_sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``lab conformance`` to the ``lab`` sub-parser."""
    cmd = lab_sub.add_parser(
        "conformance",
        help="compare bgpflat's expected routes with what confd-configured BIRD really advertises",
        description="For a matrix of situations (mesh on/off, iBGP/eBGP, next hop, disableBGPExport, "
        "borrowed addresses, services, communities, BGPFilters, excluded node, route reflector, IPv6 and "
        "dual-stack), seed a real API server, render every node's BIRD config with Calico's own confd, "
        "run bird and bird6 in network namespaces with the verification peer, and diff what the peer "
        "learns against `bgpflat routes expected`. Needs root, BIRD 1.6 and the cached control plane and confd.",
    )
    add_output_option(cmd, LISTING_FORMATS)
    cmd.add_argument(
        "--situation", action="append", metavar="NAME", help="run only this situation (repeatable; see --list)"
    )
    cmd.add_argument("--list", action="store_true", help="list the situations and exit")
    cmd.add_argument(
        "--control-plane-state-dir",
        metavar="DIR",
        type=Path,
        help="use the control plane already running there (`bgpflat lab control-plane up`); "
        "default: start a private one for the run",
    )
    cmd.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="where the namespaces' state, BIRD configs and logs live during the run (default: a temporary directory)",
    )
    cmd.add_argument(
        "--random",
        type=int,
        metavar="N",
        help="run N situations drawn at random (3-8 nodes, racks/AS, pools, affinities, services, BGPPeers, "
        "BGPFilters, communities, mesh on/off) instead of the fixed matrix",
    )
    cmd.add_argument(
        "--seed", type=int, metavar="S", help="the seed of --random (default: a fresh one, printed on stderr)"
    )
    cmd.add_argument(
        "--situation-file",
        action="append",
        type=Path,
        metavar="FILE",
        help="replay a situation a random run wrote on a mismatch (repeatable)",
    )
    cmd.add_argument(
        "--mismatch-dir",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="where a random situation that does not match is written, to replay with --situation-file (default: .)",
    )
    release = cmd.add_mutually_exclusive_group()
    release.add_argument(
        "--calico-version",
        metavar="V",
        help="the Calico release whose confd renders (and whose rules the model follows); "
        "default: the pinned one; the first run builds its confd",
    )
    release.add_argument(
        "--all-releases", action="store_true", help="run once per Calico release bgpflat has a confd recipe for"
    )
    cmd.set_defaults(func=_cmd_conformance)


def _cmd_conformance(args: argparse.Namespace) -> int:
    from bgpflat.lab.conformance.situations import SITUATIONS

    if args.list:
        if args.output in MACHINE_FORMATS:
            situations = [
                {"name": s.name, "session_type": s.session_type, "description": s.description} for s in SITUATIONS
            ]
            write_data({"format_version": 1, "situations": situations}, args.output)
            return EXIT_OK
        for item in SITUATIONS:
            print(f"{item.name:<26} {item.session_type:<5} {item.description}")
        return EXIT_OK
    chosen = _chosen(args)
    reports = _run(args, chosen)
    for report in reports:
        _keep_mismatches(report, args)
    if args.output in MACHINE_FORMATS:
        data = (
            reports[0].to_dict()
            if len(reports) == 1
            else {"format_version": 1, "reports": [r.to_dict() for r in reports]}
        )
        write_data(data, args.output)
    else:
        for report in reports:
            console().print(render_report(report))
    return EXIT_OK if all(r.all_match for r in reports) else EXIT_DIFFERENCES


def _chosen(args: argparse.Namespace) -> list[Any]:
    """The fixed situations asked for (all without --situation/--random/--situation-file), drawn
    ones, and replayed ones."""
    from bgpflat.lab.conformance import generator
    from bgpflat.lab.conformance.situations import SITUATIONS

    chosen: list[Any] = []
    if args.situation:
        known = {s.name for s in SITUATIONS}
        unknown = [n for n in args.situation if n not in known]
        if unknown:
            raise LabError(f"unknown situation(s) {', '.join(unknown)}; see `bgpflat lab conformance --list`")
        chosen = [s for s in SITUATIONS if s.name in args.situation]
    if args.random is not None:
        if args.random < 1:
            raise LabError(f"--random {args.random}: give the number of situations to draw (1 or more)")
        if args.seed is None:
            args.seed = secrets.randbelow(2**31)
        info(f"random situations: --random {args.random} --seed {args.seed}")
        chosen.extend(generator.generate(args.seed, args.random))
    elif args.seed is not None:
        raise LabError("--seed goes with --random N")
    for path in args.situation_file or ():
        try:
            chosen.append(generator.from_snapshot(json.loads(path.read_text()), source=str(path)))
        except (OSError, ValueError) as exc:
            raise LabError(f"--situation-file {path}: {exc}") from exc
    return chosen or list(SITUATIONS)


def _keep_mismatches(report: ConformanceReport, args: argparse.Namespace) -> None:
    """Write each generated situation that did not match, with the seed and the diff on stderr."""
    from bgpflat.lab.conformance import generator

    for cell in report.cells:
        situation = cell.situation
        if cell.match or situation.base_cluster:
            continue
        args.mismatch_dir.mkdir(parents=True, exist_ok=True)
        path = args.mismatch_dir / f"{situation.name}.json"
        seed, _, index = situation.name.removeprefix("random-").rpartition("-")
        data = generator.snapshot(
            situation, seed=int(seed) if seed.isdigit() else None, index=int(index) if index.isdigit() else None
        )
        path.write_text(json.dumps(data, indent=2) + "\n")
        info(
            f"MISMATCH {situation.name} (Calico {report.calico_version}, seed {data['seed']}): "
            f"{situation.description}\n"
            + "".join(f"  {line}\n" for line in cell.findings + list(cell.notes))
            + f"  situation written to {path}; replay: bgpflat lab conformance --situation-file {path}"
        )


def _state_dir(given: Path | None, tmp: Path, version: str, *, several: bool) -> Path:
    """``--state-dir`` (a subdirectory per release when there are several), else a temporary one."""
    if given is None:
        return tmp / f"lab-{version}"
    return given / version if several else given


def _run(args: argparse.Namespace, chosen: list[Any]) -> list[ConformanceReport]:
    from bgpflat.lab.conformance import releases
    from bgpflat.lab.conformance.matrix import check_prerequisites, run_conformance
    from bgpflat.lab.controlplane.server import ControlPlane

    versions = list(releases.RELEASES) if args.all_releases else [args.calico_version or releases.PINNED]
    for version in versions:
        releases.pin_for(version)  # an unknown release fails before anything starts
    check_prerequisites()
    builds = [releases.confd_for(v, build=True, progress=info) for v in versions]

    def run_all(plane: ControlPlane, tmp: Path) -> list[ConformanceReport]:
        reports = []
        for build in builds:
            assert build is not None  # built above
            if len(builds) > 1:
                info(f"Calico {build.version}")
            reports.append(
                run_conformance(
                    plane=plane,
                    state_dir=_state_dir(args.state_dir, tmp, build.version, several=len(builds) > 1),
                    situations=chosen,
                    progress=info,
                    calico_version=build.version,
                    confd=build.confd,
                    templates_dir=build.templates,
                )
            )
        return reports

    with tempfile.TemporaryDirectory(prefix="bgpflat-conformance-") as tmp:
        if args.control_plane_state_dir:
            plane = ControlPlane.attach(args.control_plane_state_dir)
            if not plane.status()["ready"]:
                raise LabError(f"the control plane in {args.control_plane_state_dir} is not ready")
            if plane.flavour != "v1":
                raise LabError("conformance runs against a crd.projectcalico.org/v1 control plane (--calico-api v1)")
            return run_all(plane, Path(tmp))
        info("starting a private control plane for the run")
        plane = ControlPlane.start(
            state_dir=Path(tmp) / "control-plane", flavour="v1", progress=info, tied_to_caller=True
        )
        try:
            return run_all(plane, Path(tmp))
        finally:
            plane.stop()


def render_report(report: ConformanceReport) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"Conformance with Calico {report.calico_version} (confd + BIRD 1.6)", title_justify="left")
    for column in ("Situation", "Peer", "Match", "Routes", "Seconds", "Notes"):
        table.add_column(column, justify="right" if column in {"Routes", "Seconds"} else "left")
    for cell in report.cells:
        findings = cell.findings
        notes = "; ".join(findings[:3]) + (f" (+{len(findings) - 3} more)" if len(findings) > 3 else "")
        table.add_row(
            cell.situation.name,
            cell.situation.session_type,
            Text("yes", style="green") if cell.match else Text("NO", style="red"),
            f"{cell.expected_routes}/{cell.learned_routes}",
            f"{cell.seconds:.1f}",
            notes or cell.situation.behaviour,
        )
    matched = sum(1 for c in report.cells if c.match)
    summary = Text(
        f"{matched}/{len(report.cells)} situations match; {report.seconds:.0f} s in all "
        f"({report.setup_seconds:.0f} s setup). Routes: expected/learned paths."
    )
    return Group(table, summary)
