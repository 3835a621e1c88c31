"""Where ``verify`` (and ``apply --gate``) read learned routes from: a JSON file, the verification
peer (its endpoint, else its last snapshot), or one router of the BMP station.

Each source only needs a ``read()`` returning a ``LearnedState`` (``workflows.verify.LearnedSource``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bgpflat.cli.arguments.peer import DEFAULT_STATE_DIR
from bgpflat.errors import SpecError

if TYPE_CHECKING:
    from bgpflat.core.routes.table import RouteTable
    from bgpflat.core.routes.verdict import LearnedState


# ``freeze``: keep the routes read out of the cyclic collector's later passes (``gc.freeze``), for
# a command that reads them a bounded number of times. A source read forever (``--watch``, a gate)
# must not: a freeze also keeps whatever cyclic garbage exists at that moment for good.


class FileSource:
    """Learned routes from a JSON file, re-read on every poll (a peer may be rewriting it)."""

    def __init__(self, path: str, *, freeze: bool = False) -> None:
        self.path = path
        self.freeze = freeze

    def read(self) -> LearnedState:
        from bgpflat.adapters.collector import collector_paused
        from bgpflat.adapters.files.json_stream import Batch, read_json_streaming
        from bgpflat.core.routes.verdict import learned_from_json, routes_from_batches

        def to_table(batches: Iterator[Batch]) -> RouteTable:
            return routes_from_batches(batches, source=self.path)

        # A million records become routes batch by batch (the file whole as dicts would be a
        # gigabyte), without cyclic GC passes: none of them is garbage until the end (frozen, no
        # later pass walks them either; the first one would have cost a sixth of the read).
        with collector_paused(freeze=self.freeze):
            data, routes = read_json_streaming(self.path, list_key="routes", consume=to_table)
            return learned_from_json(data, source=self.path, routes=routes)


class PeerSource:
    """The running verification peer's endpoint, or else its last snapshot in the state directory."""

    def __init__(self, state_dir: str, endpoint: str | None, *, freeze: bool = False) -> None:
        self.state_dir = state_dir
        self.endpoint = endpoint
        self.freeze = freeze

    def read(self) -> LearnedState:
        from bgpflat.adapters.collector import collector_paused
        from bgpflat.core.routes.verdict import learned_from_json
        from bgpflat.peer.endpoint import fetch_running
        from bgpflat.peer.state import StateDir

        state = StateDir(Path(self.state_dir))
        live = fetch_running(state, self.endpoint, "/snapshot")
        with collector_paused(freeze=self.freeze):  # as for a file: routes, none of them garbage
            if live is not None:
                address, data = live
                return learned_from_json(data, source=f"peer {address}")
            return learned_from_json(state.read_snapshot(), source=str(state.snapshot))


class BmpSource:
    """What one router reported to the BMP station: its endpoint, or else its last snapshot."""

    def __init__(self, state_dir: str, endpoint: str | None, *, router: str, policy: str) -> None:
        self.state_dir = state_dir
        self.endpoint = endpoint
        self.router = router
        self.policy = policy

    def read(self) -> LearnedState:
        from bgpflat.bmp.records import learned_from_station
        from bgpflat.bmp.state import StateDir
        from bgpflat.daemon.endpoint import fetch_running

        state = StateDir(Path(self.state_dir))
        live = fetch_running(state, self.endpoint, "/snapshot")
        if live is not None:
            address, data = live
            return learned_from_station(data, router=self.router, policy=self.policy, source=f"bmp station {address}")
        data = state.read_snapshot()
        return learned_from_station(data, router=self.router, policy=self.policy, source=str(state.snapshot))


def learned_source(args: argparse.Namespace, *, forever: bool = False) -> FileSource | PeerSource | BmpSource:
    """The learned side of ``verify``, from its flags; a wrong combination is one line naming the flag.
    ``forever``: the source is read until the process is stopped (``--watch``)."""
    from bgpflat.core.net.prefixes import canonical_address

    if args.source is None:
        if args.router is not None:
            raise SpecError("--router names a router of the BMP station", path="--router", fix="add --source bmp:DIR")
        if args.learned:
            return FileSource(args.learned, freeze=not forever)
        return PeerSource(args.state_dir or DEFAULT_STATE_DIR, args.endpoint, freeze=not forever)
    kind, sep, where = args.source.partition(":")
    if kind != "bmp" or not sep or not where:
        raise SpecError(
            f"unknown source {args.source!r}", path="--source", fix="give bmp:DIR, DIR being the station's --state-dir"
        )
    if args.router is None:
        raise SpecError("--source bmp:DIR needs the router to verify", path="--router", fix="add --router IP")
    try:
        router = canonical_address(args.router)
    except SpecError as exc:
        raise SpecError(exc.message, path="--router", fix="give the router's IP address") from None
    return BmpSource(where, args.endpoint, router=router, policy=args.policy)


__all__ = ["BmpSource", "FileSource", "PeerSource", "learned_source"]
