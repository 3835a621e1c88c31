"""Kubernetes API failures as bgpflat's ``KubeError`` family: one readable line each.

The only place an HTTP status or a transport exception becomes a bgpflat error; every request
of the adapter goes through ``error_from_response`` or ``connection_error``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from bgpflat.errors import (
    KubeConflict,
    KubeError,
    KubeForbidden,
    KubeInvalid,
    KubeNotFound,
    KubeUnavailable,
)


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


def connection_error(exc: Exception, *, action: str, server: str) -> KubeUnavailable:
    # urllib3 nests the cause (MaxRetryError -> NewConnectionError -> OSError); show the innermost words.
    reason: object = getattr(exc, "reason", None) or exc
    text = str(reason)
    for marker in ("Failed to establish a new connection:", "Caused by"):
        if marker in text:
            text = text.split(marker, 1)[1]
    if isinstance(exc.args[0] if exc.args else None, str) and len(exc.args) > 1:
        text = f"{exc.args[0]} {exc.args[1]}"  # ProtocolError('Connection aborted.', RemoteDisconnected(...))
    text = text.strip(" ()'\"").replace("'", "")
    if "read timed out" in str(exc).lower():
        # The request was sent and may still be acted on: callers must not read "no answer" as "not done".
        return KubeUnavailable(
            f"{action}: the API server {server} did not answer in time ({text[:200]})", status=None, reason="Timeout"
        )
    return KubeUnavailable(
        f"{action}: cannot reach the API server {server}: {text[:200]}", status=None, reason="Unavailable"
    )
