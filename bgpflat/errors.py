"""bgpflat's exception tree.

Every error bgpflat raises on purpose is a ``BgpflatError``; the CLI prints its message (never a
traceback unless ``--debug``) and exits 2. Third-party exceptions (kubernetes, yaml, OSError…) are
translated at the adapter that meets them and never cross into the core or the CLI.

    BgpflatError
    ├── SpecError            bad input: file, field path (``peers[2].asNumber``), line, and the fix
    │   └── ValidationError  a Calico object breaks a Calico rule (calico-facts §1)
    ├── PlanError            a plan cannot be made or applied as asked
    │   └── StalePlanError   a saved plan no longer matches the cluster ("plan is stale")
    ├── KubeError            the Kubernetes API said no, or could not be reached
    │   ├── KubeNotFound         404
    │   ├── KubeConflict         409 (stale resourceVersion, AlreadyExists)
    │   ├── KubeForbidden        401/403
    │   ├── KubeInvalid          422 (schema, CEL, admission)
    │   └── KubeUnavailable      connection refused, timeouts, 5xx
    ├── PeerError            the verification peer cannot run or cannot be read
    ├── StationError         the BMP station cannot run or cannot be read
    ├── LabError             the namespace lab or the control plane cannot be built/run
    └── VerifyError          verification could not be carried out (not a mismatch)
"""

from __future__ import annotations


class BgpflatError(Exception):
    """Root of every error bgpflat raises on purpose."""


class SpecError(BgpflatError):
    """Bad input. Carries where (file, field path, line) and, when known, how to fix it."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        path: str | None = None,
        line: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.path = path
        self.line = line
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        where = []
        if self.file:
            where.append(self.file if self.line is None else f"{self.file}:{self.line}")
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.path:
            where.append(self.path)
        text = f"{': '.join(where)}: {self.message}" if where else self.message
        if self.fix:
            text += f" (fix: {self.fix})"
        return text


class ValidationError(SpecError):
    """A Calico object breaks one of Calico's own validation rules."""


class PlanError(BgpflatError):
    """A plan cannot be made or applied as asked."""


class StalePlanError(PlanError):
    """A saved plan no longer matches what is in the cluster."""


class KubeError(BgpflatError):
    """The Kubernetes API refused a request or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None) -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)


class KubeNotFound(KubeError):
    """404: the object or the resource type does not exist."""


class KubeConflict(KubeError):
    """409: the object changed since it was read, or already exists."""


class KubeForbidden(KubeError):
    """401/403: the credentials may not do this."""


class KubeInvalid(KubeError):
    """422: the API server's schema, CEL rules or admission refused the object."""


class KubeUnavailable(KubeError):
    """The API server could not be reached or answered with a server error."""


class PeerError(BgpflatError):
    """The verification peer cannot run, or its state cannot be read."""


class StationError(BgpflatError):
    """The BMP station cannot run (address in use, state directory taken) or cannot be read."""


class LabError(BgpflatError):
    """The network-namespace lab or the local control plane cannot be built or run."""


class VerifyError(BgpflatError):
    """Verification could not be carried out (distinct from a route mismatch)."""
