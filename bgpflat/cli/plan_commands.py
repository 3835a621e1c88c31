"""``bgpflat plan | apply | rollback | snapshot``: change Calico's BGP objects like terraform does.

Exit codes (ux-conventions §1): ``plan`` 0 ok, 2 error; with ``--detailed-exitcode`` 0 no changes,
1 error, 2 changes. ``apply``/``rollback``/``snapshot`` 0 done (or nothing to do), 2 refused,
stopped or failed; a stopped apply still prints what it wrote and the backup that undoes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bgpflat.cli.arguments.common import (
    add_cluster_options,
    add_output_option,
    refuse_cluster_flags_with_snapshot,
    snapshot_output_file,
)
from bgpflat.cli.arguments.gate import add_gate_options
from bgpflat.cli.output import EXIT_ERROR, EXIT_OK, console, error_line, info
from bgpflat.cli.signals import exit_code, stop_at_safe_point
from bgpflat.errors import BgpflatError, PlanError, SpecError

if TYPE_CHECKING:
    from bgpflat.adapters.kube import CalicoApi, ServiceApi
    from bgpflat.core.plan.planner import Plan
    from bgpflat.core.routes.expected import OutsidePeer
    from bgpflat.core.state.model import DesiredState
    from bgpflat.workflows import ApplyReport

DEFAULT_BACKUP_DIR = Path(".bgpflat") / "backups"
PLAN_EXIT_NO_CHANGES = 0
PLAN_EXIT_ERROR_DETAILED = 1
PLAN_EXIT_CHANGES = 2
EXIT_GATE_STOPPED = 1  # the routes did not follow: the gate stopped the apply (and undid the last stage)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add plan, apply, rollback and snapshot."""
    plan = sub.add_parser(
        "plan",
        help="show what apply would change (field by field) and the risks",
        description="Compare a flat spec or Calico manifests with the cluster (or a snapshot) over the "
        "fields bgpflat owns, and show the staged changes and risk findings.",
    )
    plan.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="bgpflat.yaml (flat spec) or Calico manifests; - reads stdin, a directory its *.yaml/*.yml/*.json; "
        "repeatable",
    )
    plan.add_argument("--snapshot", metavar="FILE", help="compare with a snapshot file instead of a live cluster")
    add_output_option(plan, ("table", "json", "yaml"))
    plan.add_argument("--out", metavar="PLAN.json", help="save the plan for `bgpflat apply PLAN.json`")
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 for no changes, 1 for an error, 2 for changes (like terraform)",
    )
    plan.add_argument(
        "--prune",
        action="store_true",
        help="also delete objects labelled managed-by bgpflat that the spec no longer has",
    )
    plan.add_argument(
        "--peer",
        dest="peers",
        action="append",
        default=[],
        metavar="IP",
        help="also show the route impact for this outside BGP peer (every BGPPeer's peerIP is shown anyway); "
        "repeatable",
    )
    add_cluster_options(plan)
    plan.set_defaults(func=_cmd_plan)

    apply = sub.add_parser(
        "apply",
        help="apply a saved plan, or plan and apply -f FILE after confirmation",
        description="Apply changes stage by stage with resourceVersion preconditions, after backing up "
        "every object it changes. A saved plan is refused if the cluster changed since it was made.",
    )
    apply.add_argument("plan_file", nargs="?", metavar="PLAN.json", help="a plan saved by `bgpflat plan --out`")
    apply.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        metavar="FILE",
        help="plan from this spec now and apply it (asks first unless --yes); - reads stdin, a directory its "
        "manifests; repeatable",
    )
    apply.add_argument("--yes", "--auto-approve", dest="yes", action="store_true", help="do not ask for confirmation")
    apply.add_argument(
        "--dry-run",
        choices=("none", "server"),
        default="none",
        help="server: send every write as a Kubernetes server-side dry run (nothing is stored)",
    )
    apply.add_argument("--prune", action="store_true", help="with -f: delete bgpflat-managed objects not in the spec")
    apply.add_argument(
        "--allow-crd-v1",
        action="store_true",
        help="allow writing crd.projectcalico.org/v1 when the cluster serves nothing else",
    )
    apply.add_argument(
        "--backup-dir",
        metavar="DIR",
        default=str(DEFAULT_BACKUP_DIR),
        help=f"where backups go (default: {DEFAULT_BACKUP_DIR})",
    )
    add_gate_options(apply)
    add_output_option(apply)
    add_cluster_options(apply)
    apply.set_defaults(func=_cmd_apply)

    rollback = sub.add_parser(
        "rollback",
        help="restore the objects of an apply's backup, and delete what it created",
        description="Put back the specs saved in BACKUP and delete the objects that apply created. "
        "Refused for any object edited since that apply, unless --force.",
    )
    rollback.add_argument("backup", metavar="BACKUP", help="a backup file written by `bgpflat apply`")
    rollback.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rollback.add_argument(
        "--dry-run",
        choices=("none", "server"),
        default="none",
        help="server: send every write as a Kubernetes server-side dry run (nothing is stored)",
    )
    rollback.add_argument("--force", action="store_true", help="roll back objects edited after the apply, too")
    add_cluster_options(rollback)
    rollback.set_defaults(func=_cmd_rollback)

    snapshot = sub.add_parser(
        "snapshot",
        help="save the cluster state plan and expected routes need, for use without a cluster",
        description="Export Calico objects, Nodes (labels and annotations), IPAM blocks and affinities, "
        "Services and EndpointSlices into one YAML file (`plan --snapshot`, `routes --snapshot`).",
    )
    snapshot.add_argument("--output-file", metavar="FILE", help="where to write the snapshot (required)")
    snapshot.add_argument(
        "-o",
        "--output",
        metavar="json",
        help="output format: json, one object per line, the only one (-o FILE is the deprecated spelling of "
        "--output-file FILE)",
    )
    add_cluster_options(snapshot)
    snapshot.set_defaults(func=_cmd_snapshot)


