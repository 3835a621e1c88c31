"""The Kubernetes API, as bgpflat needs it: targeting, Calico API discovery, paged reads, guarded writes.

Everything that crosses this module's boundary is plain data (dicts shaped like manifests) or a
``KubeError``; ``kubernetes``/``urllib3`` exceptions never escape. Requests go through the
kubernetes client's ``ApiClient`` (so kubeconfig auth, exec plugins and token refresh behave as in
kubectl) but responses are decoded with ``json.loads`` rather than the generated models: for 5,000
Nodes the models cost several times the network time.

Calico objects are always handed out as ``projectcalico.org/v3`` manifests, whatever the cluster
serves; when only ``crd.projectcalico.org/v1`` is served, reads and writes convert metadata the
way Calico's own KDD backend does (calico-facts §2.1), so the core never sees the storage form.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from bgpflat.core.plan.identity import ClusterIdentity
from bgpflat.errors import (
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeUnavailable,
)

FIELD_MANAGER = "bgpflat"
V3_GROUP = "projectcalico.org"
V1_GROUP = "crd.projectcalico.org"
V3 = f"{V3_GROUP}/v3"
V1 = f"{V1_GROUP}/v1"
CALICO_METADATA_ANNOTATION = "projectcalico.org/metadata"
OPERATOR_API = "operator.tigera.io/v1"

# (connect, read) seconds: a wedged API server must end in an error a person sees, not a hang.
REQUEST_TIMEOUT = (10.0, 120.0)
PAGE_SIZE = 500

# Calico kind -> plural, for the kinds bgpflat reads or writes through the Calico groups.
CALICO_PLURALS = {
    "IPPool": "ippools",
    "BGPPeer": "bgppeers",
    "BGPConfiguration": "bgpconfigurations",
    "BGPFilter": "bgpfilters",
    "ClusterInformation": "clusterinformations",
}
# IPAM kinds live in crd.projectcalico.org/v1 whenever that group exists (the Calico API server
# does not serve IPAMBlock); with native v3 CRDs they are projectcalico.org/v3.
IPAM_PLURALS = {"IPAMBlock": "ipamblocks", "BlockAffinity": "blockaffinities", "IPAMConfig": "ipamconfigs"}
V3_IPAM_PLURALS = {
    "IPAMBlock": "ipamblocks",
    "BlockAffinity": "blockaffinities",
    "IPAMConfiguration": "ipamconfigurations",
}
# Core objects the expected-route computation reads: (apiVersion, kind, path).
CORE_LISTS = (
    ("v1", "Node", "/api/v1/nodes"),
    ("v1", "Service", "/api/v1/services"),
    ("discovery.k8s.io/v1", "EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices"),
)


class ApiFlavour(StrEnum):
    """How the cluster serves Calico resources (calico-facts §2.5)."""

    V3_APISERVER = "v3-apiserver"  # aggregated Calico API server over v1 storage
    V3_CRD = "v3-crd"  # native projectcalico.org/v3 CRDs
    V1_CRD = "v1-crd"  # only crd.projectcalico.org/v1: no Calico validation or defaulting

    @property
    def api_version(self) -> str:
        return V1 if self is ApiFlavour.V1_CRD else V3


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Which cluster a command talks to, as the user would recognise it."""

    context: str
    server: str
    user: str = ""
    in_cluster: bool = False


# ---------------------------------------------------------------------------------------------
# Errors


def _status_message(body: str) -> tuple[str, str, list[str]]:
    """(message, reason, causes) of a Kubernetes ``Status`` body; tolerant of non-JSON bodies."""
    try:
        status = json.loads(body)
    except (TypeError, ValueError):
        return (body.strip().splitlines()[0][:300] if body and body.strip() else ""), "", []
    if not isinstance(status, Mapping):
        return "", "", []
    details = status.get("details") or {}
    causes = []
    for cause in details.get("causes") or []:
        field = cause.get("field") or ""
        message = cause.get("message") or cause.get("reason") or ""
        causes.append(f"{field}: {message}" if field and field not in message else message)
    return str(status.get("message") or ""), str(status.get("reason") or ""), causes


