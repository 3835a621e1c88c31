"""The verification peer of a conformance cell: ``bgpflat peer run`` in the peer namespace, fresh per cell.

A fresh state directory per cell makes End-of-RIB mean "this cell's table is complete". The peer
listens on each of the cell's peer addresses (IPv4, IPv6 or both: one ExaBGP serves both families)
and accepts any node address of the matching subnet with one AS, or (``peer_from_snapshot``)
exactly the nodes the cell's BGPPeers select, each with its own AS.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bgpflat.errors import LabError
from bgpflat.lab.conformance import cases
from bgpflat.lab.fabric.netns import NetnsLab, ns_argv, run
from bgpflat.lab.fabric.node_confd import package_root
from bgpflat.lab.processes import program

LISTEN_TIMEOUT = 20.0
# ``bgpflat peer run`` with only the peer's command group registered, so the verification peer
# does not depend on every other command group of the CLI being importable and well.
PEER_ENTRY = (
    "import argparse, sys\n"
    "from bgpflat.cli import peer_commands\n"
    "parser = argparse.ArgumentParser(prog='bgpflat')\n"
    "peer_commands.register(parser.add_subparsers(dest='command', required=True))\n"
    "args = parser.parse_args()\n"
    "sys.exit(args.func(args))\n"
)


class CellPeer:
    """At most one running verification peer, in ``namespace`` of ``netns``."""

    def __init__(self, netns: NetnsLab, *, namespace: str) -> None:
        self.netns = netns
        self.namespace = namespace
        self._process: str | None = None
        self._dir: Path | None = None
        self._started = 0
        self._listen: tuple[str, ...] = ()

    def start(self, situation: cases.Situation, *, objects: Sequence[Mapping[str, Any]] = ()) -> None:
        """The verification peer for ``situation``; ``objects`` are the cluster's, for ``peer_from_snapshot``."""
        # A short path: the peer binds unix sockets there, and sun_path holds only 108 bytes.
        self._started += 1
        state_dir = Path(str(self.netns.state.info["peer_root"])) / f"{self._started:02d}"
        shutil.rmtree(state_dir, ignore_errors=True)
        if situation.peer_from_snapshot:
            snapshot = self.netns.state_dir / f"objects-{situation.name}.json"  # JSON is YAML too
            snapshot.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))
            neighbors = ["--from-snapshot", str(snapshot)]
        else:
            neighbors = ["--peer-as", str(situation.cluster_as_seen)]
            for address in situation.peer_addresses:
                neighbors += ["--neighbor-range", cases.SUBNET if address == cases.PEER_ADDRESS else cases.SUBNET6]
        listen = [arg for address in situation.peer_addresses for arg in ("--listen", address)]
        argv = [
            sys.executable, "-c", PEER_ENTRY, "peer", "run",
            *listen,
            "--router-id", cases.PEER_ADDRESS,  # needed when it listens on IPv6 only
            "--local-as", str(situation.peer_as),
            *neighbors,
            "--passive",
            "--state-dir", str(state_dir),
            *([] if situation.add_path else ["--no-add-path"]),
        ]  # fmt: skip
        path = os.pathsep.join(filter(None, (package_root(), os.environ.get("PYTHONPATH"))))
        name = f"peer:{situation.name}"
        self.netns.start(
            name,
            self.namespace,
            argv,
            log=self.netns.state_dir / "logs" / f"peer-{situation.name}.log",
            env={**os.environ, "PYTHONPATH": path},
        )
        self._process = name
        self._dir = state_dir
        self._listen = situation.peer_addresses

    def wait_listening(self) -> None:
        name = self._process
        if name is None:
            raise LabError("the verification peer is not running")
        # ss writes an IPv6 socket address as [fd77::250]:179
        wanted = [f"[{a}]:179" if ":" in a else f"{a}:179" for a in self._listen]
        ss = program("ss")
        deadline = time.monotonic() + LISTEN_TIMEOUT
        while True:
            self.netns.check_alive(name)
            listening = run(ns_argv(self.namespace, [ss, "-Hltn"]), check=False)
            missing = [w for w in wanted if w not in listening]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise LabError(
                    f"the verification peer does not listen on {', '.join(missing)} after {LISTEN_TIMEOUT:g} s"
                )
            time.sleep(0.05)

    def state_dir(self) -> Path:
        if self._dir is None:
            raise LabError("the verification peer is not running")
        return self._dir

    def stop(self) -> None:
        if self._process is not None:
            self.netns.stop([self._process])
            self._process = None
            self._dir = None
