"""``bgpflat external render|plan|apply``: outside services as in-cluster Services (scenario E).

``render`` prints the manifests (no cluster needed); ``plan`` shows what ``apply`` would create,
change or delete (``--out`` saves it, in the same plan format as ``bgpflat plan``); ``apply`` writes
Services, then their EndpointSlices (Endpoints before Kubernetes 1.21), from a services file or
from a saved plan that is still fresh, through the same engine as ``bgpflat apply``: guarded
writes, re-plan on 409, a backup first that ``bgpflat rollback`` puts back.
Exit codes: 0 done, 2 error; ``plan --detailed-exitcode`` 0 no changes, 1 error, 2 changes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bgpflat.cli.arguments.common import add_cluster_options, add_output_option
from bgpflat.cli.output import EXIT_ERROR, EXIT_OK, error_line, info
from bgpflat.cli.plan_commands import DEFAULT_BACKUP_DIR
from bgpflat.cli.signals import exit_code, stop_at_safe_point
from bgpflat.errors import BgpflatError, PlanError, SpecError

if TYPE_CHECKING:
    from bgpflat.adapters.kube import ServiceApi
    from bgpflat.core.external import ExternalService
    from bgpflat.core.plan.planner import Plan


def _common(parser: argparse.ArgumentParser, *, cluster: bool, file_required: bool = True) -> None:
    parser.add_argument(
        "-f", "--filename", dest="file", required=file_required, metavar="FILE", help="external services file"
    )
    # render reads no cluster, so it has no server to ask: "auto" exists only where there is one.
    parser.add_argument(
        "--endpoints",
        choices=("auto", "slices", "endpoints") if cluster else ("slices", "endpoints"),
        default="auto" if cluster else "slices",
        help="EndpointSlices (Kubernetes 1.21+) or Endpoints (older); auto (default) asks the server"
        if cluster
        else "EndpointSlices (Kubernetes 1.21+, default) or Endpoints (older)",
    )
    if cluster:
        parser.add_argument(
            "--prune",
            action="store_true",
            help="also delete Services labelled app.kubernetes.io/managed-by=bgpflat, in any namespace, "
            "that the file no longer lists (with their EndpointSlices/Endpoints); the file must then "
            "describe every outside service of the cluster",
        )
        add_cluster_options(parser, calico_api=False)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``external render|plan|apply``."""
    external = sub.add_parser(
        "external",
        help="give outside hosts stable in-cluster names (selectorless Services, ExternalName)",
        description="Describe outside services in a file and manage selectorless Services with "
        "EndpointSlices, or ExternalName Services, for them.",
    )
    verbs = external.add_subparsers(dest="external_verb", metavar="VERB")
    verbs.required = True
    render = verbs.add_parser("render", help="print the Service/EndpointSlice manifests")
    _common(render, cluster=False)
    render.set_defaults(func=_cmd_render)
    plan = verbs.add_parser("plan", help="show what apply would create, change or delete")
    _common(plan, cluster=True)
    add_output_option(plan)
    plan.add_argument("--detailed-exitcode", action="store_true", help="0 no changes, 1 error, 2 changes")
    plan.add_argument("--out", metavar="PLAN.json", help="save the plan for `bgpflat external apply PLAN.json`")
    plan.set_defaults(func=_cmd_plan)
    apply = verbs.add_parser(
        "apply",
        help="create, update or delete the Services and their endpoints",
        description="Apply a services file (plan and apply in one go) or a plan saved by "
        "`bgpflat external plan --out`; a saved plan is refused when it was made for another "
        "cluster or anything it read has changed since.",
    )
    apply.add_argument("plan_file", nargs="?", metavar="PLAN.json", help="a plan saved by `external plan --out`")
    _common(apply, cluster=True, file_required=False)
    apply.add_argument("--yes", "--auto-approve", dest="yes", action="store_true", help="do not ask")
    apply.add_argument(
        "--dry-run",
        choices=("none", "server"),
        default="none",
        help="server: send every write as a Kubernetes server-side dry run (nothing is stored)",
    )
    apply.add_argument(
        "--backup-dir",
        metavar="DIR",
        default=str(DEFAULT_BACKUP_DIR),
        help=f"where the backup goes, for `bgpflat rollback` (default: {DEFAULT_BACKUP_DIR})",
    )
    apply.set_defaults(func=_cmd_apply)


def load_services(path: str) -> tuple[ExternalService, ...]:
    from bgpflat.adapters.files import load_documents
    from bgpflat.core.external import parse_external

    documents = load_documents(path)
    if not documents:
        raise SpecError("empty file", file=path, fix="list the outside services under 'services:'")
    if len(documents) != 1:
        raise SpecError(
            f"expected one YAML document, found {len(documents)}",
            file=path,
            fix="put every service under one 'services:' list",
        )
    return parse_external(documents[0])


def _cmd_render(args: argparse.Namespace) -> int:
    from bgpflat.adapters.files import dump_yaml_documents
    from bgpflat.core.external import desired_manifests

    services = load_services(args.file)
    sys.stdout.write(dump_yaml_documents(desired_manifests(services, legacy_endpoints=args.endpoints == "endpoints")))
    return EXIT_OK