def error_from_response(status: int, body: str, *, action: str) -> KubeError:
    """One readable line for a failed request, quoting the server's own causes."""
    message, reason, causes = _status_message(body)
    if status == 404:
        return KubeNotFound(
            f"{action}: not found ({message or 'the resource type is not served'})",
            status=status,
            reason=reason or "NotFound",
        )
    if status == 409:
        return KubeConflict(
            f"{action}: conflict: {message or 'the object changed since it was read'}",
            status=status,
            reason=reason or "Conflict",
        )
    if status in (401, 403):
        fix = (
            "the credentials were refused; log in again or pick another --context"
            if status == 401
            else "ask a cluster admin for RBAC on this resource, or use a --context that has it"
        )
        return KubeForbidden(
            f"{action}: {message or 'forbidden'} (fix: {fix})",
            status=status,
            reason=reason or ("Unauthorized" if status == 401 else "Forbidden"),
        )
    if status in (400, 422):
        detail = "; ".join(causes) if causes else message
        return KubeInvalid(f"{action}: the API server refused it: {detail}", status=status, reason=reason or "Invalid")
    if status == 0 or status >= 500 or status == 429:
        return KubeUnavailable(
            f"{action}: the API server failed ({status or 'no response'}"
            f"{': ' + message if message else ''}); nothing more was sent, try again",
            status=status,
            reason=reason or "ServerError",
        )
    return KubeError(f"{action}: HTTP {status}: {message or reason}", status=status, reason=reason)


def _connection_error(exc: Exception, *, action: str, server: str) -> KubeUnavailable:
    # urllib3 nests the cause (MaxRetryError -> NewConnectionError -> OSError); show the innermost words.
    reason: object = getattr(exc, "reason", None) or exc
    text = str(reason)
    for marker in ("Failed to establish a new connection:", "Caused by"):
        if marker in text:
            text = text.split(marker, 1)[1]
    if isinstance(exc.args[0] if exc.args else None, str) and len(exc.args) > 1:
        text = f"{exc.args[0]} {exc.args[1]}"  # ProtocolError('Connection aborted.', RemoteDisconnected(...))
    text = text.strip(" ()'\"").replace("'", "")
    return KubeUnavailable(
        f"{action}: cannot reach the API server {server}: {text[:200]}", status=None, reason="Unavailable"
    )


# ---------------------------------------------------------------------------------------------
# Calico v1 storage metadata (calico-facts §2.1)


def _calico_owned(key: str) -> bool:
    return "projectcalico.org/" in key or "operator.tigera.io/" in key


