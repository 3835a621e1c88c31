"""``KubeClient``: one connection to one cluster, and the resource-level calls everything is built on.

Requests go through the kubernetes client's ``ApiClient`` (so kubeconfig auth, exec plugins and
token refresh behave as in kubectl) but responses are decoded with ``json.loads`` rather than
the generated models: for 5,000 Nodes the models cost several times the network time. Any
object is addressed by ``apiVersion``/``kind`` (plural and scope come from the server's
discovery), so no caller builds a URL path.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bgpflat.adapters.kube.config import Target, certificate_configuration, load_configuration
from bgpflat.adapters.kube.errors import connection_error, error_from_response
from bgpflat.errors import KubeError, KubeForbidden, KubeNotFound, KubeUnavailable

FIELD_MANAGER = "bgpflat"
# (connect, read) seconds: a wedged API server must end in an error a person sees, not a hang.
REQUEST_TIMEOUT = (10.0, 120.0)
PAGE_SIZE = 500
WHOLE_LIST = 0  # as a page size: the list in one request, no ``limit`` (see ``CalicoApi.read_everything``)
# How long one request may spend waiting out 429 Too Many Requests (Retry-After) before it fails.
MAX_THROTTLE_WAIT = 30.0
MERGE_PATCH = "application/merge-patch+json"


def api_base(api_version: str) -> str:
    """The URL path an API version is served under: ``/api/v1`` for the core group, else ``/apis/<gv>``."""
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """One resource type as the server's discovery describes it."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()
    has_status: bool = False  # ``<plural>/status`` is written separately from the object

    def path(self, *, namespace: str | None = None, name: str | None = None) -> str:
        base = api_base(self.api_version)
        if self.namespaced and namespace:
            base = f"{base}/namespaces/{quote(namespace, safe='')}"
        base = f"{base}/{self.plural}"
        return base if name is None else f"{base}/{quote(name, safe='')}"


class _Throttled(Exception):
    def __init__(self, error: KubeError, retry_after: float) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def retry_after(headers: Mapping[str, str] | None) -> float:
    """Seconds a 429's ``Retry-After`` asks for (1 when absent or not a number of seconds)."""
    try:
        return max(0.0, float((headers or {}).get("Retry-After") or 1))
    except ValueError:
        return 1.0


