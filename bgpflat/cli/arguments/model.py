"""``--peer``, ``--peer-as``, ``--calico-version``, ``--no-add-path``: the route model's settings."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bgpflat.errors import SpecError

if TYPE_CHECKING:
    from bgpflat.core.routes.expected import ModelOptions, OutsidePeer


def outside_peer(args: argparse.Namespace) -> OutsidePeer:
    """``--peer``/``--peer-as`` as the model's outside peer; a port in ``--peer`` is refused."""
    from bgpflat.core.net.prefixes import canonical_address
    from bgpflat.core.routes.expected import OutsidePeer

    try:
        address = canonical_address(args.peer)
    except SpecError as exc:
        raise SpecError(
            exc.message, path="--peer", fix="give the peer's bare IP address: a BGPPeer's peerIP without a port"
        ) from None
    return OutsidePeer(address=address, as_number=args.peer_as)


def model_options(args: argparse.Namespace) -> ModelOptions:
    from bgpflat.core.routes.expected import ModelOptions

    return ModelOptions(calico_version=args.calico_version, add_path=args.add_path)