# --- helpers -------------------------------------------------------------------------------------


def _connect(args: argparse.Namespace) -> CalicoApi:
    from bgpflat.adapters.kube import CalicoApi

    return CalicoApi.connect(kubeconfig=args.kubeconfig, context=args.context, calico_api=args.calico_api)


def _announce(api: CalicoApi, verb: str) -> None:
    """The target, always on stderr before anything else: the one line that prevents the wrong cluster."""
    info(f"{verb} context {api.target.context!r} at {api.target.server} (Calico API {api.flavour.api_version})")


def load_desired_files(paths: Sequence[str]) -> DesiredState:
    from bgpflat.adapters import files
    from bgpflat.core.state.load import load_desired

    documents: list[files.Document] = []
    for path in files.input_paths(paths):
        loaded = files.load_documents(path)
        if not loaded:
            raise SpecError(
                "empty file: no flat spec and no Calico manifests",
                file=files.STDIN_NAME if path == files.STDIN else path,
                fix="pass a bgpflat.yaml or Calico manifests",
            )
        documents.extend(loaded)
    return load_desired(documents)


def load_saved_plan(path: str) -> Plan:
    """A plan file from ``plan --out``; every refusal names the file, and a snapshot plan is refused
    here, before any cluster is contacted."""
    from bgpflat.adapters.files import read_json
    from bgpflat.core.plan.planner import Plan

    if Path(path).suffix in (".yaml", ".yml"):
        raise PlanError(
            f"{path}: a saved plan is the JSON file `bgpflat plan --out` writes; "
            f"to plan and apply a spec, run: bgpflat apply -f {path}"
        )
    try:
        plan = Plan.from_dict(read_json(path))
    except PlanError as exc:
        text = str(exc)
        if "make the plan again" not in text:
            text += " (fix: make the plan again with `bgpflat plan --out`; a saved plan is not edited by hand)"
        raise PlanError(f"{path}: {text}") from None
    from bgpflat.core.external import is_external_plan

    if is_external_plan(plan):
        raise PlanError(
            f"{path}: this plan was saved by `bgpflat external plan --out`; "
            f"apply it with: bgpflat external apply {path}"
        )
    if plan.review_only:
        raise PlanError(
            f"{path}: this plan is for review only: it was made from the snapshot {plan.identity.snapshot}, "
            "not from a cluster; run `bgpflat plan --out` against the cluster to get a plan that can be applied"
        )
    return plan


