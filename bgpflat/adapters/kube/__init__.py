"""The Kubernetes API, as bgpflat needs it: the only code in bgpflat that talks to a cluster.

* ``config``: which cluster and credentials (kubeconfig, context, in-cluster), as ``Target``;
* ``client``: ``KubeClient``, one connection: requests, discovery, paged reads, and any object
  addressed by ``apiVersion``/``kind`` (what the lab's control plane needs);
* ``calico``: the Calico API flavour and ``CalicoApi``, the surface the workflows use;
* ``services``: ``ServiceApi``, the same surface for Services, EndpointSlices and Endpoints;
* ``reads``: many lists read at once, in order, with the garbage collector paused while they decode;
* ``storage``: Calico's ``crd.projectcalico.org/v1`` storage form and back;
* ``errors``: every HTTP status and transport failure as a ``KubeError``.

Everything that crosses this package's boundary is plain data (dicts shaped like manifests) or a
``KubeError``; ``kubernetes``/``urllib3`` exceptions never escape it.
"""

from __future__ import annotations

from bgpflat.adapters.kube.calico import OPERATOR_API, ApiFlavour, CalicoApi, detect_flavour
from bgpflat.adapters.kube.client import FIELD_MANAGER, KubeClient, Resource
from bgpflat.adapters.kube.config import Target
from bgpflat.adapters.kube.errors import error_from_response
from bgpflat.adapters.kube.services import SERVICE_KINDS, ServiceApi
from bgpflat.adapters.kube.storage import V1, V3, v1_metadata_patch, v1_to_v3, v3_to_v1

__all__ = [
    "FIELD_MANAGER",
    "OPERATOR_API",
    "SERVICE_KINDS",
    "V1",
    "V3",
    "ApiFlavour",
    "CalicoApi",
    "KubeClient",
    "Resource",
    "ServiceApi",
    "Target",
    "detect_flavour",
    "error_from_response",
    "v1_metadata_patch",
    "v1_to_v3",
    "v3_to_v1",
]
