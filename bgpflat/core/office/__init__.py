"""The other side of the flat network, as text: router (``tor/``), DNS, NAT, static-route and VPN configs.

Every renderer is a pure function of an ``OfficeIntent`` (``intent.build_intent``) and a few
options, so the same spec and cluster state always print the same bytes.
"""

from __future__ import annotations

from bgpflat.core.office.intent import OfficeIntent, build_intent
from bgpflat.core.office.tor import TOR_VENDORS, BmpStation, render_tor, router_view

__all__ = ["TOR_VENDORS", "BmpStation", "OfficeIntent", "build_intent", "render_tor", "router_view"]
