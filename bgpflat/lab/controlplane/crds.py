"""Calico's CRDs and the operator's Installation CRD, taken from Go module zips on the proxy.

``go mod download -json <module>@<version>`` fetches and unpacks a module into GOMODCACHE; the CRD
files are read from there and copied into ``<cache>/crds/<module>@<version>/`` so that later runs
(and machines that only received the cache) need neither Go nor the network.

Three flavours, matching what a Calico cluster serves (calico-facts §2.5):

* ``v1``: the ``crd.projectcalico.org/v1`` CRDs (KDD storage, no Calico API server);
* ``apiserver``: the same CRDs, with ``projectcalico.org/v3`` served by Calico's own API server;
* ``v3``: the native ``projectcalico.org/v3`` CRDs (Calico v3.32+); ``crd.projectcalico.org`` is
  then not installed, as Calico's docs require.

When the pinned release with native v3 CRDs cannot be fetched (the module proxy may refuse it), the
``v3`` flavour falls back to CRDs *derived* from the pinned release's v1 CRDs: the same schemas,
served as group ``projectcalico.org`` version ``v3``. That is sound because the v1 resources reuse the
v3 spec types byte for byte (calico-facts §2.1); what the derived set lacks is the CEL rules and
admission policies that v3.32 adds. Derived CRDs carry the annotation ``bgpflat.dev/derived-from`` and
``v3_crds_origin()`` says which set is in use, so nothing passes one off as the other.

All get the operator's ``installations.operator.tigera.io`` CRD.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml

from bgpflat.errors import LabError
from bgpflat.lab import versions
from bgpflat.lab.go_build import cache_root
from bgpflat.lab.versions import ModulePin

Flavour = Literal["v1", "v3", "apiserver"]
FLAVOURS: tuple[Flavour, ...] = ("v1", "v3", "apiserver")

# What clients write to. ``apiserver``: Calico's aggregated API server serves projectcalico.org/v3
# and stores the objects in the crd.projectcalico.org/v1 CRDs (see ``aggregated``).
CALICO_GROUPS: dict[Flavour, str] = {
    "v1": "crd.projectcalico.org",
    "v3": "projectcalico.org",
    "apiserver": "projectcalico.org",
}
CALICO_VERSIONS: dict[Flavour, str] = {"v1": "v1", "v3": "v3", "apiserver": "v3"}
STORAGE_FLAVOUR: dict[Flavour, Flavour] = {"v1": "v1", "v3": "v3", "apiserver": "v1"}
"""The flavour whose CRDs hold the objects (and into which scenarios are seeded)."""


def module_dir(pin: ModulePin) -> Path:
    """Download (or reuse) a pinned module and return its unpacked directory."""
    go = shutil.which("go")
    if go is None:
        raise LabError(f"Go is needed once to fetch {pin.path}@{pin.version} from the module proxy")
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    # Module proxies only: never fall back to cloning from a VCS host ("direct").
    proxies = [p for p in env.get("GOPROXY", "").replace("|", ",").split(",") if p not in ("", "direct", "off")]
    env["GOPROXY"] = ",".join(proxies) or "https://proxy.golang.org"
    if pin.sum is not None:
        # The pinned hash replaces the checksum database for this module (it may not be listed there).
        env["GONOSUMDB"] = ",".join(p for p in (env.get("GONOSUMDB"), pin.path) if p)
    try:
        proc = subprocess.run(
            [go, "mod", "download", "-json", f"{pin.path}@{pin.version}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            cwd=cache_root_for_go(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise LabError(f"go mod download {pin.path}@{pin.version} failed: {exc}") from exc
    try:
        info: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {}
    error = " ".join(str(info.get("Error") or (proc.stderr if proc.returncode else "")).split())
    if error or not info.get("Dir"):
        raise LabError(
            f"cannot fetch {pin.path}@{pin.version} from the Go module proxy "
            f"(`go mod download -json {pin.path}@{pin.version}`): {error or 'no Dir in the answer'}"
        )
    if pin.sum is not None and info.get("Sum") != pin.sum:
        raise LabError(
            f"{pin.path}@{pin.version} has hash {info.get('Sum')}, but {pin.sum} is pinned; refusing to use it"
        )
    return Path(info["Dir"])


def cache_root_for_go() -> str:
    """A directory outside any Go module, so that `go mod download` ignores the caller's go.mod."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return str(root)


