"""Independent ways for tests to look at a test API server, apart from the code under test.

``raw_api(plane)`` is a small stdlib JSON client (``request(method, path, body)`` → status + JSON):
it checks what bgpflat's Kubernetes adapter stored, and seeds objects, without going through
that adapter. ``official_client(plane)`` is the kubernetes package's own ``ApiClient``.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

from bgpflat.lab.controlplane.server import ControlPlane

JsonObject = dict[str, Any]


def api_base(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    status: int
    body: JsonObject

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def message(self) -> str:
        return str(self.body.get("message") or self.body.get("raw") or self.body)[:500]


@dataclass(slots=True)
class RawApi:
    """JSON requests to ``https://127.0.0.1:<port>`` with the admin client certificate."""

    port: int
    ca_cert: str
    client_cert: str
    client_key: str
    timeout: float = 30.0
    _context: ssl.SSLContext | None = field(default=None, init=False, repr=False)
    _resources: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict, init=False, repr=False)

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            context = ssl.create_default_context(cafile=self.ca_cert)
            context.load_cert_chain(self.client_cert, self.client_key)
            self._context = context
        return self._context

    def request(
        self, method: str, path: str, body: JsonObject | None = None, *, content_type: str = "application/json"
    ) -> Response:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self._ssl(), timeout=self.timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Accept": "application/json"}
            if payload is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=payload, headers=headers)
            raw = conn.getresponse()
            data = raw.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(data) if data else {}
        except json.JSONDecodeError:
            parsed = {"raw": data.decode(errors="replace")}
        return Response(status=raw.status, body=parsed if isinstance(parsed, dict) else {"items": parsed})

    def must(self, method: str, path: str, body: JsonObject | None = None, **kwargs: Any) -> JsonObject:
        """Like ``request`` but any non-2xx answer fails the test."""
        response = self.request(method, path, body, **kwargs)
        assert response.ok, f"{method} {path}: HTTP {response.status}: {response.message()}"
        return response.body

    def collection_path(self, api_version: str, kind: str, namespace: str | None = None) -> str:
        key = (api_version, kind)
        if key not in self._resources:
            for item in self.must("GET", api_base(api_version)).get("resources", []):
                if "/" not in item["name"]:
                    self._resources[(api_version, item["kind"])] = (item["name"], bool(item["namespaced"]))
        plural, namespaced = self._resources[key]
        if namespaced:
            return f"{api_base(api_version)}/namespaces/{namespace or 'default'}/{plural}"
        return f"{api_base(api_version)}/{plural}"


def raw_api(plane: ControlPlane) -> RawApi:
    creds = plane.credentials
    return RawApi(
        port=plane.state.api_port,
        ca_cert=str(creds.ca_cert),
        client_cert=str(creds.admin_cert),
        client_key=str(creds.admin_key),
    )


def official_client(plane: ControlPlane) -> Any:
    """A ``kubernetes.client.ApiClient`` for the admin user (imported lazily: it is slow)."""
    from kubernetes import config

    return config.new_client_from_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]
