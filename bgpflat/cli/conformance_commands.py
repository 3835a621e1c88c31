"""``bgpflat lab conformance``: bgpflat's expected routes against confd-configured BIRD, situation by situation.

Exit codes (ux-conventions §1): 0 every cell matches, 1 at least one cell differs, 2 the lab could
not run (not root, no BIRD, no control plane…).
"""

from __future__ import annotations

import argparse
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
    chosen = list(SITUATIONS)
    if args.situation:
        known = {s.name for s in SITUATIONS}
        unknown = [n for n in args.situation if n not in known]
        if unknown:
            raise LabError(f"unknown situation(s) {', '.join(unknown)}; see `bgpflat lab conformance --list`")
        chosen = [s for s in SITUATIONS if s.name in args.situation]
    report = _run(args, chosen)
    if args.output in MACHINE_FORMATS:
        write_data(report.to_dict(), args.output)
    else:
        console().print(render_report(report))
    return EXIT_OK if report.all_match else EXIT_DIFFERENCES


def _run(args: argparse.Namespace, chosen: list[Any]) -> ConformanceReport:
    from bgpflat.lab.conformance.matrix import check_prerequisites, run_conformance
    from bgpflat.lab.controlplane.server import ControlPlane

    check_prerequisites()
    with tempfile.TemporaryDirectory(prefix="bgpflat-conformance-") as tmp:
        state_dir = args.state_dir or Path(tmp) / "lab"
        if args.control_plane_state_dir:
            plane = ControlPlane.attach(args.control_plane_state_dir)
            if not plane.status()["ready"]:
                raise LabError(f"the control plane in {args.control_plane_state_dir} is not ready")
            if plane.flavour != "v1":
                raise LabError("conformance runs against a crd.projectcalico.org/v1 control plane (--calico-api v1)")
            return run_conformance(plane=plane, state_dir=state_dir, situations=chosen, progress=info)
        info("starting a private control plane for the run")
        plane = ControlPlane.start(
            state_dir=Path(tmp) / "control-plane", flavour="v1", progress=info, tied_to_caller=True
        )
        try:
            return run_conformance(plane=plane, state_dir=state_dir, situations=chosen, progress=info)
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
