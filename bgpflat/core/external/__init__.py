"""Outside services inside the cluster (scenario E): selectorless Services with EndpointSlices.

Once the networks are flat, pods reach office hosts directly; an external-services file gives those
hosts stable in-cluster names. Each entry becomes either

* a **selectorless Service** plus one **EndpointSlice** per IP family (labelled
  ``kubernetes.io/service-name``; the EndpointSlice controller leaves slices managed by someone
  else alone), or, for clusters older than Kubernetes 1.21, an **Endpoints** object instead; or
* an **ExternalName Service** (a CNAME in cluster DNS: no cluster IP, no proxying, no port mapping).

File format (``labs/external/services.yaml``)::

    version: 1
    services:
      - name: external-service          # DNS-1035 label
        namespace: default
        ports:
          - {name: mysql, port: 30056, targetPort: 3306, protocol: TCP, appProtocol: http}
        addresses: [192.168.26.81, 192.168.26.82]
        sessionAffinity: ClientIP       # optional: pin a client to one address
      - name: docs
        namespace: default
        externalName: docs.example.com

* ``services``: the file's model and validation (``parse_external``);
* ``manifests``: the objects each entry becomes and the fields bgpflat owns in them;
* ``plan``: ``make_external_plan``, which returns the same ``Plan`` as Calico's planner, so that
  the same apply engine writes it (guarded writes, re-plan on 409, backup, rollback).
"""

from __future__ import annotations

from bgpflat.core.calico import MANAGED_BY_LABEL
from bgpflat.core.external.manifests import (
    EXTERNAL_KINDS,
    MANAGED_BY,
    OWNED,
    desired_manifests,
    endpoint_slice_manifests,
    endpoints_manifest,
    manifest_key,
    same_owned,
    service_manifest,
    slice_name,
)
from bgpflat.core.external.plan import (
    LEGACY_PLAN_KIND,
    is_external_plan,
    listing_order,
    make_external_plan,
    refuse_legacy_plan,
    restore_patch,
)
from bgpflat.core.external.services import ExternalService, ServicePort, SourceDocument, parse_external
from bgpflat.core.routes.cluster import SERVICE_NAME_LABEL

__all__ = [
    "EXTERNAL_KINDS",
    "LEGACY_PLAN_KIND",
    "MANAGED_BY",
    "MANAGED_BY_LABEL",
    "OWNED",
    "SERVICE_NAME_LABEL",
    "ExternalService",
    "ServicePort",
    "SourceDocument",
    "desired_manifests",
    "endpoint_slice_manifests",
    "endpoints_manifest",
    "is_external_plan",
    "listing_order",
    "make_external_plan",
    "manifest_key",
    "parse_external",
    "refuse_legacy_plan",
    "restore_patch",
    "same_owned",
    "service_manifest",
    "slice_name",
]
