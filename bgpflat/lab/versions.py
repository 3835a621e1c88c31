"""Every version the local control plane is built from, in one place.

Kubernetes and etcd are built from the Go module proxy by ``toolchain/k8s/build.sh`` (see
``bgpflat.lab.controlplane.binaries``). Calico's CRDs and the operator's ``Installation`` CRD are read out of
module zips fetched from the same proxy (see ``bgpflat.lab.controlplane.crds``); nothing is copied into the repo.

A module pin with a ``sum`` is checked against that ``h1:`` hash by bgpflat itself. That matters for
zips the checksum database does not list (the proxy serves them, ``sum.golang.org`` answers 404):
for those the pinned hash is the only integrity check, so it is never optional there.
"""

from __future__ import annotations

from dataclasses import dataclass

KUBERNETES_VERSION = "1.35.4"
"""``k8s.io/kubernetes`` v1.35.4; its staging modules are replaced with the published v0.35.4."""

ETCD_VERSION = "3.6.16"
"""``go.etcd.io/etcd/server/v3`` v3.6.16 (kube-apiserver 1.35 links the etcd 3.6 client)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModulePin:
    """One Go module version and the files bgpflat takes from its zip."""

    path: str
    version: str
    note: str
    sum: str | None = None
    """The module zip's ``h1:`` hash; required when the checksum database does not list the version."""

    @property
    def key(self) -> str:
        """A file-system-safe cache key for this pin."""
        return f"{self.path.replace('/', '_')}@{self.version}"


CALICO_V3_31_0 = ModulePin(
    path="github.com/projectcalico/calico",
    version="v0.0.0-20251021213802-b1f3c43f8437",
    sum="h1:PbLe6D0Yis8ce4F+o/Dmlrv4Her2ZN6ns8rmlZoFoEY=",
    note=(
        "projectcalico/calico v3.31.0, commit b1f3c43f84370504e218eb5be8a34c81348f866a, by pseudo-version "
        "(v3 tags do not resolve for a v0/v1 module path). Its crd.projectcalico.org/v1 CRDs are in "
        "libcalico-go/config/crd/. Not listed in sum.golang.org, hence the pinned hash (the same pin as "
        "toolchain/confd/projectcalico.sum)."
    ),
)

CALICO_V3_30_1 = ModulePin(
    path="github.com/projectcalico/calico",
    version="v0.0.0-20250529224300-393b14e729a6",
    sum="h1:iUTtfUaoPN0CZvo8XyFvnIcaXll+F98p4RdI3FUyLuI=",
    note=(
        "projectcalico/calico v3.30.1, commit 393b14e729a67f9bc9a96eba65ff0be5f2f7b94a, by pseudo-version; "
        "the only v3.30 release the module proxy serves. Not listed in sum.golang.org, hence the pinned "
        "hash (the same pin as build/confd/projectcalico.sum)."
    ),
)

CALICO_V3_32_1 = ModulePin(
    path="github.com/projectcalico/calico",
    version="0ca9d1b93644778cafdf1812f3dda02ac0c361e8",
    note=(
        "projectcalico/calico v3.32.1 by commit: the first release with native projectcalico.org/v3 CRDs, "
        "in manifests/calico-v3-crds.yaml (v3.31.0 and the matching projectcalico/api module have none). "
        "No hash pinned yet: the module proxy answers 403 for it, so it has never been downloaded here."
    ),
)

TIGERA_OPERATOR = ModulePin(
    path="github.com/tigera/operator",
    version="v1.40.0",
    sum="h1:O5FFE3XKSNy9Cm8jGNO1VHQr9qsi5qjYBJxssg02A4A=",
    note=(
        "tigera/operator v1.40.0 (2025-10-22), the operator release for Calico v3.31.0; its own CRDs, "
        "Installation included, are in pkg/crds/operator/. Not listed in sum.golang.org, hence the pinned hash."
    ),
)

V1_CRDS_SOURCE = CALICO_V3_31_0
V1_CRDS_DIR = "libcalico-go/config/crd"
"""Directory of ``crd.projectcalico.org_*.yaml`` files inside ``V1_CRDS_SOURCE``."""

V3_CRDS_SOURCE = CALICO_V3_32_1
V3_CRDS_FILE = "manifests/calico-v3-crds.yaml"
"""Multi-document YAML of the native ``projectcalico.org/v3`` CRDs inside ``V3_CRDS_SOURCE``."""

INSTALLATION_CRD_SOURCE = TIGERA_OPERATOR
INSTALLATION_CRD_FILE = "pkg/crds/operator/operator.tigera.io_installations.yaml"

DEFAULT_SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/12"
"""kubeadm's default, used by ``lab control-plane up`` when neither a range nor a scenario is given."""
