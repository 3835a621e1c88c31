"""``bgpflat verify --watch INTERVAL [--metrics-listen HOST:PORT]``: verify for as long as it runs.

The cluster is listed once and then followed through Kubernetes watches
(``bgpflat.adapters.kube.watch``); the learned routes are read every INTERVAL seconds. A line on
stderr whenever the outcome changes (``-o json``: the result as one JSON line on stdout), the last
result as Prometheus metrics. Ctrl-C or SIGTERM ends it after the run in flight, exit 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

from bgpflat.cli.arguments.learned import learned_source
from bgpflat.cli.arguments.model import model_options, outside_peer
from bgpflat.cli.output import EXIT_OK, info
from bgpflat.errors import SpecError

DEFAULT_INTERVAL = 30.0


def watch_command(args: argparse.Namespace) -> int:
    from bgpflat.adapters.kube import CalicoApi, KubeClient
    from bgpflat.adapters.kube.watch import ClusterWatch
    from bgpflat.daemon.metrics import check_available, serve
    from bgpflat.daemon.verify_metrics import VerifyMetrics
    from bgpflat.workflows.routes import cluster_state, expected_for
    from bgpflat.workflows.verify import watch_verify

    interval = DEFAULT_INTERVAL if args.watch is None else args.watch
    if interval <= 0:
        raise SpecError("the interval must be > 0 seconds", path="--watch", fix="e.g. --watch 30")
    for flag, given in (("--snapshot", args.snapshot), ("--wait", args.wait), ("--junit", args.junit)):
        if given:
            raise SpecError(
                f"{flag} does not go with --watch/--metrics-listen",
                path=flag,
                fix="--watch follows a live cluster and never ends; drop one of them",
            )
    check_available(args.metrics_listen)
    source = learned_source(args)
    peer = outside_peer(args)
    options = model_options(args)
    desired = None
    if args.files:
        from bgpflat.cli.plan_commands import load_desired_files

        desired = load_desired_files(args.files)

    def expected_of(objects: list[dict[str, Any]]) -> Any:
        laid: Sequence[Mapping[str, Any]] = objects
        if desired is not None:
            from bgpflat.workflows.planning import lay_desired_over

            laid = lay_desired_over(objects, desired)
        return expected_for(cluster_state(laid), peer=peer, options=options)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    api = CalicoApi(KubeClient.connect(kubeconfig=args.kubeconfig, context=args.context))
    info(f"watching context {api.target.context!r} ({api.target.server}); verifying every {interval:g} s")
    watch = ClusterWatch(api, on_error=lambda message: info(f"bgpflat: {message}"))
    metrics = VerifyMetrics(peer.address)
    server = None
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        watch.start()
        server = serve(args.metrics_listen, metrics.families)
        if server is not None:
            info(f"metrics on http://{server.address}/metrics")
        last: list[tuple[Any, ...]] = []

        def on_result(result: Any) -> None:
            metrics.record(result, now=time.time())
            shown = (result.status, result.message)
            if last and last[0] == shown:
                return
            last[:] = [shown]
            info(f"verify: {result.status}: {result.message}")
            if args.output == "json":
                sys.stdout.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
                sys.stdout.flush()

        watch_verify(
            cluster=watch,
            peer=peer,
            expected_of=expected_of,
            source=source,
            strict=args.strict,
            wait=lambda: stop.wait(interval),
            on_result=on_result,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.close()
        watch.close()
        api.close()
    info("verify --watch: stopped")
    return EXIT_OK
