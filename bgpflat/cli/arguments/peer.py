"""``bgpflat peer run``'s settings: flags over a ``--config`` file -> a validated ``PeerConfig``.

The neighbors come either by hand (``--neighbor``, ``--neighbor-range``) or from Calico's BGPPeers
(``--from-snapshot``, ``--from-cluster``): the nodes that open a session to this peer's address.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bgpflat.cli.output import info
from bgpflat.errors import PeerError, SpecError

if TYPE_CHECKING:
    from bgpflat.core.exabgp.config import PeerConfig

PASSWORD_ENV = "BGPFLAT_PEER_PASSWORD"
DEFAULT_STATE_DIR = "bgpflat-peer"

_FILE_KEYS = {
    "local_as",
    "router_id",
    "listen",
    "neighbor",
    "neighbors",
    "neighbor_range",
    "neighbor_ranges",
    "peer_as",
    "from_snapshot",
    "hold_time",
    "password_file",
    "add_path",
    "passive",
    "port",
    "state_dir",
    "endpoint",
    "exabgp",
    "events_max_bytes",
    "metrics_listen",
}


def load_config_file(path: str) -> dict[str, Any]:
    """``--config FILE``: one mapping whose keys are the flags' (``local-as`` or ``local_as``)."""
    from bgpflat.adapters.files import load_documents

    documents = load_documents(path)
    if len(documents) > 1:
        raise SpecError("expected one YAML document", file=path, line=documents[1].line)
    data = documents[0].data if documents else {}
    if not isinstance(data, dict):
        raise SpecError("the peer config must be a mapping", file=path)
    settings = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = set(settings) - _FILE_KEYS
    if unknown:
        raise SpecError(f"unknown keys {sorted(unknown)}", file=path, fix=f"use {sorted(_FILE_KEYS)}")
    for plural, singular in (("neighbors", "neighbor"), ("neighbor_ranges", "neighbor_range")):
        if plural in settings:
            settings[singular] = settings.pop(plural)
    return settings


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def collect_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The config file's settings with the flags given on the command line on top."""
    settings = load_config_file(args.config) if args.config else {}
    for key in _FILE_KEYS:
        value = getattr(args, key, None)
        if value is not None and value != []:
            settings[key] = value
    if args.from_cluster:
        settings.pop("from_snapshot", None)
    return settings


def _password(settings: Mapping[str, Any]) -> str | None:
    path = settings.get("password_file")
    if path:
        try:
            text = Path(str(path)).read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(f"cannot read the password file: {exc.strerror}", file=str(path)) from None
        password = text.rstrip("\r\n")
        if not password:
            raise SpecError("the password file is empty", file=str(path))
        return password
    return os.environ.get(PASSWORD_ENV) or None


