"""Keep a running lab's fabric in line with the objects in its API server.

``api_source`` lists, over the control plane's loopback port, every object the fabric is built
from (Nodes, Services, EndpointSlices, Secrets, Calico's pools, peers, BGP configurations and
filters, IPAM blocks and affinities) and labels each item with its ``apiVersion``/``kind`` the way
a file of objects has them, so ``FlatLab`` cannot tell an API server from ``cluster.yaml``.

``python -m bgpflat.lab.fabric.follower STATE_DIR`` is the background process ``bgpflat lab up`` starts:
it polls that source and runs ``FlatLab.reconcile`` whenever the objects change (DNAT rules,
cluster DNS), so a ``bgpflat apply`` in another shell changes what the office reaches within a
few seconds. BIRD is not its business: each node's confd watches the API server and reloads BIRD
itself (``bgpflat.lab.fabric.node_confd``). It runs in the host's network namespace because the
API server listens on the host's loopback; it reaches the daemons only through ``ip netns exec``
and signals. SIGTERM ends it after the current pass.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from bgpflat.adapters.kube import KubeClient
from bgpflat.errors import KubeError, KubeNotFound, LabError
from bgpflat.lab.controlplane.crds import Flavour
from bgpflat.lab.controlplane.server import ControlPlane
from bgpflat.lab.fabric.flatlab import FlatLab
from bgpflat.lab.fabric.topology import Objects, ObjectSource

CALICO_V1 = "crd.projectcalico.org/v1"
CALICO_V3 = "projectcalico.org/v3"
CORE_KINDS = (("v1", "Node"), ("v1", "Service"), ("v1", "Secret"), ("discovery.k8s.io/v1", "EndpointSlice"))
CALICO_KINDS = ("IPPool", "BGPConfiguration", "BGPPeer", "BGPFilter", "ClusterInformation")
# Calico keeps IPAM in crd.projectcalico.org/v1 whichever API its configuration is served in.
IPAM_KINDS = ("BlockAffinity", "IPAMBlock")
RETRY_SECONDS = 15.0
INTERVAL = 1.0
"""Seconds between polls: a few list calls on loopback per second cost nothing next to BIRD's own timers."""


def _list(kube: KubeClient, api_version: str, kind: str) -> list[dict[str, Any]] | None:
    """Every ``kind`` object in every namespace; None when the server does not serve the kind."""
    try:
        kube.resource(api_version, kind)
    except KubeNotFound:
        return None
    except KubeError as exc:
        raise LabError(str(exc)) from exc
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            return kube.list_objects(api_version, kind)  # the cluster-wide list, namespaced kinds included
        except KubeError as exc:
            # A CRD's storage answers 429 "(re)initializing" for a moment after it is established.
            if exc.status not in (429, 500, 503) or time.monotonic() > deadline:
                raise LabError(str(exc)) from exc
        time.sleep(0.2)


def api_source(kube: KubeClient, flavour: Flavour) -> ObjectSource:
    """Objects from the API server, shaped like the documents of a scenario's ``cluster.yaml``."""
    calico = CALICO_V1 if flavour == "v1" else CALICO_V3

    def load() -> Objects:
        objects: list[Mapping[str, Any]] = []
        for api_version, kind in CORE_KINDS:
            objects.extend(_list(kube, api_version, kind) or ())
        for kind in CALICO_KINDS:
            objects.extend(_list(kube, calico, kind) or ())
        for kind in IPAM_KINDS:
            found = _list(kube, calico, kind)
            objects.extend(found if found is not None else _list(kube, CALICO_V1, kind) or ())
        return objects

    return load


def _fingerprint(objects: Objects) -> str:
    # resourceVersion and managedFields change on writes that change nothing the fabric reads
    # (a no-op apply, status updates); leave them out so such writes cause no reconfiguration.
    def strip(obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")}
        return {**obj, "metadata": meta}

    return json.dumps([strip(o) for o in objects], sort_keys=True, default=str)


def follow(lab: FlatLab, source: ObjectSource, *, interval: float = INTERVAL) -> None:
    """Reconcile ``lab`` with ``source`` until SIGTERM/SIGINT; a failed pass is logged and retried."""
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    last: str | None = None
    print(f"following the API server for lab {lab.netns.prefix} every {interval:g} s", flush=True)
    while not stopping:
        started = time.monotonic()
        try:
            objects = list(source())
            fingerprint = _fingerprint(objects)
            if fingerprint != last:
                report = lab.reconcile(objects)
                last = fingerprint
                if report.services_changed:
                    print(
                        f"{time.strftime('%H:%M:%S')} reconciled in {report.seconds:.2f} s: services and DNS updated",
                        flush=True,
                    )
        except (LabError, OSError) as exc:
            # The API server restarting or a daemon busy: keep the last state and try again.
            print(f"{time.strftime('%H:%M:%S')} reconcile failed, retrying: {exc}", flush=True)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bgpflat.lab.fabric.follower FABRIC_DIR CONTROL_PLANE_DIR``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m bgpflat.lab.fabric.follower FABRIC_DIR CONTROL_PLANE_DIR", file=sys.stderr)
        return 2
    lab = FlatLab.attach(Path(args[0]))
    plane = ControlPlane.attach(Path(args[1]))
    follow(lab, api_source(plane.client(), plane.flavour))
    return 0


if __name__ == "__main__":
    sys.exit(main())
