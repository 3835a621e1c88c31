"""A minimal JSON client for the local kube-apiserver, on the standard library only.

The lab needs a handful of raw calls (readiness, CRD install, seeding, clean-up) whose answers it
inspects as plain JSON, including status codes the kubernetes client would turn into exceptions.
Keeping them here also keeps start-up free of the kubernetes client's import time.
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

from bgpflat.errors import LabError

JsonObject = dict[str, Any]


def api_base(api_version: str) -> str:
    """The URL path an API version is served under: ``/api/v1`` for the core group, else ``/apis/<gv>``."""
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
class KubeRest:
    """JSON requests to ``https://127.0.0.1:<port>`` with the admin client certificate."""

    port: int
    ca_cert: str
    client_cert: str
    client_key: str
    timeout: float = 30.0
    _context: ssl.SSLContext | None = field(default=None, init=False, repr=False)
    _resources: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict, init=False, repr=False)
    _subresources: set[tuple[str, str]] = field(default_factory=set, init=False, repr=False)

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            context = ssl.create_default_context(cafile=self.ca_cert)
            context.load_cert_chain(self.client_cert, self.client_key)
            self._context = context
        return self._context

    def request(
        self, method: str, path: str, body: JsonObject | None = None, *, content_type: str = "application/json"
    ) -> Response:
        """One request; transport failures raise ``OSError`` (callers decide whether to retry)."""
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
        """Like ``request`` but any non-2xx answer is a ``LabError``."""
        try:
            response = self.request(method, path, body, **kwargs)
        except OSError as exc:
            raise LabError(f"{method} {path}: {exc}") from exc
        if not response.ok:
            raise LabError(f"{method} {path}: HTTP {response.status}: {response.message()}")
        return response.body

    def resource(self, api_version: str, kind: str, *, refresh: bool = False) -> tuple[str, bool]:
        """``(plural, namespaced)`` of ``kind`` in ``api_version``, from the server's discovery."""
        key = (api_version, kind)
        if key not in self._resources or refresh:
            response = self.request("GET", api_base(api_version))
            if not response.ok:
                raise LabError(f"the API server does not serve {api_version} (HTTP {response.status})")
            for item in response.body.get("resources", []):
                if "/" in item["name"]:
                    self._subresources.add((api_version, item["name"]))
                else:
                    self._resources[(api_version, item["kind"])] = (item["name"], bool(item["namespaced"]))
        if key not in self._resources:
            raise LabError(f"the API server serves no kind {kind} in {api_version}")
        return self._resources[key]

    def has_status_subresource(self, api_version: str, kind: str) -> bool:
        """Whether ``status`` of ``kind`` is written separately from the object (``<plural>/status``)."""
        plural, _ = self.resource(api_version, kind)
        return (api_version, f"{plural}/status") in self._subresources

    def collection_path(self, api_version: str, kind: str, namespace: str | None = None) -> str:
        plural, namespaced = self.resource(api_version, kind)
        if namespaced:
            return f"{api_base(api_version)}/namespaces/{namespace or 'default'}/{plural}"
        return f"{api_base(api_version)}/{plural}"
