"""The tables a BMP station keeps per router, by the names the CLI and the state files use: what
a monitored peer sent (pre-policy), what the router kept of it (post-policy, RFC 7854) and what it
selected as best across its peers (Loc-RIB, RFC 9069).

A module of its own, without the decoders: every CLI start reads these names for its flags.
"""

from __future__ import annotations

PRE_POLICY, POST_POLICY, LOC_RIB = "pre", "post", "loc-rib"
POLICIES = (PRE_POLICY, POST_POLICY, LOC_RIB)


def policy_name(policy: str) -> str:
    """A table as people say it: "pre-policy", "post-policy", "Loc-RIB"."""
    return "Loc-RIB" if policy == LOC_RIB else f"{policy}-policy"
