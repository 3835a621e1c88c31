"""Setups that add to the namespace fabric (``bgpflat.lab.fabric``) what the fabric alone does not have.

A scenario's ``topology.yaml`` names its ``mode``; the fabric builds the cluster side of every mode
(API server, nodes, pods, Services, cluster DNS) and the modes it knows itself (``bgp``,
``static-nat``). A setup here brings the rest of its mode: its own hosts and daemons at ``lab up``
(through ``Lab.up``'s ``extend`` hook, so a failure still takes everything down) and its own
``lab check`` sequence. ``up`` and ``run_check`` are what the command line calls for every scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bgpflat.lab.fabric import check
from bgpflat.lab.fabric.lifecycle import Extend, Lab
from bgpflat.lab.fabric.topology import MODE_EDGE_NODE, load_topology
from bgpflat.lab.setups import edge_node, openvpn
from bgpflat.lab.setups.edge_check import EdgeNodeCheck
from bgpflat.lab.setups.openvpn_check import OpenVpnCheck

# mode -> (what `up` adds, the check sequence, the hint lines `lab up` prints)
EXTENSIONS: dict[str, tuple[Extend, type[check.LabCheck], Callable[[Lab], list[str]]]] = {
    openvpn.MODE: (openvpn.build, OpenVpnCheck, openvpn.hints),
    # The edge node's hints are the static-NAT ones with the DHCP lines (``lab up`` prints them).
    MODE_EDGE_NODE: (edge_node.start, EdgeNodeCheck, lambda _lab: []),
}


def up(
    scenario: str,
    *,
    state_dir: Path | None = None,
    control_plane: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Lab:
    """``Lab.up`` with the scenario's setup added, when its mode has one."""
    from bgpflat.lab.controlplane.seed import load_scenario

    mode = load_topology(load_scenario(scenario).directory).mode
    extension = EXTENSIONS.get(mode)
    return Lab.up(
        scenario,
        state_dir=state_dir,
        control_plane=control_plane,
        progress=progress,
        extend=extension[0] if extension else None,
    )


def run_check(
    lab: Lab, *, verify_timeout: float = check.VERIFY_TIMEOUT, progress: Callable[[str], None] | None = None
) -> check.CheckReport:
    """The check sequence of the lab's mode: a setup's own, or the fabric's."""
    extension = EXTENSIONS.get(lab.fabric().topology.mode)
    if extension is None:
        return check.run_check(lab, verify_timeout=verify_timeout, progress=progress)
    return extension[1](lab, verify_timeout=verify_timeout, progress=progress).run()


def hints(lab: Lab) -> list[str]:
    """What ``lab up`` prints for a setup's lab (how to look at it); empty for the fabric's modes."""
    extension = EXTENSIONS.get(lab.fabric().topology.mode)
    return extension[2](lab) if extension else []
