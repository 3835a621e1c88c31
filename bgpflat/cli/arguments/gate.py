"""Where learned routes come from (``verify``'s and the gate's sources), and ``apply --gate SOURCE``:
the route gate's flags and what happens when it stops an apply (the stage just written is undone
unless ``--on-gate-failure stop``).

Sources are named ``KIND:WHERE``: ``peer:STATE_DIR`` reads the verification peer (``bgpflat peer
run --state-dir``), ``bmp:STATE_DIR`` one router of the BMP station (``bgpflat bmp run
--state-dir``): what the real ToR kept (post-policy, the default) or what the nodes sent it
(pre-policy). Another kind of source only needs a ``read()`` returning a ``LearnedState``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bgpflat.cli.arguments.learned import BmpSource, PeerSource
from bgpflat.cli.output import info
from bgpflat.core.bmp.policies import POLICIES, POST_POLICY, policy_name
from bgpflat.errors import SpecError

if TYPE_CHECKING:
    from bgpflat.adapters.kube import CalicoApi
    from bgpflat.core.plan.planner import Plan
    from bgpflat.workflows import ApplyReport
    from bgpflat.workflows.gate import RouteGate
    from bgpflat.workflows.ports import BackupWriter
    from bgpflat.workflows.verify import LearnedSource

GATE_KINDS = ("peer", "bmp")
GATE_SOURCES = "peer:STATE_DIR (the verification peer) or bmp:STATE_DIR (the BMP station)"


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gate",
        metavar="SOURCE",
        help="after each stage wait until the routes learned equal the expected ones; "
        "before encapsulation goes off, require every block delivered. SOURCE: peer:STATE_DIR "
        "(the verification peer) or bmp:STATE_DIR (what a real router reports to `bgpflat bmp run`)",
    )
    parser.add_argument(
        "--gate-peer",
        metavar="IP",
        help="the outside peer whose routes the gate checks (default: the address the peer's sessions use; "
        "with bmp: the router)",
    )
    parser.add_argument(
        "--gate-router",
        metavar="IP",
        help="with --gate bmp:DIR: the router, by the address its BMP session comes from "
        "(default: the one router the station knows)",
    )
    parser.add_argument(
        "--gate-policy",
        choices=POLICIES,
        default=POST_POLICY,
        help="with --gate bmp:DIR: wait for what the router kept (post, the default), for what the nodes "
        "sent it (pre), or for what it selected as best across all its peers (loc-rib: each prefix's best "
        "path must be one a node was expected to send)",
    )
    parser.add_argument(
        "--gate-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="how long each stage may take to turn green (default 120)",
    )
    parser.add_argument(
        "--on-gate-failure",
        choices=("rollback", "stop"),
        default="rollback",
        help="rollback (default): undo the stage just written; stop: leave it as written",
    )


def _source_kind(text: str) -> tuple[str, str]:
    """``--gate``'s kind and state directory, refusing a typo before anything is read."""
    kind, sep, where = text.partition(":")
    if not sep or kind not in GATE_KINDS or not where:
        raise SpecError(f"unknown gate source {text!r}", path="--gate", fix=f"use {GATE_SOURCES}")
    if not Path(where).is_dir():
        start = "bgpflat peer run" if kind == "peer" else "bgpflat bmp run"
        raise SpecError("no such directory", file=where, path="--gate", fix=f"start `{start} --state-dir` first")
    return kind, where


def _bare_address(text: str, flag: str, what: str) -> str:
    from bgpflat.core.net.prefixes import canonical_address

    try:
        return canonical_address(text)
    except SpecError as exc:
        raise SpecError(exc.message, path=flag, fix=f"give {what}'s bare IP address") from None


def _station_router(state_dir: str) -> str:
    """The one router that has a BMP session with the station, when ``--gate-router`` is not given."""
    from bgpflat.bmp.state import StateDir as StationDir
    from bgpflat.errors import BgpflatError

    try:
        data = StationDir(Path(state_dir)).read_snapshot()
    except BgpflatError as exc:
        raise SpecError(
            f"cannot tell which router to check: {exc}",
            path="--gate",
            fix="pass --gate-router IP, or start the station",
        ) from None
    routers = data.get("routers") if isinstance(data, Mapping) else None
    up = sorted(str(r.get("router")) for r in routers or () if isinstance(r, Mapping) and r.get("state") == "up")
    if len(up) != 1:
        known = ", ".join(up) or "none"
        raise SpecError(
            f"the BMP station has {len(up)} router(s) up ({known}), so which one to check is unclear",
            file=state_dir,
            path="--gate",
            fix="pass --gate-router IP (the address the router's BMP session comes from)",
        )
    return up[0]


def _source(args: argparse.Namespace) -> tuple[LearnedSource, str]:
    """The learned-route source named by ``--gate``, and the outside peer whose routes it holds."""
    kind, where = _source_kind(args.gate)
    if kind == "bmp":
        router = (
            _bare_address(args.gate_router, "--gate-router", "the router")
            if args.gate_router
            else _station_router(where)
        )
        source = BmpSource(where, None, router=router, policy=args.gate_policy)
        # The nodes peer with the router itself, so its address is the peer the routes are expected for.
        peer = _bare_address(args.gate_peer, "--gate-peer", "the peer") if args.gate_peer else router
        return source, peer
    return PeerSource(where, None), _peer_address(args, where)


