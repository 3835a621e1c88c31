"""The peer's read-only local endpoint: the shared one (``bgpflat.daemon.endpoint``), under the name
its callers (the CLI, the lab, tests) import it by."""

from __future__ import annotations

from bgpflat.daemon.endpoint import PATHS, Endpoint, EndpointUnavailable, Provider, fetch, fetch_running, parse_endpoint

__all__ = ["PATHS", "Endpoint", "EndpointUnavailable", "Provider", "fetch", "fetch_running", "parse_endpoint"]
