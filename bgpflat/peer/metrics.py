"""The verification peer's Prometheus metrics (``bgpflat peer run --metrics-listen``).

Built on each scrape from ``PeerRuntime.status()``, the same picture ``bgpflat peer status``
shows, so the two never disagree. Sessions are labelled by ``neighbor`` (the node's address);
families as ExaBGP names them (``ipv4 unicast``).
"""

from __future__ import annotations

from typing import Any, Protocol

from bgpflat.core.exabgp.config import FAMILIES
from bgpflat.core.exabgp.rib import CONNECTING, DOWN, IDLE, UP
from bgpflat.daemon.metrics import COUNTER, GAUGE, Family, single

STATES = (IDLE, CONNECTING, UP, DOWN)


class PeerView(Protocol):
    def status(self) -> dict[str, Any]: ...

    def family_prefixes(self) -> dict[str, dict[str, int]]: ...


def peer_families(peer: PeerView) -> list[Family]:
    status = peer.status()
    by_family = peer.family_prefixes()
    sessions = Family("bgpflat_peer_sessions", GAUGE, "BGP sessions of the verification peer, by state", ("state",))
    state = Family(
        "bgpflat_peer_session_state", GAUGE, "1 for the state each session is in", ("neighbor", "peer_as", "state")
    )
    prefixes = Family(
        "bgpflat_peer_prefixes", GAUGE, "Distinct prefixes learned per session and family", ("neighbor", "family")
    )
    paths = Family("bgpflat_peer_paths", GAUGE, "Paths held per session (ADD-PATH paths counted apart)", ("neighbor",))
    eor = Family(
        "bgpflat_peer_end_of_rib",
        GAUGE,
        "1 once End-of-RIB arrived for the family since the session came up",
        ("neighbor", "family"),
    )
    stale = Family(
        "bgpflat_peer_stale_paths", GAUGE, "Paths from an earlier connection, not re-sent yet", ("neighbor",)
    )
    updates = Family("bgpflat_peer_updates_received", COUNTER, "BGP UPDATE messages received", ("neighbor",))
    announced = Family("bgpflat_peer_announced_paths_received", COUNTER, "Paths announced in UPDATEs", ("neighbor",))
    withdraws = Family(
        "bgpflat_peer_withdraws_received", COUNTER, "Paths withdrawn in UPDATEs (unknown ones included)", ("neighbor",)
    )
    attempts = Family(
        "bgpflat_peer_connect_attempts", COUNTER, "Connection attempts while the neighbor was absent", ("neighbor",)
    )
    counts = dict.fromkeys(STATES, 0)
    for session in status["sessions"]:
        neighbor = str(session["peer"])
        counts[session["state"]] = counts.get(session["state"], 0) + 1
        peer_as = "" if session.get("peer_as") is None else str(session["peer_as"])
        for name in STATES:
            state.add(1.0 if name == session["state"] else 0.0, neighbor, peer_as, name)
        held = by_family.get(neighbor, {})
        for family in FAMILIES:
            prefixes.add(float(held.get(family, 0)), neighbor, family)
        paths.add(float(session["paths"]), neighbor)
        seen = set(session.get("eor") or {})
        for family in sorted(set(session.get("families") or ()) | seen):
            eor.add(1.0 if family in seen else 0.0, neighbor, family)
        stale.add(float(session.get("stale_paths", 0)), neighbor)
        updates.add(float(session["updates"]), neighbor)
        announced.add(float(session["announced"]), neighbor)
        withdraws.add(float(session["withdrawn"] + session["unknown_withdraws"]), neighbor)
        attempts.add(float(session["connect_attempts"]), neighbor)
    for name, count in counts.items():
        sessions.add(float(count), name)
    exabgp = status["exabgp"]
    counters = status["counters"]
    return [
        sessions,
        state,
        prefixes,
        paths,
        eor,
        stale,
        updates,
        announced,
        withdraws,
        attempts,
        single("bgpflat_peer_exabgp_restarts", COUNTER, "Times ExaBGP was restarted", exabgp["restarts"]),
        single("bgpflat_peer_exabgp_up", GAUGE, "1 while ExaBGP runs", 1 if exabgp["running"] else 0),
        single("bgpflat_peer_malformed_lines", COUNTER, "ExaBGP lines that could not be read", counters["malformed"]),
        single(
            "bgpflat_peer_unsupported_nlri",
            COUNTER,
            "NLRI of other families than unicast",
            counters["unsupported"],
        ),
    ]