def _where(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


class WatchStream:
    """One open watch: its events as they arrive, until the server ends it or ``close`` is called."""

    def __init__(self, raw: Any, *, action: str, server: str) -> None:
        self._raw = raw
        self._action = action
        self._server = server

    def events(self) -> Iterator[dict[str, Any]]:
        """``{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": …}``, one per line."""
        import urllib3

        try:
            for line in self._raw:
                if line.strip():
                    yield json.loads(line)
        except ValueError:
            raise KubeUnavailable(f"{self._action}: the API server sent something that is not JSON") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise connection_error(exc, action=self._action, server=self._server) from None
        finally:
            self._raw.release_conn()

    def close(self) -> None:
        """End the watch from another thread: the reader's ``events`` stops."""
        import contextlib

        with contextlib.suppress(Exception):
            self._raw.shutdown()
        with contextlib.suppress(Exception):
            self._raw.close()


class KubeClient:
    """A connection to one cluster. Construct with :meth:`connect`."""

    def __init__(self, api_client: Any, target: Target) -> None:
        self._api = api_client
        self.target = target
        self._groups: dict[str, list[str]] | None = None
        self._resources: dict[str, dict[str, Resource]] = {}
        # (connect, read) seconds for each request; the only bound, as urllib3 does not retry.
        self.request_timeout: tuple[float, float] = REQUEST_TIMEOUT

    @classmethod
    def connect(cls, *, kubeconfig: str | None = None, context: str | None = None, connections: int = 0) -> KubeClient:
        """Load credentials like kubectl: --kubeconfig, then merged $KUBECONFIG, then in-cluster.

        ``connections``: keep at least this many connections open at once (one per open watch).
        """
        from kubernetes import client

        configuration, target = load_configuration(kubeconfig=kubeconfig, context=context)
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, connections)
        return cls(client.ApiClient(configuration), target)

    @classmethod
    def with_certificate(
        cls, *, server: str, ca_cert: str, client_cert: str, client_key: str, context: str = "certificate"
    ) -> KubeClient:
        """A client authenticated by a client certificate, for a server whose kubeconfig may not exist yet."""
        from kubernetes import client

        configuration, target = certificate_configuration(
            server=server, ca_cert=ca_cert, client_cert=client_cert, client_key=client_key, context=context
        )
        return cls(client.ApiClient(configuration), target)

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            self._api.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        accept: str,
        action: str,
    ) -> tuple[int, str]:
        """(status, body text) of one call; transport failures become ``KubeUnavailable``."""
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        waited = 0.0
        while True:
            try:
                return self._call_once(method, path, params, headers, body, action)
            except _Throttled as throttled:
                # 429: the server refused before acting, so any request (a write too) is safe to
                # send again; within a bound, after which it is an error like any 5xx.
                wait = min(throttled.retry_after, MAX_THROTTLE_WAIT - waited)
                if wait <= 0 or waited >= MAX_THROTTLE_WAIT:
                    raise throttled.error from None
                time.sleep(wait)
                waited += wait

    def _call_once(
        self, method: str, path: str, params: list[tuple[str, Any]], headers: dict[str, str], body: Any, action: str
    ) -> tuple[int, str]:
        import urllib3
        from kubernetes.client.exceptions import ApiException, OpenApiException

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
                _request_timeout=self.request_timeout,
            )
            data = response.read()
        except ApiException as exc:
            error = error_from_response(int(exc.status or 0), str(exc.body or exc.reason or ""), action=action)
            if exc.status == 429:
                raise _Throttled(error, retry_after(exc.headers)) from None
            raise error from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise connection_error(exc, action=action, server=self.target.server) from None
        except OpenApiException as exc:
            raise KubeError(f"{action}: {exc}") from None
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data or "")
        if response.status == 429:
            raise _Throttled(error_from_response(429, text, action=action), retry_after(response.getheaders()))
        return int(response.status), text

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
        status, text = self._call(
            method, path, query=query, body=body, content_type=content_type, accept=accept, action=action
        )
        if not 200 <= status <= 299:
            raise error_from_response(status, text, action=action)
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            raise KubeUnavailable(f"{action}: the API server sent something that is not JSON") from None

    def ready(self) -> bool:
        """Whether the server answers ``/readyz`` with 200 (False while it starts or is unreachable)."""
        try:
            status, _ = self._call(
                "GET", "/readyz", query=None, body=None, content_type="", accept="text/plain", action="GET /readyz"
            )
        except KubeError:
            return False
        return status == 200

    # -- discovery ------------------------------------------------------------------------------

    def served_groups(self) -> dict[str, list[str]]:
        """API group -> served versions, from ``GET /apis`` (cached for this client)."""
        if self._groups is None:
            data = self.request("GET", "/apis", action="discover API groups")
            self._groups = {g["name"]: [v["version"] for v in g.get("versions", [])] for g in data.get("groups", [])}
        return self._groups

    def served_resources(self, api_version: str) -> set[str]:
        """Plurals served in ``api_version`` right now (uncached; empty when it is not served)."""
        try:
            data = self.request("GET", api_base(api_version), action=f"discover {api_version}")
        except KubeNotFound:
            return set()
        return {r["name"] for r in data.get("resources", []) if "/" not in r["name"]}

    def _discover(self, api_version: str) -> dict[str, Resource]:
        data = self.request("GET", api_base(api_version), action=f"discover {api_version}")
        items = data.get("resources") or []
        subresources = {item["name"] for item in items if "/" in item["name"]}
        return {
            item["kind"]: Resource(
                api_version=api_version,
                kind=item["kind"],
                plural=item["name"],
                namespaced=bool(item.get("namespaced")),
                verbs=frozenset(item.get("verbs") or ()),
                has_status=f"{item['name']}/status" in subresources,
            )
            for item in items
            if "/" not in item["name"]
        }

    def resource(self, api_version: str, kind: str, *, refresh: bool = False) -> Resource:
        """``kind`` in ``api_version`` from discovery (cached); ``KubeNotFound`` when not served."""
        if refresh or api_version not in self._resources or kind not in self._resources[api_version]:
            self._resources[api_version] = self._discover(api_version)
        found = self._resources[api_version].get(kind)
        if found is None:
            raise KubeNotFound(f"the API server serves no kind {kind} in {api_version}", reason="NotFound")
        return found

    def preferred_resources(self) -> list[Resource]:
        """Every resource type of the core group and of each group's preferred version (uncached)."""
        versions = ["v1"]
        data = self.request("GET", "/apis", action="discover API groups")
        versions += [g["preferredVersion"]["groupVersion"] for g in data.get("groups", [])]
        found: list[Resource] = []
        for api_version in versions:
            try:
                self._resources[api_version] = self._discover(api_version)
            except KubeNotFound:
                continue  # a group that just went away (a CRD deleted a moment ago)
            found.extend(self._resources[api_version].values())
        return found

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
        """All items of a list endpoint, page by page (``limit``/``continue``; one request for ``WHOLE_LIST``)."""
        token: str | None = None
        while True:
            data = self.request(
                "GET", path, query={"limit": page_size or None, "continue": token}, accept=accept, action=action
            )
            yield from data.get("items") or []
            token = (data.get("metadata") or {}).get("continue") or None
            if not token:
                return

    def list_versioned(
        self,
        path: str,
        *,
        action: str,
        query: Mapping[str, Any] | None = None,
        accept: str = "application/json",
        page_size: int = PAGE_SIZE,
    ) -> tuple[list[dict[str, Any]], str]:
        """All items of a list endpoint and the list's resourceVersion, to start a watch from.

        The pages of one list are one consistent read at the first page's resourceVersion.
        """
        items: list[dict[str, Any]] = []
        token: str | None = None
        version = ""
        while True:
            data = self.request(
                "GET",
                path,
                query={**(query or {}), "limit": page_size or None, "continue": token},
                accept=accept,
                action=action,
            )
            items.extend(data.get("items") or [])
            metadata = data.get("metadata") or {}
            version = version or str(metadata.get("resourceVersion") or "")
            token = metadata.get("continue") or None
            if not token:
                return items, version

    def watch(
        self, path: str, *, query: Mapping[str, Any], accept: str = "application/json", action: str, seconds: int
    ) -> WatchStream:
        """Open a watch (``?watch=1``) that the server ends after ``seconds``; read it with ``events()``."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        params = [(k, v) for k, v in {**query, "watch": "1", "timeoutSeconds": seconds}.items() if v is not None]
        try:
            method, url, headers, body, post = self._api.param_serialize(
                method="GET",
                resource_path=path,
                query_params=params,
                header_params={"Accept": accept},
                auth_settings=["BearerToken"],
            )
            # The read timeout outlasts the server's own end of the watch: a quiet watch is not a dead one.
            response = self._api.call_api(
                method,
                url,
                header_params=headers,
                body=body,
                post_params=post,
                _request_timeout=(self.request_timeout[0], seconds + 30.0),
            )
        except ApiException as exc:
            raise error_from_response(int(exc.status or 0), str(exc.body or exc.reason or ""), action=action) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise connection_error(exc, action=action, server=self.target.server) from None
        raw = response.response
        if raw.status != 200:
            text = raw.data.decode("utf-8", "replace") if raw.data else ""
            raw.release_conn()
            raise error_from_response(int(raw.status), text, action=action)
        return WatchStream(raw, action=action, server=self.target.server)

    def list_kind(
        self, api_version: str, kind: str, plural: str, *, page_size: int = PAGE_SIZE, accept: str = "application/json"
    ) -> Iterator[dict[str, Any]]:
        """Items of a cluster-wide list, each carrying apiVersion/kind (list items often omit them)."""
        path = f"{api_base(api_version)}/{plural}"
        for item in self.list_path(path, action=f"list {plural}", page_size=page_size, accept=accept):
            item["apiVersion"] = api_version
            item["kind"] = kind
            yield item

    def list_objects(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        """Every ``kind`` object, in every namespace; ``KubeNotFound`` when the kind is not served."""
        resource = self.resource(api_version, kind)
        return list(self.list_kind(api_version, kind, resource.plural))

    def get_object(
        self, api_version: str, kind: str, name: str, *, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """One object, or None if it (or its kind) does not exist."""
        try:
            resource = self.resource(api_version, kind)
            data = self.request(
                "GET",
                resource.path(namespace=namespace, name=name),
                action=f"read {kind} {_where(namespace, name)}",
            )
        except KubeNotFound:
            return None
        data.setdefault("apiVersion", api_version)
        data.setdefault("kind", kind)
        return dict(data)

    # -- writing --------------------------------------------------------------------------------

    def create_object(self, manifest: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        """POST ``manifest`` into its collection; AlreadyExists comes back as ``KubeConflict``."""
        api_version, kind = str(manifest["apiVersion"]), str(manifest["kind"])
        metadata = manifest.get("metadata") or {}
        namespace = metadata.get("namespace") or None
        resource = self.resource(api_version, kind)
        if resource.namespaced and namespace is None:
            namespace = "default"
        data = self.request(
            "POST",
            resource.path(namespace=namespace),
            query={"fieldManager": FIELD_MANAGER, "dryRun": "All" if dry_run else None},
            body=dict(manifest),
            action=f"create {kind} {_where(namespace, str(metadata.get('name') or ''))}",
        )
        return dict(data)

    def replace_status(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """PUT ``manifest`` (as read, with its resourceVersion) to the object's status subresource."""
        api_version, kind = str(manifest["apiVersion"]), str(manifest["kind"])
        metadata = manifest.get("metadata") or {}
        name, namespace = str(metadata["name"]), metadata.get("namespace") or None
        path = self.resource(api_version, kind).path(namespace=namespace, name=name)
        data = self.request(
            "PUT", f"{path}/status", body=dict(manifest), action=f"write the status of {kind} {_where(namespace, name)}"
        )
        return dict(data)

    def clear_finalizers(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> None:
        """Remove every finalizer (nothing runs here that would remove them otherwise)."""
        resource = self.resource(api_version, kind)
        self.request(
            "PATCH",
            resource.path(namespace=namespace, name=name),
            body={"metadata": {"finalizers": None}},
            content_type=MERGE_PATCH,
            action=f"clear the finalizers of {kind} {_where(namespace, name)}",
        )

    def delete_object(self, api_version: str, kind: str, name: str, *, namespace: str | None = None) -> bool:
        """DELETE one object; False when it was already gone."""
        resource = self.resource(api_version, kind)
        try:
            self.request(
                "DELETE",
                resource.path(namespace=namespace, name=name),
                action=f"delete {kind} {_where(namespace, name)}",
            )
        except KubeNotFound:
            return False
        return True

    def finalize_namespace(self, name: str) -> None:
        """Empty a deleted namespace's ``spec.finalizers`` (the namespace controller's part)."""
        namespace = self.get_object("v1", "Namespace", name)
        if namespace is None:
            return
        namespace.setdefault("spec", {})["finalizers"] = []
        try:
            self.request(
                "PUT",
                f"/api/v1/namespaces/{quote(name, safe='')}/finalize",
                body=namespace,
                action=f"finalize namespace {name}",
            )
        except KubeNotFound:
            return