def _print_plan(plan: Plan, output: str, *, stderr: bool = False) -> None:
    from bgpflat.views.plan import plan_renderable

    if output == "json":
        sys.stdout.write(plan.to_json())
    elif output == "yaml":
        from bgpflat.adapters.files import dump_yaml

        sys.stdout.write(dump_yaml(json.loads(plan.to_json())))
    else:
        console(stderr=stderr).print(plan_renderable(plan), end="", soft_wrap=True)


def _print_report(report: ApplyReport, output: str, *, verb: str, extra: Mapping[str, Any] | None = None) -> None:
    from bgpflat.views.plan import report_text

    if output == "json":
        sys.stdout.write(json.dumps({**report.to_dict(), **(extra or {})}, indent=2, sort_keys=True) + "\n")
    else:
        console().print(report_text(report, verb=verb), end="", markup=False, highlight=False, soft_wrap=True)


def _confirm(question: str) -> bool:
    info(question)
    try:
        answer = input("  Enter 'yes' to continue: ")
    except EOFError:
        return False
    return answer.strip().lower() == "yes"


def _require_terminal(args: argparse.Namespace) -> None:
    if not args.yes and args.dry_run == "none" and not sys.stdin.isatty():
        raise PlanError("stdin is not a terminal, so bgpflat cannot ask for confirmation; pass --yes to apply")


# --- plan ----------------------------------------------------------------------------------------


def _cmd_plan(args: argparse.Namespace) -> int:
    try:
        plan = _make_plan(args)
        if args.out and not plan.blocking:
            from bgpflat.adapters.files import write_text_atomic

            write_text_atomic(args.out, plan.to_json())
        _print_plan(plan, args.output)
        # Said after the plan, as terraform does: the last line is where the saved file is.
        if args.out and plan.blocking:
            info(f"Plan not saved to {args.out}: apply would refuse it.")
        elif args.out and plan.review_only:
            info(
                f"Plan saved to {args.out} for review only: it was made from the snapshot {plan.identity.snapshot}, "
                "so `bgpflat apply` refuses it; plan against the cluster with --out to get one to apply."
            )
        elif args.out:
            info(f"Plan saved to {args.out}; apply it with: bgpflat apply {args.out}")
        # Shown in full first, then an error: a CI job must not pass on a plan that apply refuses
        # (an address overlap, a mesh turned off without peers).
        plan.ensure_applicable()
    except BgpflatError as exc:
        if args.detailed_exitcode and not args.debug:
            error_line(str(exc))
            return PLAN_EXIT_ERROR_DETAILED
        raise
    if args.detailed_exitcode:
        return PLAN_EXIT_CHANGES if plan.has_changes else PLAN_EXIT_NO_CHANGES
    return EXIT_OK


def outside_peers(addresses: Sequence[str]) -> list[OutsidePeer]:
    """``--peer`` values as the route model takes them; a bad one is named with its flag."""
    from bgpflat.core.net.prefixes import canonical_address
    from bgpflat.core.routes.expected import OutsidePeer

    peers = []
    for text in addresses:
        try:
            peers.append(OutsidePeer(address=canonical_address(text)))
        except SpecError as exc:
            raise SpecError(exc.message, path="--peer", fix="give the peer's bare IP address (no port)") from None
    return peers


def _make_plan(args: argparse.Namespace) -> Plan:
    from bgpflat import workflows

    refuse_cluster_flags_with_snapshot(args)
    peers = outside_peers(args.peers)
    desired = load_desired_files(args.files)
    if args.snapshot:
        from bgpflat.adapters.collector import collector_paused
        from bgpflat.adapters.files import load_snapshot

        # Thousands of long-lived objects: out of the cyclic collector's walks (see files).
        with collector_paused(freeze=True):
            snapshot = load_snapshot(args.snapshot)
        try:
            return workflows.plan_snapshot(
                snapshot.objects,
                desired,
                header=snapshot.header,
                file=snapshot.file,
                prune=args.prune,
                peers=peers,
            )
        except SpecError as exc:
            # The spec was checked with its file names on load; what is left unnamed comes from
            # the snapshot's objects, which the core sees as plain dicts.
            if exc.file is not None:
                raise
            raise type(exc)(exc.message, file=snapshot.file, path=exc.path, fix=exc.fix) from None
    api = _connect(args)
    try:
        _announce(api, "Planning against")
        return workflows.plan_cluster(api, desired, prune=args.prune, peers=peers)
    finally:
        api.close()