def build_config(args: argparse.Namespace, settings: Mapping[str, Any]) -> PeerConfig:
    """Flags and config file -> a validated ``PeerConfig``."""
    from bgpflat.core.exabgp import config as exabgp_conf
    from bgpflat.core.net.prefixes import parse_address
    from bgpflat.peer import cluster

    listen = _as_list(settings.get("listen"))
    if not listen:
        raise SpecError("no local address", fix="give --listen ADDR (the address the nodes' BGPPeer points at)")
    for address in listen:
        _check_address(address, "--listen", fix="give the bare address; the port is --port")
    by_hand = _as_list(settings.get("neighbor")) + _as_list(settings.get("neighbor_range"))
    from_calico = bool(settings.get("from_snapshot")) or bool(getattr(args, "from_cluster", False))
    if by_hand and from_calico:
        raise SpecError(
            "--neighbor/--neighbor-range and --from-snapshot/--from-cluster both choose the neighbors",
            fix="give the neighbors either by hand or from Calico's BGPPeers, not both",
        )
    if (args.kubeconfig or args.context) and not getattr(args, "from_cluster", False):
        raise SpecError("--kubeconfig and --context are read only with --from-cluster", fix="add --from-cluster")
    peer_as = _setting_as(settings, "peer_as", "--peer-as")
    neighbors: list[exabgp_conf.Neighbor] = []
    local_as = _setting_as(settings, "local_as", "--local-as")
    for key, flag in (("neighbor", "--neighbor"), ("neighbor_range", "--neighbor-range")):
        for address in _as_list(settings.get(key)):
            if peer_as is None:
                raise SpecError(f"no AS for neighbor {address}", fix="give --peer-as")
            try:
                neighbors.append(exabgp_conf.neighbor(address, peer_as=peer_as))
            except SpecError as exc:
                raise SpecError(exc.message, path=flag, fix=exc.fix) from None
    objects: list[dict[str, Any]] | None = None
    if settings.get("from_snapshot"):
        objects = _snapshot_objects(str(settings["from_snapshot"]))
    elif getattr(args, "from_cluster", False):
        objects = cluster.read_cluster_objects(kubeconfig=args.kubeconfig, context=args.context)
    if objects is not None:
        peering = cluster.select_neighbors(
            objects=objects, local_addresses=listen, peer_as=None if peer_as is None else int(peer_as)
        )
        for reason in peering.skipped:
            info(f"bgpflat peer: {reason}")
        if not peering.bgp_peers:
            raise PeerError(
                f"no BGPPeer has peerIP {' or '.join(listen)}; no node would peer here (fix: check --listen, "
                "or create the BGPPeer that points at this address)"
            )
        if local_as is None:
            local_as = peering.local_as
        elif peering.local_as is not None and peering.local_as != local_as:
            info(
                f"bgpflat peer: warning: BGPPeer {', '.join(peering.bgp_peers)} expects AS "
                f"{peering.local_as}, running as {local_as}"
            )
        neighbors.extend(n for n in peering.neighbors if n.address not in {m.address for m in neighbors})
        info(f"bgpflat peer: {len(peering.neighbors)} node(s) selected by BGPPeer {', '.join(peering.bgp_peers)}")
    if local_as is None:
        raise SpecError("no local AS", fix="give --local-as")
    router_id = settings.get("router_id") or next((a for a in listen if parse_address(a)[0] == 4), None)
    if router_id is None:
        raise SpecError("no router id", fix="give --router-id (an IPv4 address)")
    # "is None", not "or": --port 0 and --hold-time 0 are values to check, not "unset".
    port = setting_int(settings, "port", "--port", default=179, low=1, high=65535)
    hold_time = setting_int(settings, "hold_time", "--hold-time", default=90, low=0, high=65535)
    config = exabgp_conf.PeerConfig(
        local_as=local_as,
        router_id=str(router_id),
        local_addresses=tuple(listen),
        neighbors=tuple(neighbors),
        hold_time=hold_time,
        md5_password=_password(settings),
        add_path=bool(settings.get("add_path", True)),
        passive=bool(settings.get("passive", False)),
        listen_port=port,
        connect_port=port,
    )
    exabgp_conf.validate(config)
    return config


def _check_address(text: str, flag: str, *, fix: str) -> None:
    from bgpflat.core.net.prefixes import canonical_address

    try:
        canonical_address(text)
    except SpecError as exc:
        raise SpecError(exc.message, path=flag, fix=fix) from None


def _setting_as(settings: Mapping[str, Any], key: str, flag: str) -> int | None:
    from bgpflat.core.calico import parse_as_number

    value = settings.get(key)
    if value is None:
        return None
    try:
        return parse_as_number(value)
    except SpecError as exc:
        raise SpecError(exc.message, path=flag, fix=exc.fix) from None


def setting_int(settings: Mapping[str, Any], key: str, flag: str, *, default: int, low: int, high: int) -> int:
    value = settings.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"expected a whole number, got {value!r}", path=flag, fix=f"use {low}-{high}")
    if not low <= value <= high:
        raise SpecError(f"{value} is out of range", path=flag, fix=f"use {low}-{high}")
    return value


def _snapshot_objects(path: str) -> list[dict[str, Any]]:
    """``--from-snapshot``: any file of Kubernetes objects, read and checked like every other input."""
    from bgpflat.adapters.files import load_documents
    from bgpflat.peer.cluster import flatten_objects

    documents = load_documents(path)
    if not documents:
        raise SpecError("empty file", file=path, fix="give a snapshot, e.g. from `bgpflat snapshot --output-file FILE`")
    for doc in documents:
        if not isinstance(doc.data, dict) or not doc.data.get("kind"):
            raise SpecError(
                "not a Kubernetes object (no kind)",
                file=path,
                line=doc.line,
                fix="give Nodes and BGPPeers, e.g. a snapshot from `bgpflat snapshot --output-file FILE`",
            )
    return flatten_objects(doc.data for doc in documents)
