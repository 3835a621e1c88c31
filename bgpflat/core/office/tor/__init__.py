"""ToR and router configs: the neighbour side of the BGPPeers that point at one router, per vendor.

``router.router_view`` turns an ``OfficeIntent`` into what every vendor renders (neighbours,
prefix filters, an optional BMP station); one module per vendor family prints it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from bgpflat.core.office.intent import OfficeIntent
from bgpflat.core.office.tor.bird import render_bird
from bgpflat.core.office.tor.bmp import BmpStation
from bgpflat.core.office.tor.cisco import render_ios, render_nxos
from bgpflat.core.office.tor.eos import render_eos
from bgpflat.core.office.tor.frr import render_frr
from bgpflat.core.office.tor.junos import render_junos
from bgpflat.core.office.tor.router import RouterView, router_view

TOR_RENDERERS: dict[str, Callable[[RouterView], str]] = {
    "frr": render_frr,
    "bird": render_bird,
    "cisco-ios": render_ios,
    "nxos": render_nxos,
    "junos": render_junos,
    "eos": render_eos,
}
TOR_VENDORS = tuple(TOR_RENDERERS)


def render_tor(intent: OfficeIntent, *, vendor: str, peer: str | None = None, bmp: BmpStation | None = None) -> str:
    """The neighbour side of the BGPPeers that point at one router (and its BMP station, if given)."""
    return TOR_RENDERERS[vendor](dataclasses.replace(router_view(intent, peer=peer), bmp=bmp))


__all__ = ["TOR_RENDERERS", "TOR_VENDORS", "BmpStation", "render_tor", "router_view"]