# --- apply ---------------------------------------------------------------------------------------


class FileBackups:
    """Backups under ``directory`` (``bgpflat.adapters.files``), named after the context."""

    def __init__(self, directory: str, context: str) -> None:
        self.directory = directory
        self.context = context

    def __call__(
        self,
        *,
        header: Mapping[str, Any],
        objects: Sequence[Mapping[str, Any]],
        path: str | None,
        writes: Sequence[Mapping[str, Any]] = (),
    ) -> str:
        from bgpflat.adapters import files
        from bgpflat.adapters.files import backups

        if path is None:
            taken_at = dt.datetime.now(dt.UTC)
            return str(
                backups.write_backup(
                    self.directory, context=self.context, taken_at=taken_at, header=header, objects=objects
                )
            )
        text = backups.backup_text(header=header, objects=objects, writes=writes)
        return str(files.write_text_atomic(path, text, mode=0o600))

    def record(self, path: str, write: Mapping[str, Any]) -> None:
        from bgpflat.adapters.files import backups

        backups.append_backup_write(path, write)


def backup_writer(directory: str, context: str) -> FileBackups:
    return FileBackups(directory, context)


def _cmd_apply(args: argparse.Namespace) -> int:
    from bgpflat import workflows

    if bool(args.plan_file) == bool(args.files):
        raise PlanError("give either a saved plan (bgpflat apply PLAN.json) or -f FILE, not both or neither")
    from bgpflat.cli.arguments.gate import check_gate_flags

    check_gate_flags(args)
    saved: Plan | None = None
    if args.plan_file:
        saved = load_saved_plan(args.plan_file)
    else:
        _require_terminal(args)
        desired = load_desired_files(args.files)
    api = _connect(args)
    try:
        _announce(api, "Applying to")
        workflows.check_writable(api.identity(), allow_crd_v1=args.allow_crd_v1)
        if saved is None:
            plan = workflows.plan_cluster(api, desired, prune=args.prune)
            # With -o json stdout carries only the report; the plan a person confirms goes to stderr.
            _print_plan(plan, "table", stderr=args.output == "json")
            if not plan.has_changes:
                return EXIT_OK
            plan.ensure_applicable()
            if (
                not args.yes
                and args.dry_run == "none"
                and not _confirm(f"Apply these changes to context {api.target.context!r} ({api.target.server})?")
            ):
                info("Apply cancelled; nothing was changed.")
                return EXIT_ERROR
        else:
            # Besides what it observed, nothing of the kinds it read in full may have appeared since.
            workflows.ensure_fresh(saved, api, listed=api.read_state())
            plan = saved
        dry_run = args.dry_run == "server"
        if args.allow_crd_v1 and api.flavour.api_version.startswith("crd."):
            info(
                "warning: writing crd.projectcalico.org/v1 directly: the API server runs none of Calico's "
                "validation or defaulting; bgpflat validated the objects client-side"
            )
        from bgpflat.cli.arguments.gate import after_gate_stop, gate_json, gate_lines, make_gate
        from bgpflat.workflows.gate import GateStopped

        gate = make_gate(args, plan, api)
        if gate is not None:
            try:
                gate.before_apply()
            except GateStopped as exc:
                error_line(f"apply refused by the gate, nothing was written: {exc}")
                return EXIT_GATE_STOPPED
        with stop_at_safe_point() as interrupted:
            report = workflows.apply_plan(
                plan,
                api,
                backup=None if dry_run else backup_writer(args.backup_dir, api.target.context),
                dry_run=dry_run,
                verify=gate if gate is not None else workflows.no_verification,
                progress=info,
                allow_crd_v1=args.allow_crd_v1,
                interrupted=interrupted,
            )
        undo = None
        if gate is not None:
            undo = after_gate_stop(
                args, gate, plan, report, api, backup=backup_writer(args.backup_dir, api.target.context)
            )
    finally:
        api.close()
    _print_report(report, args.output, verb="Apply", extra=gate_json(gate, undo))
    if gate is not None:
        for line in gate_lines(gate):
            info(line)
    if report.error is not None:
        error_line(f"apply stopped: {report.error}")
        if gate is not None and gate.stopped is not None:
            return EXIT_GATE_STOPPED
        return exit_code(interrupted) or EXIT_ERROR
    return EXIT_OK


