"""The receive-only ExaBGP 5.0 configuration of the verification peer, as text.

What makes it receive-only: no ``static``/``announce`` blocks, and the API process is only ever
given ``receive`` directives, never ``send``; the collector it runs never writes to ExaBGP. The
neighbor's received-routes table from this peer therefore stays empty.

Choices taken from exabgp-lab-notes §4 and §6:

* ``adj-rib-in false``: bgpflat keeps its own RIB; ExaBGP's copy costs ~40 % speed and 3.5x memory;
* per-neighbor keys (``local-address``, ``router-id``) are written in each neighbor, never in a
  template, because a template value silently overrides the neighbor's;
* neighbor ranges are only legal with ``passive``, which ExaBGP requires for them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from bgpflat.core.net.prefixes import Prefix, canonical_address, parse_address
from bgpflat.errors import SpecError

FAMILIES = ("ipv4 unicast", "ipv6 unicast")
PROCESS_NAME = "bgpflat-collector"
MAX_ASN = 0xFFFFFFFF


@dataclass(frozen=True, slots=True, kw_only=True)
class Neighbor:
    """One neighbor stanza: a single address (active or passive) or a range (always passive)."""

    address: str
    peer_as: int
    description: str = ""

    @property
    def is_range(self) -> bool:
        return "/" in self.address

    @property
    def version(self) -> int:
        return Prefix.parse(self.address).version if self.is_range else parse_address(self.address)[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerConfig:
    local_as: int
    router_id: str
    local_addresses: tuple[str, ...]
    neighbors: tuple[Neighbor, ...]
    hold_time: int = 90
    md5_password: str | None = None
    add_path: bool = True
    passive: bool = False
    listen_port: int = 179
    connect_port: int = 179
    graceful_restart: int | None = 120
    families: tuple[str, ...] = FAMILIES


def neighbor(address: str, *, peer_as: int, description: str = "") -> Neighbor:
    """A validated neighbor: canonical address, or a network-aligned range."""
    text = address.strip()
    canonical = str(Prefix.parse(text)) if "/" in text else canonical_address(text)
    check_asn(peer_as, what="peer AS")
    return Neighbor(address=canonical, peer_as=peer_as, description=description)


def check_asn(value: int, *, what: str) -> None:
    if not 1 <= value <= MAX_ASN:
        raise SpecError(f"{what} {value} is out of range", fix="use 1 to 4294967295")


def validate(config: PeerConfig) -> None:
    """Refuse configurations ExaBGP would reject or, worse, accept and run wrongly."""
    check_asn(config.local_as, what="local AS")
    if parse_address(config.router_id)[0] != 4:
        raise SpecError(f"router id {config.router_id!r} must be an IPv4 address")
    if not config.neighbors:
        raise SpecError("no neighbors", fix="give --neighbor, --neighbor-range, --from-snapshot or --from-cluster")
    if not config.local_addresses:
        raise SpecError("no local address", fix="give --listen ADDR")
    versions = [parse_address(a)[0] for a in config.local_addresses]
    if len(set(versions)) != len(versions):
        raise SpecError("give at most one local address per address family")
    for item in config.neighbors:
        if item.version not in versions:
            raise SpecError(
                f"neighbor {item.address} has no local address of its family",
                fix=f"add --listen with an IPv{item.version} address",
            )
    if not 0 <= config.hold_time <= 65535 or 0 < config.hold_time < 3:
        raise SpecError(f"hold time {config.hold_time} is invalid", fix="use 0 or 3 to 65535 seconds")
    for port in (config.listen_port, config.connect_port):
        if not 1 <= port <= 65535:
            raise SpecError(f"port {port} is out of range")
    if config.md5_password is not None and not 1 <= len(config.md5_password) <= 80:
        raise SpecError("the MD5 password must be 1 to 80 characters (Calico's limit)")
    unknown = set(config.families) - set(FAMILIES)
    if unknown or not config.families:
        raise SpecError(f"unsupported families {sorted(unknown)}", fix="ipv4 unicast and/or ipv6 unicast")


def render(config: PeerConfig, *, collector_command: str) -> str:
    """The ExaBGP config text; ``collector_command`` is the API process's command line."""
    validate(config)
    if any(c in collector_command for c in ";{}\n"):
        raise SpecError("the collector command contains characters ExaBGP's parser splits on")
    local_by_version = {parse_address(a)[0]: canonical_address(a) for a in config.local_addresses}
    lines = [
        "# Written by bgpflat peer run: a receive-only verification peer. It announces nothing.",
        f"process {PROCESS_NAME} {{",
        f"    run {collector_command};",
        "    encoder json;",
        "}",
        "",
        "template {",
        "    neighbor bgpflat-receive-only {",
        f"        local-as {config.local_as};",
        f"        hold-time {config.hold_time};",
        "        adj-rib-in false;",
        "        family {",
        *(f"            {family};" for family in config.families),
        "        }",
        "        capability {",
        *([f"            graceful-restart {config.graceful_restart};"] if config.graceful_restart else []),
        *(["            add-path receive;"] if config.add_path else []),
        "            route-refresh;",
        "        }",
        "        api {",
        f"            processes [ {PROCESS_NAME} ];",
        "            neighbor-changes;",
        "            negotiated;",
        "            receive {",
        "                parsed;",
        "                update;",
        "                open;",
        "                notification;",
        "            }",
        "        }",
        "    }",
        "}",
    ]
    for item in sorted(config.neighbors, key=lambda n: (n.version, n.address)):
        passive = config.passive or item.is_range
        lines += [
            "",
            f"neighbor {item.address} {{",
            "    inherit bgpflat-receive-only;",
            f"    router-id {config.router_id};",
            f"    local-address {local_by_version[item.version]};",
            f"    peer-as {item.peer_as};",
        ]
        if item.description:
            lines.append(f'    description "{_quote_free(item.description)}";')
        if passive:
            lines += ["    passive true;", f"    listen {config.listen_port};"]
        elif config.connect_port != 179:
            lines.append(f"    connect {config.connect_port};")
        if config.md5_password is not None:
            # base64 keeps any character of the password away from ExaBGP's tokeniser.
            encoded = base64.b64encode(config.md5_password.encode()).decode()
            lines += [f'    md5-password "{encoded}";', "    md5-base64 true;"]
        lines.append("}")
    return "\n".join(lines) + "\n"


def _quote_free(text: str) -> str:
    return "".join(c for c in text if c.isprintable() and c not in '";{}')