def _connect(args: argparse.Namespace) -> ServiceApi:
    from bgpflat.adapters.kube import ServiceApi

    api = ServiceApi.connect(kubeconfig=args.kubeconfig, context=args.context)
    info(f"Target: context {api.target.context!r} at {api.target.server}")
    return api


def load_saved_plan(path: str) -> Plan:
    """A plan file from ``external plan --out``; every refusal names the file."""
    from bgpflat.adapters.files import read_json
    from bgpflat.core.external import is_external_plan, refuse_legacy_plan
    from bgpflat.core.plan.planner import Plan

    if Path(path).suffix in (".yaml", ".yml"):
        raise PlanError(
            f"{path}: a saved plan is the JSON file `bgpflat external plan --out` writes; "
            f"to plan and apply a services file, run: bgpflat external apply -f {path}"
        )
    data = read_json(path)
    refuse_legacy_plan(data, file=path)
    try:
        plan = Plan.from_dict(data)
    except PlanError as exc:
        raise PlanError(
            f"{path}: {exc} (fix: make the plan again with `bgpflat external plan --out`; "
            "a saved plan is not edited by hand)"
        ) from None
    if not is_external_plan(plan):
        raise PlanError(
            f"{path}: this is not a plan saved by `bgpflat external plan --out` "
            f"(a Calico plan is applied with: bgpflat apply {path})"
        )
    return plan


def _cmd_plan(args: argparse.Namespace) -> int:
    from bgpflat import workflows
    from bgpflat.adapters.files import write_text_atomic
    from bgpflat.views.plan import external_plan_text

    try:
        services = load_services(args.file)
        api = _connect(args)
        try:
            legacy = workflows.wants_legacy_endpoints(api, mode=args.endpoints)
            plan = workflows.plan_external(api, services, legacy_endpoints=legacy, prune=args.prune)
        finally:
            api.close()
        if args.out:
            write_text_atomic(args.out, plan.to_json())
    except BgpflatError as exc:
        if args.detailed_exitcode and not args.debug:
            error_line(str(exc))
            return 1
        raise
    sys.stdout.write(plan.to_json() if args.output == "json" else external_plan_text(plan))
    if args.out:
        info(f"Plan saved to {args.out}; apply it with: bgpflat external apply {args.out}")
    if args.detailed_exitcode:
        return 2 if plan.has_changes else 0
    return EXIT_OK


def _cmd_apply(args: argparse.Namespace) -> int:
    from bgpflat import workflows
    from bgpflat.cli.plan_commands import backup_writer
    from bgpflat.views.plan import external_plan_text

    if bool(args.plan_file) == bool(args.file):
        raise PlanError("give either a saved plan (bgpflat external apply PLAN.json) or a services file (-f FILE)")
    saved = None
    if args.plan_file:
        if args.prune or args.endpoints != "auto":
            raise PlanError(
                "--prune and --endpoints are decided when the plan is made; pass them to `bgpflat external plan`"
            )
        saved = load_saved_plan(args.plan_file)
        services: tuple[ExternalService, ...] = ()
    else:
        services = load_services(args.file)
    dry_run = args.dry_run == "server"
    # Refused before the cluster is contacted: without a terminal there is no one to ask.
    if not args.yes and not dry_run and not sys.stdin.isatty():
        raise PlanError("stdin is not a terminal, so bgpflat cannot ask for confirmation; pass --yes to apply")
    api = _connect(args)
    try:
        if saved is not None:
            # Refused before it is shown: a plan for another cluster, or one the cluster moved away from.
            workflows.check_plan_target(saved, api.identity())
            workflows.ensure_fresh(saved, api)
            plan = saved
        else:
            legacy = workflows.wants_legacy_endpoints(api, mode=args.endpoints)
            plan = workflows.plan_external(api, services, legacy_endpoints=legacy, prune=args.prune)
        sys.stdout.write(external_plan_text(plan))
        if not plan.has_changes:
            return EXIT_OK
        if not args.yes and not dry_run:
            info("Apply these changes?")
            if input("  Enter 'yes' to continue: ").strip().lower() != "yes":
                info("Apply cancelled.")
                return EXIT_OK
        with stop_at_safe_point() as interrupted:
            report = workflows.apply_plan(
                plan,
                api,
                backup=None if dry_run else backup_writer(args.backup_dir, api.target.context),
                dry_run=dry_run,
                progress=info,
                interrupted=interrupted,
            )
    finally:
        api.close()
    verb = "Would apply" if dry_run else "Applied"
    done = (workflows.APPLIED, workflows.ALREADY, workflows.DRY_RUN)
    for result in report.results:
        if result.outcome in done:
            sys.stdout.write(f"{verb}: {result.action} {result.key}\n")
    if report.error is not None:
        if report.backup:
            info(f"Backup: {report.backup} (undo what was written with: bgpflat rollback {report.backup})")
        error_line(f"apply stopped: {report.error}")
        return exit_code(interrupted) or EXIT_ERROR
    return EXIT_OK