def v1_to_v3(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A ``crd.projectcalico.org/v1`` object as Calico's v3 API would show it."""
    out = dict(obj)
    out["apiVersion"] = V3
    metadata = dict(out.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    labels = dict(metadata.get("labels") or {})
    stored = annotations.pop(CALICO_METADATA_ANNOTATION, None)
    if stored:
        try:
            extra = json.loads(stored)
        except ValueError:
            extra = {}
        if isinstance(extra, Mapping):
            labels.update(extra.get("labels") or {})
            annotations.update(extra.get("annotations") or {})
    for key, value in (("labels", labels), ("annotations", annotations)):
        if value:
            metadata[key] = value
        else:
            metadata.pop(key, None)
    out["metadata"] = metadata
    return out


def v3_to_v1(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A v3 manifest in ``crd.projectcalico.org/v1`` storage form: foreign metadata in one annotation."""
    out = dict(obj)
    out["apiVersion"] = V1
    metadata = dict(out.get("metadata") or {})
    labels = dict(metadata.get("labels") or {})
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(CALICO_METADATA_ANNOTATION, None)
    foreign_labels = {k: v for k, v in labels.items() if not _calico_owned(k)}
    foreign_annotations = {k: v for k, v in annotations.items() if not _calico_owned(k)}
    kept_labels = {k: v for k, v in labels.items() if _calico_owned(k)}
    kept_annotations = {k: v for k, v in annotations.items() if _calico_owned(k)}
    if foreign_labels or foreign_annotations:
        stored: dict[str, Any] = {}
        if foreign_labels:
            stored["labels"] = foreign_labels
        if foreign_annotations:
            stored["annotations"] = foreign_annotations
        kept_annotations[CALICO_METADATA_ANNOTATION] = json.dumps(stored, sort_keys=True, separators=(",", ":"))
    # Explicit null for keys that must disappear under merge-patch; a plain dict for create.
    metadata["labels"] = kept_labels
    metadata["annotations"] = kept_annotations
    out["metadata"] = metadata
    return out


def v1_metadata_patch(*, patch: Mapping[str, Any], current_v1: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a v3 merge patch's metadata into the v1 storage form, given the stored v1 object.

    Labels/annotations are not merged key by key here: the v3 view after the patch is computed and
    converted, then every stored key not in the result is nulled, so the patch says exactly what
    the stored object must end with.
    """
    out = {k: v for k, v in patch.items() if k != "metadata"}
    meta_patch = dict(patch.get("metadata") or {})
    current_v3 = v1_to_v3(current_v1)
    current_meta = current_v3.get("metadata") or {}
    stored_meta = current_v1.get("metadata") or {}
    new_meta: dict[str, Any] = {k: v for k, v in meta_patch.items() if k not in ("labels", "annotations")}
    if "labels" in meta_patch or "annotations" in meta_patch:
        labels = _merge_map(current_meta.get("labels") or {}, meta_patch.get("labels"))
        annotations = _merge_map(current_meta.get("annotations") or {}, meta_patch.get("annotations"))
        converted = v3_to_v1({"metadata": {"labels": labels, "annotations": annotations}})["metadata"]
        for key in ("labels", "annotations"):
            wanted = converted[key]
            stored = stored_meta.get(key) or {}
            entry = {k: v for k, v in wanted.items() if stored.get(k) != v}
            entry.update({k: None for k in stored if k not in wanted})
            if entry:
                new_meta[key] = entry
    if new_meta:
        out["metadata"] = new_meta
    return out


def _merge_map(base: Mapping[str, Any], patch: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(base)
    for key, value in (patch or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


# ---------------------------------------------------------------------------------------------
# The client


def _load_configuration(*, kubeconfig: str | None, context: str | None) -> tuple[Any, Target]:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    # The kubernetes config helpers are untyped; give them one typed name each.
    list_contexts: Any = config.list_kube_config_contexts
    load_kube_config: Any = config.load_kube_config
    load_incluster_config: Any = config.load_incluster_config

    configuration = client.Configuration()
    # Read at call time: the kubernetes package captures $KUBECONFIG when it is first imported.
    path = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    has_file = kubeconfig is not None or any(os.path.exists(os.path.expanduser(p)) for p in path.split(os.pathsep) if p)
    if kubeconfig is not None and not os.path.exists(kubeconfig):
        # The kubernetes package says "Invalid kube-config file. No configuration found." here.
        raise KubeError(f"kubeconfig {kubeconfig}: no such file (fix: check the path)")
    if has_file:
        import yaml

        try:
            contexts, active = list_contexts(config_file=path)
            chosen = context or (active or {}).get("name")
            entry = next((c for c in contexts if c.get("name") == chosen), None)
            if entry is None:
                names = ", ".join(sorted(c.get("name", "") for c in contexts)) or "none"
                raise KubeError(f"kubeconfig {path}: no context {chosen!r} (fix: pass --context with one of: {names})")
            load_kube_config(config_file=path, context=chosen, client_configuration=configuration, persist_config=False)
        except ConfigException as exc:
            raise KubeError(f"kubeconfig {path}: {exc} (fix: pass --kubeconfig FILE or --context NAME)") from None
        except OSError as exc:
            raise KubeError(f"kubeconfig {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            # With a merged $KUBECONFIG list, the mark names the one file that is broken.
            name = getattr(mark, "name", None) or path
            where = f"{name}:{mark.line + 1}" if mark is not None else path
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise KubeError(f"kubeconfig {where}: invalid YAML: {problem}") from None
        except (TypeError, AttributeError, KeyError, ValueError):
            # The kubernetes package indexes into whatever YAML it loaded and fails with these
            # when the file is a list, a scalar or has sections of the wrong shape.
            raise KubeError(
                f"kubeconfig {path}: not a kubeconfig (fix: give a file with clusters, contexts and users, "
                "as `kubectl config view --raw` prints)"
            ) from None
        user = str((entry.get("context") or {}).get("user") or "")
        return configuration, Target(context=str(chosen), server=str(configuration.host), user=user)
    if context:
        raise KubeError(f"--context {context} given but there is no kubeconfig ({path} does not exist)")
    try:
        load_incluster_config(client_configuration=configuration)
    except ConfigException:
        raise KubeError(
            f"no kubeconfig ({path} does not exist) and not running inside a cluster "
            "(fix: pass --kubeconfig FILE or set KUBECONFIG)"
        ) from None
    return configuration, Target(context="in-cluster", server=str(configuration.host), in_cluster=True)


class KubeClient:
    """A connection to one cluster. Construct with :meth:`connect`."""

    def __init__(self, api_client: Any, target: Target) -> None:
        self._api = api_client
        self.target = target
        self._groups: dict[str, list[str]] | None = None

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None, context: str | None = None) -> KubeClient:
        """Load credentials like kubectl: --kubeconfig, then merged $KUBECONFIG, then in-cluster."""
        from kubernetes import client

        configuration, target = _load_configuration(kubeconfig=kubeconfig, context=context)
        return cls(client.ApiClient(configuration), target)

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            self._api.close()

    # -- transport ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        action: str,
    ) -> Any:
        """One API call; returns the decoded JSON body or raises a ``KubeError``."""
        import urllib3
        from kubernetes.client.exceptions import ApiException, OpenApiException

        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            method_, url, header_params, serialized, post = self._api.param_serialize(
                method=method,
                resource_path=path,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._api.call_api(
                method_,
                url,
                header_params=header_params,
                body=serialized,
                post_params=post,
                _request_timeout=REQUEST_TIMEOUT,
            )
            data = response.read()
        except ApiException as exc:
            raise error_from_response(int(exc.status or 0), str(exc.body or exc.reason or ""), action=action) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _connection_error(exc, action=action, server=self.target.server) from None
        except OpenApiException as exc:
            raise KubeError(f"{action}: {exc}") from None
        status = int(response.status)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
        if not 200 <= status <= 299:
            raise error_from_response(status, text, action=action)
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise KubeUnavailable(f"{action}: the API server sent something that is not JSON") from None

    # -- discovery ------------------------------------------------------------------------------

    def served_groups(self) -> dict[str, list[str]]:
        """API group -> served versions, from ``GET /apis`` (cached for this client)."""
        if self._groups is None:
            data = self.request("GET", "/apis", action="discover API groups")
            self._groups = {g["name"]: [v["version"] for v in g.get("versions", [])] for g in data.get("groups", [])}
        return self._groups

    def _served_resources(self, group_version: str) -> set[str]:
        try:
            data = self.request("GET", f"/apis/{group_version}", action=f"discover {group_version}")
        except KubeNotFound:
            return set()
        return {r["name"] for r in data.get("resources", []) if "/" not in r["name"]}

    def detect_flavour(self, *, override: str = "auto") -> ApiFlavour:
        """Which API serves Calico resources (Calico's own rule, calico-facts §2.5)."""
        groups = self.served_groups()
        has_v3 = "v3" in groups.get(V3_GROUP, [])
        has_v1 = "v1" in groups.get(V1_GROUP, [])
        if override == "v1":
            if not has_v1:
                raise KubeNotFound(f"--calico-api v1: {V1} is not served by {self.target.server}")
            return ApiFlavour.V1_CRD
        if override == "v3" and not has_v3:
            raise KubeNotFound(
                f"--calico-api v3: {V3} is not served by {self.target.server} "
                "(install the Calico API server or native v3 CRDs, or use --calico-api v1 --allow-crd-v1)"
            )
        if has_v3:
            needed = {"ippools", "bgppeers", "bgpconfigurations"}
            missing = needed - self._served_resources(V3)
            if missing:
                raise KubeNotFound(f"{V3} is served but lacks {', '.join(sorted(missing))}")
            if not has_v1:
                return ApiFlavour.V3_CRD
            # Both groups: Calico's rule says API-server mode; the APIService confirms it when we
            # may read it (the docs warn against installing both CRD sets, which looks the same).
            try:
                self.request(
                    "GET",
                    "/apis/apiregistration.k8s.io/v1/apiservices/v3.projectcalico.org",
                    action="read APIService v3.projectcalico.org",
                )
            except KubeNotFound:
                return ApiFlavour.V3_CRD
            except KubeForbidden:
                pass
            return ApiFlavour.V3_APISERVER
        if has_v1:
            return ApiFlavour.V1_CRD
        raise KubeNotFound(f"Calico is not installed on {self.target.server}: neither {V3} nor {V1} is served")

    def cluster_uid(self) -> str:
        """The kube-system namespace UID: stable for the life of a cluster, unlike its server URL."""
        try:
            data = self.request("GET", "/api/v1/namespaces/kube-system", action="read namespace kube-system")
        except (KubeNotFound, KubeForbidden):
            return ""
        return str((data.get("metadata") or {}).get("uid") or "")

    # -- reading --------------------------------------------------------------------------------

    def list_path(
        self, path: str, *, action: str, page_size: int = PAGE_SIZE, accept: str = "application/json"
    ) -> Iterator[dict[str, Any]]:
        """All items of a list endpoint, page by page (``limit``/``continue``)."""
        token: str | None = None
        while True:
            data = self.request(
                "GET", path, query={"limit": page_size, "continue": token}, accept=accept, action=action
            )
            yield from data.get("items") or []
            token = (data.get("metadata") or {}).get("continue") or None
            if not token:
                return

    def list_kind(
        self, api_version: str, kind: str, plural: str, *, page_size: int = PAGE_SIZE
    ) -> Iterator[dict[str, Any]]:
        """Items of a cluster-wide list, each carrying apiVersion/kind (list items often omit them)."""
        path = f"/api/{api_version}/{plural}" if "/" not in api_version else f"/apis/{api_version}/{plural}"
        for item in self.list_path(path, action=f"list {plural}", page_size=page_size):
            item["apiVersion"] = api_version
            item["kind"] = kind
            yield item

    def _calico_path(self, flavour: ApiFlavour, kind: str, name: str | None = None) -> str:
        plural = CALICO_PLURALS.get(kind)
        if plural is None:
            raise KubeError(f"bgpflat does not handle Calico kind {kind!r}")
        base = f"/apis/{flavour.api_version}/{plural}"
        return base if name is None else f"{base}/{quote(name, safe='')}"

    def list_calico(self, flavour: ApiFlavour, kind: str) -> list[dict[str, Any]]:
        """Calico objects of one kind as v3 manifests, sorted by name."""
        plural = CALICO_PLURALS[kind]
        try:
            items = list(self.list_kind(flavour.api_version, kind, plural))
        except KubeNotFound:
            return []  # BGPFilter is absent before Calico v3.26
        if flavour is ApiFlavour.V1_CRD:
            items = [v1_to_v3(i) for i in items]
        return sorted(items, key=lambda o: str(o["metadata"]["name"]))

    def get_calico(self, flavour: ApiFlavour, kind: str, name: str) -> dict[str, Any] | None:
        """One Calico object as a v3 manifest, or None if it does not exist."""
        try:
            data = self.request("GET", self._calico_path(flavour, kind, name), action=f"read {kind}/{name}")
        except KubeNotFound:
            return None
        data.setdefault("apiVersion", flavour.api_version)
        data.setdefault("kind", kind)
        return v1_to_v3(data) if flavour is ApiFlavour.V1_CRD else dict(data)

    def list_ipam(self, flavour: ApiFlavour) -> Iterator[dict[str, Any]]:
        """IPAMBlocks, BlockAffinities and IPAMConfig, from whichever group stores them."""
        if "v1" in self.served_groups().get(V1_GROUP, []):
            version, plurals = V1, IPAM_PLURALS
        else:
            version, plurals = V3, V3_IPAM_PLURALS
        for kind, plural in plurals.items():
            try:
                yield from self.list_kind(version, kind, plural)
            except KubeNotFound:
                continue

    def list_core(self) -> Iterator[dict[str, Any]]:
        """Nodes, Services and EndpointSlices of the whole cluster."""
        for api_version, kind, path in CORE_LISTS:
            for item in self.list_path(path, action=f"list {kind}s"):
                item["apiVersion"] = api_version
                item["kind"] = kind
                yield item

    def get_installation(self) -> dict[str, Any] | None:
        """The Tigera operator's ``Installation default``, or None on a manifest install."""
        try:
            data = self.request(
                "GET", "/apis/operator.tigera.io/v1/installations/default", action="read Installation/default"
            )
        except (KubeNotFound, KubeForbidden):
            return None
        data.setdefault("apiVersion", OPERATOR_API)
        data.setdefault("kind", "Installation")
        return dict(data)

    # -- writing --------------------------------------------------------------------------------

    def _write_query(self, *, dry_run: bool) -> dict[str, Any]:
        return {"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None}

    def create_calico(self, flavour: ApiFlavour, manifest: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]:
        """POST a new object (v3 manifest); AlreadyExists comes back as ``KubeConflict``."""
        kind = str(manifest["kind"])
        name = str(manifest["metadata"]["name"])
        body = v3_to_v1(manifest) if flavour is ApiFlavour.V1_CRD else dict(manifest)
        if flavour is not ApiFlavour.V1_CRD:
            body["apiVersion"] = V3
        data = self.request(
            "POST",
            self._calico_path(flavour, kind),
            query=self._write_query(dry_run=dry_run),
            body=body,
            action=f"create {kind}/{name}",
        )
        return v1_to_v3(data) if flavour is ApiFlavour.V1_CRD else dict(data)

    def patch_calico(
        self,
        flavour: ApiFlavour,
        kind: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str,
        dry_run: bool,
    ) -> dict[str, Any]:
        """JSON merge-patch guarded by ``metadata.resourceVersion``: 409 if anyone wrote since."""
        body = dict(patch)
        if flavour is ApiFlavour.V1_CRD and "metadata" in body:
            current = self.request("GET", self._calico_path(flavour, kind, name), action=f"read {kind}/{name}")
            body = v1_metadata_patch(patch=body, current_v1=current)
        metadata = dict(body.get("metadata") or {})
        metadata["resourceVersion"] = resource_version
        body["metadata"] = metadata
        data = self.request(
            "PATCH",
            self._calico_path(flavour, kind, name),
            query=self._write_query(dry_run=dry_run),
            body=body,
            content_type="application/merge-patch+json",
            action=f"update {kind}/{name}",
        )
        return v1_to_v3(data) if flavour is ApiFlavour.V1_CRD else dict(data)

    def replace_calico(self, flavour: ApiFlavour, manifest: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]:
        """PUT a whole object; it must carry the resourceVersion it was read at."""
        kind = str(manifest["kind"])
        name = str(manifest["metadata"]["name"])
        if not (manifest.get("metadata") or {}).get("resourceVersion"):
            raise KubeError(f"replace {kind}/{name}: refusing a PUT without resourceVersion (blind overwrite)")
        body = v3_to_v1(manifest) if flavour is ApiFlavour.V1_CRD else dict(manifest)
        data = self.request(
            "PUT",
            self._calico_path(flavour, kind, name),
            query=self._write_query(dry_run=dry_run),
            body=body,
            action=f"replace {kind}/{name}",
        )
        return v1_to_v3(data) if flavour is ApiFlavour.V1_CRD else dict(data)

    def delete_calico(self, flavour: ApiFlavour, kind: str, name: str, *, resource_version: str, dry_run: bool) -> None:
        """DELETE with a resourceVersion precondition, so a changed object is never removed."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"resourceVersion": resource_version},
        }
        if dry_run:
            body["dryRun"] = ["All"]
        self.request(
            "DELETE",
            self._calico_path(flavour, kind, name),
            query={"dryRun": "All" if dry_run else None},
            body=body,
            action=f"delete {kind}/{name}",
        )

    def patch_installation(self, patch: Mapping[str, Any], *, resource_version: str, dry_run: bool) -> dict[str, Any]:
        """Merge-patch ``Installation default`` (operator-managed pools), guarded by resourceVersion."""
        body = dict(patch)
        metadata = dict(body.get("metadata") or {})
        metadata["resourceVersion"] = resource_version
        body["metadata"] = metadata
        data = self.request(
            "PATCH",
            "/apis/operator.tigera.io/v1/installations/default",
            query=self._write_query(dry_run=dry_run),
            body=body,
            content_type="application/merge-patch+json",
            action="update Installation/default",
        )
        return dict(data)


# Nodes as metadata only: labels and annotations are all Calico reads from a Node (calico-facts
# §2.4), and skipping status (images, conditions) makes a 5,000-node list several times smaller.
_METADATA_ONLY = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"


class CalicoApi:
    """One cluster with its Calico API flavour fixed: the surface the workflows use."""

    def __init__(self, client: KubeClient, flavour: ApiFlavour) -> None:
        self.client = client
        self.flavour = flavour
        self._identity: ClusterIdentity | None = None

    @classmethod
    def connect(
        cls, *, kubeconfig: str | None = None, context: str | None = None, calico_api: str = "auto"
    ) -> CalicoApi:
        client = KubeClient.connect(kubeconfig=kubeconfig, context=context)
        return cls(client, client.detect_flavour(override=calico_api))

    @property
    def target(self) -> Target:
        return self.client.target

    def close(self) -> None:
        self.client.close()

    def calico_version(self) -> str:
        """calico/node's version from ClusterInformation (v1 storage holds it if v3 does not show it)."""
        info = self.client.get_calico(self.flavour, "ClusterInformation", "default")
        if (
            info is None
            and self.flavour is not ApiFlavour.V1_CRD
            and "v1" in self.client.served_groups().get(V1_GROUP, [])
        ):
            info = self.client.get_calico(ApiFlavour.V1_CRD, "ClusterInformation", "default")
        return str(((info or {}).get("spec") or {}).get("calicoVersion") or "")

    def identity(self) -> ClusterIdentity:
        """What a saved plan records to recognise this cluster, and what plan output shows."""
        if self._identity is None:
            self._identity = ClusterIdentity(
                context=self.target.context,
                server=self.target.server,
                cluster_id=self.client.cluster_uid(),
                api_group=self.flavour.api_version,
                api_flavour=str(self.flavour),
                calico_version=self.calico_version(),
            )
        return self._identity

    def list_nodes(self) -> Iterator[dict[str, Any]]:
        for item in self.client.list_path("/api/v1/nodes", action="list Nodes", accept=_METADATA_ONLY):
            item["apiVersion"] = "v1"
            item["kind"] = "Node"
            metadata = item.get("metadata") or {}
            metadata.pop("managedFields", None)
            yield item

    def read_state(self) -> list[dict[str, Any]]:
        """What ``plan`` compares against: Calico objects, Nodes (metadata) and the Installation."""
        objects: list[dict[str, Any]] = []
        for kind in ("IPPool", "BGPPeer", "BGPConfiguration", "BGPFilter"):
            objects.extend(self.client.list_calico(self.flavour, kind))
        objects.extend(self.list_nodes())
        installation = self.client.get_installation()
        if installation is not None:
            objects.append(installation)
        return objects

    def read_everything(self) -> Iterator[dict[str, Any]]:
        """What a snapshot holds: ``read_state`` plus everything expected routes are computed from.

        A generator, page by page, so that a snapshot streams to disk instead of sitting in memory.
        """
        installation = self.client.get_installation()
        if installation is not None:
            yield installation
        yield from self.client.list_calico(self.flavour, "ClusterInformation")
        for kind in ("BGPConfiguration", "IPPool", "BGPPeer", "BGPFilter"):
            yield from self.client.list_calico(self.flavour, kind)
        yield from self.list_nodes()
        yield from self.client.list_ipam(self.flavour)
        for api_version, kind, path in CORE_LISTS:
            if kind == "Node":
                continue
            for item in self.client.list_path(path, action=f"list {kind}s"):
                item["apiVersion"] = api_version
                item["kind"] = kind
                yield item

    # ``namespace``: the workflows' single-object surface is shared with namespaced kinds
    # (``kube.ServiceApi``); every kind here is cluster-wide, so it is always "".
    def get(self, kind: str, name: str, *, namespace: str = "") -> dict[str, Any] | None:
        if kind == "Installation":
            installation = self.client.get_installation()
            if installation is not None and installation["metadata"]["name"] != name:
                return None
            return installation
        return self.client.get_calico(self.flavour, kind, name)

    def create(self, manifest: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]:
        return self.client.create_calico(self.flavour, manifest, dry_run=dry_run)

    def patch(
        self,
        kind: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str,
        dry_run: bool,
        namespace: str = "",
    ) -> dict[str, Any]:
        if kind == "Installation":
            return self.client.patch_installation(patch, resource_version=resource_version, dry_run=dry_run)
        return self.client.patch_calico(
            self.flavour, kind, name, patch, resource_version=resource_version, dry_run=dry_run
        )

    def delete(self, kind: str, name: str, *, resource_version: str, dry_run: bool, namespace: str = "") -> None:
        self.client.delete_calico(self.flavour, kind, name, resource_version=resource_version, dry_run=dry_run)


# ---------------------------------------------------------------------------------------------
# Outside services (``bgpflat external``): Services, EndpointSlices and Endpoints.
#
# ``ServiceApi`` has the same single-object surface as ``CalicoApi`` (``identity``, ``get``,
# ``create``, ``patch``, ``delete``), so the one apply engine, its guards and ``rollback`` write
# these kinds too; the URL paths of the namespaced kinds live here and nowhere else.

# kind -> (apiVersion, collection path with {ns})
SERVICE_KINDS: Mapping[str, tuple[str, str]] = {
    "Service": ("v1", "/api/v1/namespaces/{ns}/services"),
    "Endpoints": ("v1", "/api/v1/namespaces/{ns}/endpoints"),
    "EndpointSlice": ("discovery.k8s.io/v1", "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"),
}
# Kubernetes 1.21 made discovery.k8s.io/v1 EndpointSlices GA; older clusters get Endpoints.
SLICE_MINOR = 21


def _service_path(kind: str, namespace: str, name: str | None = None) -> str:
    if kind not in SERVICE_KINDS:
        raise KubeError(f"bgpflat external does not handle kind {kind!r}")
    if not namespace:
        raise KubeError(f"{kind}/{name}: a namespaced object needs its namespace")
    base = SERVICE_KINDS[kind][1].format(ns=quote(namespace, safe=""))
    return base if name is None else f"{base}/{quote(name, safe='')}"


class ServiceApi:
    """One cluster, for outside services: namespaced reads and guarded writes of three core kinds."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._identity: ClusterIdentity | None = None

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None, context: str | None = None) -> ServiceApi:
        return cls(KubeClient.connect(kubeconfig=kubeconfig, context=context))

    @property
    def target(self) -> Target:
        return self.client.target

    def close(self) -> None:
        self.client.close()

    def identity(self) -> ClusterIdentity:
        """What a saved plan and a backup record to recognise this cluster (no Calico API involved)."""
        if self._identity is None:
            self._identity = ClusterIdentity(
                context=self.target.context, server=self.target.server, cluster_id=self.client.cluster_uid()
            )
        return self._identity

    def serves_endpoint_slices(self) -> bool:
        """False only for a server older than 1.21 (no discovery.k8s.io/v1)."""
        version = self.client.request("GET", "/version", action="read the server version") or {}
        digits = "".join(c for c in str(version.get("minor", "")) if c.isdigit())
        return not (str(version.get("major")) == "1" and bool(digits) and int(digits) < SLICE_MINOR)

    def _typed(self, kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        return {**obj, "apiVersion": SERVICE_KINDS[kind][0], "kind": kind}

    def list_labelled(self, kind: str, selector: str, *, namespace: str = "") -> list[dict[str, Any]]:
        """Objects of ``kind`` matching a label selector, in one namespace or (``""``) in all."""
        if namespace:
            path = _service_path(kind, namespace)
        else:
            api_version, collection = SERVICE_KINDS[kind]
            prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            path = f"{prefix}/{collection.rsplit('/', 1)[1]}"
        found = self.client.request(
            "GET", path, query={"labelSelector": selector}, action=f"list {kind} objects labelled {selector}"
        )
        return [self._typed(kind, item) for item in (found or {}).get("items") or []]

    def get(self, kind: str, name: str, *, namespace: str = "") -> dict[str, Any] | None:
        try:
            data = self.client.request(
                "GET", _service_path(kind, namespace, name), action=f"read {kind}/{namespace}/{name}"
            )
        except KubeNotFound:
            return None
        return self._typed(kind, data)

    def _query(self, *, dry_run: bool) -> dict[str, Any]:
        return {"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None}

    def create(self, manifest: Mapping[str, Any], *, dry_run: bool) -> dict[str, Any]:
        kind = str(manifest["kind"])
        meta = manifest.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name"))
        data = self.client.request(
            "POST",
            _service_path(kind, namespace),
            query=self._query(dry_run=dry_run),
            body=dict(manifest),
            action=f"create {kind}/{namespace}/{name}",
        )
        return dict(data or {})

    def patch(
        self,
        kind: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str,
        dry_run: bool,
        namespace: str = "",
    ) -> dict[str, Any]:
        """JSON merge-patch guarded by ``metadata.resourceVersion``: 409 if anyone wrote since."""
        body = dict(patch)
        body["metadata"] = {**dict(body.get("metadata") or {}), "resourceVersion": resource_version}
        data = self.client.request(
            "PATCH",
            _service_path(kind, namespace, name),
            query=self._query(dry_run=dry_run),
            body=body,
            content_type="application/merge-patch+json",
            action=f"update {kind}/{namespace}/{name}",
        )
        return dict(data or {})

    def delete(self, kind: str, name: str, *, resource_version: str, dry_run: bool, namespace: str = "") -> None:
        """DELETE with a resourceVersion precondition, so a changed object is never removed."""
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"resourceVersion": resource_version},
        }
        self.client.request(
            "DELETE",
            _service_path(kind, namespace, name),
            query=self._query(dry_run=dry_run),
            body=body,
            action=f"delete {kind}/{namespace}/{name}",
        )
