"""The conformance lab's BIRDs: a bird and a bird6 per node namespace, as calico-node runs them.

They start with the first cell and are reloaded (``birdc configure``) for every later one, so
unchanged sessions (the mesh) stay up; only their sessions to the verification peer restart.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from bgpflat.errors import LabError
from bgpflat.lab.conformance import cases
from bgpflat.lab.fabric.bird_control import birdc
from bgpflat.lab.fabric.netns import NetnsLab
from bgpflat.lab.processes import program

# calico-node runs bird (bird.cfg) and bird6 (bird6.cfg) side by side; so does every lab node.
BIRDS = (("bird", "birdc", "bird.cfg"), ("bird6", "birdc6", "bird6.cfg"))
START_TIMEOUT = 10.0


def _protocol_suffix(address: str) -> str:
    """confd names a peer's BIRD protocol ``<Kind>_<address with _>``."""
    return "_" + address.replace(".", "_").replace(":", "_")


class NodeBirds:
    """bird and bird6 of each of ``nodes``, in the namespaces of ``netns``."""

    def __init__(self, netns: NetnsLab, nodes: Sequence[cases.BaseNode]) -> None:
        self.netns = netns
        self.nodes = tuple(nodes)
        self._started = False

    def namespace(self, node: str) -> str:
        return self.netns.namespace_name(f"node-{node}")

    def directory(self, node: str) -> Path:
        """Where ``node``'s BIRD configurations and control sockets live."""
        return self.netns.state_dir / "bird" / node

    def birdc(self, node: str, *command: str, bird: str = "bird") -> str:
        """``birdc`` (``bird="bird6"``: ``birdc6``) on ``node``'s control socket."""
        client = "birdc6" if bird == "bird6" else "birdc"
        return birdc(self.directory(node) / f"{bird}.ctl", *command, client=client, where=f" on {node}")

    def load(self) -> None:
        """Start the BIRDs (first cell) or reload them; then restart their sessions to the peer.

        A reload keeps unchanged sessions (the mesh) up. The sessions to the peer are restarted
        either way: they must start from scratch against the new peer, and a protocol that lost
        its peer a moment ago may be waiting out BIRD's connect-retry timer.
        """
        if not self._started:
            self._start()
            return
        for node in self.nodes:
            for bird, _, _ in BIRDS:
                self.netns.check_alive(f"{bird}:{node.name}")
                answer = self.birdc(node.name, "configure", bird=bird)
                if "Reconfigur" not in answer:  # stock BIRD refused confd's files: say why
                    raise LabError(f"{bird} on {node.name} did not take the new configuration: {answer.strip()}")
                for name, _, _ in self._peer_protocols(node.name, bird):
                    self.birdc(node.name, "restart", name, bird=bird)

    def _start(self) -> None:
        for node in self.nodes:
            directory = self.directory(node.name)
            for bird, _, config in BIRDS:
                self.netns.start(
                    f"{bird}:{node.name}",
                    self.namespace(node.name),
                    [program(bird), "-f", "-c", str(directory / config), "-s", str(directory / f"{bird}.ctl")],
                    log=self.netns.state_dir / "logs" / f"{bird}-{node.name}.log",
                    cwd=directory,
                )
        deadline = time.monotonic() + START_TIMEOUT
        for node in self.nodes:
            for bird, _, _ in BIRDS:
                while not (self.directory(node.name) / f"{bird}.ctl").exists():
                    self.netns.check_alive(f"{bird}:{node.name}")
                    if time.monotonic() > deadline:
                        raise LabError(f"{bird} on {node.name} has no control socket after {START_TIMEOUT:g} s")
                    time.sleep(0.02)
        self._started = True

    def protocols(self, node: str, bird: str = "bird") -> list[tuple[str, str, str]]:
        """The BGP protocols of ``node``'s ``bird`` (or ``bird6``): (name, state, info)."""
        out = []
        for line in self.birdc(node, "show", "protocols", bird=bird).splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "BGP":
                out.append((parts[0], parts[3], " ".join(parts[5:]) if len(parts) > 5 else ""))
        return out

    def _peer_protocols(self, node: str, bird: str) -> list[tuple[str, str, str]]:
        """``node``'s ``bird`` protocols toward the verification peer: (name, state, info)."""
        suffixes = tuple(_protocol_suffix(a) for a in (cases.PEER_ADDRESS, cases.PEER_ADDRESS6))
        return [p for p in self.protocols(node, bird) if p[0].endswith(suffixes)]

    def peer_sessions_waiting(self, *, restart: bool) -> list[str]:
        """The nodes' sessions to the peer not Established, with BIRD's reason; ``restart`` restarts them."""
        waiting = []
        for node in self.nodes:
            for bird, _, _ in BIRDS:
                for name, state, info in self._peer_protocols(node.name, bird):
                    if info.startswith("Established"):
                        continue
                    waiting.append(f"{node.name} {bird} {name} ({info or state})")
                    if restart:
                        self.birdc(node.name, "restart", name, bird=bird)
        return waiting

    def sessions_down(self) -> list[str]:
        """BGP sessions of the nodes' BIRDs (mesh, route reflection, the peer) not Established, with BIRD's reason."""
        return [
            f"{node.name} {bird} {name} ({info or state})"
            for node in self.nodes
            for bird, _, _ in BIRDS
            for name, state, info in self.protocols(node.name, bird)
            if not info.startswith("Established")
        ]