def _cached_copy(pin: ModulePin, relative: str) -> Path:
    """The file or directory ``relative`` of ``pin``, from bgpflat's cache or freshly extracted."""
    target = cache_root() / "crds" / pin.key / relative
    if target.exists():
        return target
    source = module_dir(pin) / relative
    if not source.exists():
        raise LabError(f"{pin.path}@{pin.version} has no {relative}")
    partial = target.with_name(target.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    if source.is_dir():
        shutil.copytree(source, partial)
    else:
        shutil.copyfile(source, partial)
    # The module cache is read-only; the copy must stay removable.
    for path in [partial, *partial.rglob("*")] if partial.is_dir() else [partial]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    partial.rename(target)
    return target


# libyaml parses the large CRD schemas several times faster than the pure-Python loader.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _documents(path: Path) -> Iterator[dict[str, Any]]:
    with open(path) as handle:
        for doc in yaml.load_all(handle, Loader=_Loader):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                yield doc


def crd_manifests(flavour: Flavour) -> list[dict[str, Any]]:
    """The CRDs to install for ``flavour``, Calico's first, then the Installation CRD."""
    crds: list[dict[str, Any]] = []
    if STORAGE_FLAVOUR.get(flavour) == "v1":
        directory = _cached_copy(versions.V1_CRDS_SOURCE, versions.V1_CRDS_DIR)
        for path in sorted(directory.glob("crd.projectcalico.org_*.yaml")):
            crds.extend(_documents(path))
    elif flavour == "v3":
        try:
            path = _cached_copy(versions.V3_CRDS_SOURCE, versions.V3_CRDS_FILE)
        except LabError:
            crds.extend(derive_v3_crd(crd) for crd in crd_manifests_v1_only())
        else:
            crds.extend(d for d in _documents(path) if d["spec"]["group"] == CALICO_GROUPS["v3"])
    else:
        raise LabError(f"unknown Calico API flavour {flavour!r}; use one of {', '.join(FLAVOURS)}")
    if not crds:
        raise LabError(f"no Calico CRDs found for flavour {flavour}")
    crds.extend(_documents(_cached_copy(versions.INSTALLATION_CRD_SOURCE, versions.INSTALLATION_CRD_FILE)))
    return crds


def crd_manifests_v1_only() -> list[dict[str, Any]]:
    """Calico's ``crd.projectcalico.org/v1`` CRDs of the pinned release, without the Installation CRD."""
    directory = _cached_copy(versions.V1_CRDS_SOURCE, versions.V1_CRDS_DIR)
    return [doc for path in sorted(directory.glob("crd.projectcalico.org_*.yaml")) for doc in _documents(path)]


DERIVED_ANNOTATION = "bgpflat.dev/derived-from"


def derive_v3_crd(crd: dict[str, Any]) -> dict[str, Any]:
    """A ``projectcalico.org/v3`` CRD with the schema of a ``crd.projectcalico.org/v1`` one."""
    derived: dict[str, Any] = json.loads(json.dumps(crd))
    plural = derived["spec"]["names"]["plural"]
    derived["metadata"] = {
        "name": f"{plural}.{CALICO_GROUPS['v3']}",
        "annotations": {
            DERIVED_ANNOTATION: f"{crd['metadata']['name']} of {versions.V1_CRDS_SOURCE.path}@"
            f"{versions.V1_CRDS_SOURCE.version}"
        },
    }
    derived["spec"]["group"] = CALICO_GROUPS["v3"]
    for version in derived["spec"]["versions"]:
        version["name"] = CALICO_VERSIONS["v3"]
        if plural == "blockaffinities":
            # The one documented v1/v3 difference in these schemas (calico-facts §2.3): v1 keeps
            # BlockAffinity spec.deleted as a string for compatibility, v3 serves it as a boolean.
            spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            if "deleted" in spec:
                spec["deleted"] = {"type": "boolean"}
    derived.pop("status", None)
    return derived


def v3_crds_origin() -> str:
    """``native`` when the pinned release's own v3 CRDs can be had, else ``derived`` (see module doc)."""
    try:
        _cached_copy(versions.V3_CRDS_SOURCE, versions.V3_CRDS_FILE)
    except LabError:
        return "derived"
    return "native"


def crds_available(flavour: Flavour) -> str | None:
    """None when the CRDs of ``flavour`` can be had, else the reason (for skip messages)."""
    try:
        crd_manifests(flavour)
    except LabError as exc:
        return str(exc)
    return None