# --- rollback ------------------------------------------------------------------------------------


def _rollback_api(
    args: argparse.Namespace, header: Mapping[str, Any], objects: Sequence[Mapping[str, Any]]
) -> CalicoApi | ServiceApi:
    """The cluster surface the backup's objects need: outside services (``bgpflat external apply``)
    need no Calico API, so a backup of only those is rolled back without one."""
    from bgpflat.core.external import EXTERNAL_KINDS
    from bgpflat.core.plan.planner import split_key

    kinds = {str(o.get("kind")) for o in objects} | {split_key(str(k))[0] for k in header.get("created") or ()}
    if kinds and kinds <= set(EXTERNAL_KINDS):
        from bgpflat.adapters.kube import ServiceApi

        services = ServiceApi.connect(kubeconfig=args.kubeconfig, context=args.context)
        info(f"Rolling back on context {services.target.context!r} at {services.target.server}")
        return services
    api = _connect(args)
    _announce(api, "Rolling back on")
    return api


def _cmd_rollback(args: argparse.Namespace) -> int:
    from bgpflat import workflows
    from bgpflat.adapters.files.backups import load_backup

    backup = load_backup(args.backup)
    if not args.yes and args.dry_run == "none" and not sys.stdin.isatty():
        raise PlanError("stdin is not a terminal, so bgpflat cannot ask for confirmation; pass --yes to roll back")
    api = _rollback_api(args, backup.header, backup.objects)
    try:
        created = list(backup.header.get("created") or ())
        info(
            f"Backup {backup.file}: {len(backup.objects)} object(s) to restore, {len(created)} to delete "
            f"({', '.join(created) or 'none'})"
        )
        if not args.yes and args.dry_run == "none" and not _confirm("Roll back these objects?"):
            info("Rollback cancelled; nothing was changed.")
            return EXIT_ERROR
        report = workflows.rollback(
            api,
            header=backup.header,
            objects=backup.objects,
            dry_run=args.dry_run == "server",
            force=args.force,
            progress=info,
        )
    finally:
        api.close()
    _print_report(report, "table", verb="Rollback")
    if report.error is not None:
        error_line(f"rollback stopped: {report.error}")
        return EXIT_ERROR
    return EXIT_OK


# --- snapshot ------------------------------------------------------------------------------------


def _cmd_snapshot(args: argparse.Namespace) -> int:
    from bgpflat import workflows
    from bgpflat.adapters.files import write_snapshot

    output = snapshot_output_file(args)
    if Path(output).is_dir():
        # Checked first: the cluster would otherwise be read in full only to fail at the write.
        raise SpecError("is a directory, not a file", file=output, fix="give the snapshot's file name")
    counts: dict[str, int] = {}

    def counted(objects: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for obj in objects:
            counts[str(obj.get("kind"))] = counts.get(str(obj.get("kind")), 0) + 1
            yield obj

    api = _connect(args)
    try:
        _announce(api, "Snapshot of")
        header, objects = workflows.take_snapshot(api, taken_at=dt.datetime.now(dt.UTC))
        # Written while it is read: a failed read leaves no file behind (atomic write).
        path = write_snapshot(output, header=header, objects=counted(objects))
    finally:
        api.close()
    total = sum(counts.values())
    info(f"Wrote {total} objects to {path}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    return EXIT_OK