def _peer_address(args: argparse.Namespace, state_dir: str) -> str:
    """``--gate-peer``, else the one local address of the verification peer's sessions."""
    if args.gate_peer:
        return _bare_address(args.gate_peer, "--gate-peer", "the peer")
    from bgpflat.errors import PeerError
    from bgpflat.peer.state import StateDir

    try:
        data = StateDir(Path(state_dir)).read_snapshot()
    except PeerError as exc:
        raise SpecError(
            f"cannot tell which peer to check: {exc}", path="--gate", fix="pass --gate-peer IP, or start the peer first"
        ) from None
    sessions = data.get("sessions") if isinstance(data, Mapping) else None
    local = {str(s.get("local")) for s in sessions or () if isinstance(s, Mapping) and s.get("local")}
    if len(local) != 1:
        raise SpecError(
            f"the peer's sessions use {len(local)} local address(es), so which peer to check is unclear",
            file=state_dir,
            path="--gate",
            fix="pass --gate-peer IP (the peer's peerIP in the BGPPeer)",
        )
    return local.pop()


def check_gate_flags(args: argparse.Namespace) -> None:
    """The gate's flags, checked before any cluster is contacted."""
    if not args.gate:
        return
    if args.gate_timeout <= 0:
        raise SpecError("--gate-timeout must be > 0", fix="give the seconds each stage may take, e.g. 120")
    if args.dry_run != "none":
        raise SpecError("--gate waits for routes, which a server dry run never changes", fix="drop one of them")
    kind, _where = _source_kind(args.gate)
    if args.gate_peer:
        _bare_address(args.gate_peer, "--gate-peer", "the peer")
    if args.gate_router:
        if kind != "bmp":
            raise SpecError(
                "--gate-router names a router of the BMP station", path="--gate-router", fix="use --gate bmp:DIR"
            )
        _bare_address(args.gate_router, "--gate-router", "the router")
    if kind == "bmp":
        _source(args)  # which router, from the station's state, before the cluster is read


def make_gate(args: argparse.Namespace, plan: Plan, api: CalicoApi) -> RouteGate | None:
    if not args.gate:
        return None
    from bgpflat.workflows.gate import RouteGate

    source, peer = _source(args)
    if isinstance(source, BmpSource):
        seen = f"routes router {source.router} reports ({policy_name(args.gate_policy)}) for peer {peer}"
    else:
        seen = f"routes learned by {peer}"
    info(f"Gate: {seen} ({args.gate}), up to {args.gate_timeout:g} s per stage")
    return RouteGate(
        plan=plan,
        read_cluster=lambda: list(api.read_everything()),
        source=source,
        peer=peer,
        timeout=args.gate_timeout,
        progress=info,
    )


def after_gate_stop(
    args: argparse.Namespace, gate: RouteGate, plan: Plan, report: ApplyReport, api: CalicoApi, *, backup: BackupWriter
) -> ApplyReport | None:
    """Undo the stage the gate stopped after (unless ``--on-gate-failure stop``), record that in
    the apply's backup, and say what is left and how to undo the rest. Returns the undo's report."""
    from bgpflat import workflows
    from bgpflat.workflows.gate import record_undo, undo_stage

    stopped = gate.stopped
    if stopped is None:
        return None
    stage = stopped.stage if not stopped.stage.startswith("before ") else ""
    undo = None
    if stage and args.on_gate_failure == "rollback":
        undo_plan = undo_stage(plan, report, stage)
        if undo_plan.has_changes:
            info(f"Gate: undoing stage {stage}")
            undo = workflows.apply_plan(undo_plan, api, backup=None, progress=info, allow_crd_v1=args.allow_crd_v1)
            if report.backup and undo.error is None:
                from bgpflat.adapters.files.backups import load_backup

                saved = load_backup(report.backup)
                backup(header=record_undo(dict(saved.header), undo), objects=saved.objects, path=report.backup)
    if undo is not None and undo.error is not None:
        info(f"Gate: undoing stage {stage} stopped: {undo.error}")
    elif undo is not None:
        first = plan.stages[0].name == stage
        info(
            f"Gate: stage {stage} was undone; "
            + ("nothing of the apply is left" if first else "the stages before it stay applied")
        )
    elif stage:
        info(f"Gate: stage {stage} was left as written (--on-gate-failure stop)")
    if report.backup:
        info(f"Undo the whole apply with: bgpflat rollback {report.backup}")
    return undo


def gate_json(gate: RouteGate | None, undo: ApplyReport | None) -> dict[str, Any]:
    if gate is None:
        return {}
    data = gate.to_dict()
    if undo is not None:
        data["undo"] = undo.to_dict()
    return {"gate": data}


def gate_lines(gate: RouteGate) -> list[str]:
    """Per stage: seconds until the learned routes matched, or where the gate stopped."""
    lines = []
    for result in gate.results:
        if result.passed:
            lines.append(f"Gate {result.stage}: green after {result.seconds:.1f} s ({result.expected} routes)")
        else:
            counts = f"{result.matched}/{result.expected}"
            lines.append(f"Gate {result.stage}: STOPPED after {result.seconds:.1f} s ({counts} as expected)")
    return lines
