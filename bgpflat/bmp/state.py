"""The BMP station's state directory: the shared layout of ``bgpflat.daemon.state``.

Layout of ``--state-dir DIR``::

    events.jsonl     one JSON object per line: routers connecting and going, Initiation, Peer Up
                     (with both OPENs), Peer Down, End-of-RIB, Termination, dropped sessions;
                     rotated by size like the peer's
    snapshot.json    routers, monitored peers and their tables, replaced atomically
    bmp.sock         the read-only local endpoint (unless --endpoint HOST:PORT is given)
    lock             held while a ``bgpflat bmp run`` uses the directory
"""

from __future__ import annotations

from bgpflat.daemon import state as shared
from bgpflat.errors import StationError


class StateDir(shared.StateDir):
    role = "bmp station"  # messages say "bgpflat bmp station"; the socket is DIR/bmp.sock
    error = StationError
