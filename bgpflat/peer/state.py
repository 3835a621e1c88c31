"""The peer's state directory: the shared layout (``bgpflat.daemon.state``) plus ExaBGP's files.

Layout of ``--state-dir DIR``::

    events.jsonl     one JSON object per line: sessions, End-of-RIB, updates, ExaBGP lifecycle;
                     rotated by size to events.jsonl.1 .. .3 (see ``EVENTS_MAX_BYTES``)
    snapshot.json    sessions + learned routes, replaced atomically (readers never see half a file)
    exabgp.conf      the generated receive-only config (mode 0600: it may hold the MD5 password)
    exabgp.log       ExaBGP's own output (session changes, not routes); when ExaBGP is
                     (re)started and the log is past the events size limit, it becomes exabgp.log.1
    collector.sock   where the collector that ExaBGP runs connects
    peer.sock        the read-only local endpoint (unless --endpoint HOST:PORT is given)
    lock             held while a ``bgpflat peer run`` uses the directory
"""

from __future__ import annotations

from pathlib import Path

from bgpflat.daemon import state as shared
from bgpflat.daemon.state import EVENTS_GENERATIONS, EVENTS_MAX_BYTES, FORMAT_VERSION, iso_time


class StateDir(shared.StateDir):
    """The shared state directory, with the files of ExaBGP and its collector."""

    def __init__(
        self, path: Path, *, events_max_bytes: int = EVENTS_MAX_BYTES, events_generations: int = EVENTS_GENERATIONS
    ) -> None:
        super().__init__(path, events_max_bytes=events_max_bytes, events_generations=events_generations)
        self.exabgp_conf = path / "exabgp.conf"
        self.exabgp_log = path / "exabgp.log"
        self.collector_sock = path / "collector.sock"

    def sockets(self) -> tuple[Path, ...]:
        return (self.collector_sock, self.endpoint_sock)


__all__ = ["EVENTS_GENERATIONS", "EVENTS_MAX_BYTES", "FORMAT_VERSION", "StateDir", "iso_time"]
