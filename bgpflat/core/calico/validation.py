"""Calico's validation rules for IPPool, BGPPeer, BGPConfiguration and BGPFilter, client-side.

calicoctl, clientv3 and the Calico API server run these rules (``libcalico-go/lib/validator/v3``
plus the defaulting and checks of ``libcalico-go/lib/clientv3``); a write to the
``crd.projectcalico.org/v1`` CRDs runs almost none of them (calico-facts §1.1, §2.1). bgpflat runs
them before every write, whatever the API flavour, so that a bad object is refused with a message
and a fix instead of breaking calico-node later (calico#5941).

The rule of this module: a manifest Calico accepts is never refused. What bgpflat finds odd about
an object Calico accepts (a peer with no peerIP, a community nobody uses) is ``Advice``, returned
as a warning. Rules that differ between releases follow the ``CalicoRelease`` given.

Each refusal raises ``ValidationError`` with the path (``spec.peerIP``) and the fix. The messages
are part of bgpflat's interface: tests pin them word for word.
"""

from __future__ import annotations

from bgpflat.core.calico.checks import (
    ANNOTATIONS_SIZE_LIMIT,
    Advice,
    advice,
    duration,
    enum,
    go_ip_version,
    is_name,
    label_value_problem,
    qualified_name_problem,
    schema_enum,
    secret_advice,
    selector,
)
from bgpflat.core.calico.models import (
    ENCAP_MODES,
    BGPConfiguration,
    BGPPeer,
    CalicoResource,
    FieldPath,
    IPPool,
    fail,
    parse_path,
)
from bgpflat.core.calico.releases import CalicoRelease, release_for
from bgpflat.core.calico.validation_bgp import validate_bgpconfig, validate_bgpfilter
from bgpflat.core.net.prefixes import Prefix
from bgpflat.errors import ValidationError

LINK_LOCAL = {4: Prefix.parse("169.254.0.0/16"), 6: Prefix.parse("fe80::/10")}
BLOCK_SIZE_RANGE = {4: (20, 32), 6: (116, 128)}
ALLOWED_USES = ("Workload", "Tunnel", "LoadBalancer")
SELECTOR_MAX_LENGTH = 4096  # the v3.32 CRD schema's MaxLength for BGPPeer selectors
REBUILD_FIX = "create a new pool with the new value, move workloads to it, then disable and delete the old pool"


def validate(
    resource: CalicoResource,
    *,
    old: CalicoResource | None = None,
    file: str | None = None,
    path: str | None = None,
    release: CalicoRelease | None = None,
) -> tuple[Advice, ...]:
    """Run every Calico rule of ``release`` for ``resource`` (and the update rules against ``old``).

    Raises ``ValidationError`` for the first rule Calico would refuse the object for; returns
    bgpflat's warnings about an object Calico accepts. Without ``release``, the rules of the newest
    release bgpflat knows are used.
    """
    rules = release or release_for(None)
    base: FieldPath = parse_path(path) if path else ()
    notes: list[Advice] = []
    try:
        _validate_metadata(resource, base)
        _validate_fields(resource, base, rules)
        if isinstance(resource, IPPool):
            _validate_ippool(resource, base, rules)
            if isinstance(old, IPPool):
                _validate_ippool_update(old, resource, base)
        elif isinstance(resource, BGPPeer):
            _validate_bgppeer(resource, base, rules, notes)
        elif isinstance(resource, BGPConfiguration):
            validate_bgpconfig(resource, base, rules, notes)
        else:
            validate_bgpfilter(resource, base, notes)
    except ValidationError as exc:
        if file is not None and exc.file is None:
            raise ValidationError(exc.message, file=file, path=exc.path, line=exc.line, fix=exc.fix) from None
        raise
    return tuple(notes)


def _validate_metadata(resource: CalicoResource, base: FieldPath) -> None:
    """Calico's ``validateObjectMeta``: the name, then the labels and annotations (Kubernetes syntax)."""
    name = resource.name
    if len(name) > 253 or not is_name(name):
        raise fail(
            f"invalid {resource.kind} name {name!r}",
            (*base, "metadata", "name"),
            fix="use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        )
    for key, value in resource.labels.items():
        path = (*base, "metadata", "labels", key)
        if problem := qualified_name_problem(key):
            raise fail(f"invalid label key {key!r}: {problem}", path, fix="use [prefix/]name, e.g. example.com/role")
        if problem := label_value_problem(value):
            raise fail(
                f"invalid label value {value!r}: {problem}", path, fix="use at most 63 letters, digits, '-', '_', '.'"
            )
    size = 0
    for key, value in resource.annotations.items():
        # Calico and Kubernetes check annotation keys in lower case: upper case is allowed there.
        if problem := qualified_name_problem(key.lower()):
            raise fail(
                f"invalid annotation key {key!r}: {problem}",
                (*base, "metadata", "annotations", key),
                fix="use [prefix/]name, e.g. example.com/note",
            )
        size += len(key.encode()) + len(value.encode())
    if size > ANNOTATIONS_SIZE_LIMIT:
        raise fail(
            f"the annotations total {size} bytes, more than {ANNOTATIONS_SIZE_LIMIT}",
            (*base, "metadata", "annotations"),
            fix="keep large data out of annotations",
        )


def _validate_fields(resource: CalicoResource, base: FieldPath, rules: CalicoRelease) -> None:
    """A field the release does not have is an unknown field there: its API server refuses it."""
    explicit: frozenset[str] = getattr(resource, "explicit", frozenset())
    for key in sorted(explicit):
        if not rules.has_field(resource.kind, key):
            raise fail(
                f"spec.{key} does not exist in Calico {rules.label} ({rules.field_release(resource.kind, key)})",
                (*base, "spec", key),
                fix=f"remove spec.{key}, or give the Calico version the cluster runs",
            )


# --- IPPool ----------------------------------------------------------------------------------------


def _validate_ippool(pool: IPPool, base: FieldPath, rules: CalicoRelease) -> None:
    spec = (*base, "spec")
    for key in sorted(pool.deprecated):
        replacement = "ipipMode" if key == "ipip" else "natOutgoing"
        raise fail(f"{key} is deprecated and refused by Calico", (*spec, key), fix=f"use {replacement} instead")
    cidr = pool.cidr
    low, high = BLOCK_SIZE_RANGE[cidr.version]
    block = pool.effective_block_size
    if not low <= block <= high:
        family = "IPv4" if cidr.version == 4 else "IPv6"
        raise fail(
            f"blockSize {block} is out of range for an {family} pool",
            (*spec, "blockSize"),
            fix=f"use a blockSize from {low} to {high}",
        )
    if not pool.disabled and cidr.length > block:
        raise fail(
            f"IPPool CIDR {cidr} is smaller than one block (blockSize {block})",
            (*spec, "blockSize"),
            fix=f"use a blockSize of at least {cidr.length}, or a larger CIDR",
        )
    link_local = LINK_LOCAL[cidr.version]
    if cidr.overlaps(link_local):
        raise fail(
            f"IPPool CIDR {cidr} overlaps the link-local range {link_local}",
            (*spec, "cidr"),
            fix=f"choose a CIDR outside {link_local}",
        )
    enum(pool.ipip_mode, ENCAP_MODES, (*spec, "ipipMode"))
    enum(pool.vxlan_mode, ENCAP_MODES, (*spec, "vxlanMode"))
    if cidr.version == 6 and pool.ipip_mode != "Never":
        raise fail(
            "IPIP is not supported on IPv6 pools",
            (*spec, "ipipMode"),
            fix="set ipipMode: Never (use vxlanMode to encapsulate IPv6)",
        )
    if pool.ipip_mode != "Never" and pool.vxlan_mode != "Never":
        raise fail(
            "IPIP and VXLAN cannot both be enabled on one IPPool",
            (*spec, "vxlanMode"),
            fix="set ipipMode or vxlanMode to Never",
        )
    selector(pool.node_selector, (*spec, "nodeSelector"))
    selector(pool.namespace_selector, (*spec, "namespaceSelector"))
    if rules.pool_selector_rules:
        for key, text in (("nodeSelector", pool.node_selector), ("namespaceSelector", pool.namespace_selector)):
            if text and "global(" in text:
                raise fail(f"{key} global() is not allowed on an IPPool", (*spec, key), fix="use all()")
        if "Tunnel" in pool.allowed_uses and pool.namespace_selector:
            raise fail(
                "a pool for Tunnel addresses cannot have a namespaceSelector (tunnel addresses belong to no namespace)",
                (*spec, "namespaceSelector"),
                fix="remove namespaceSelector, or set allowedUses: [Workload]",
            )
    for index, use in enumerate(pool.allowed_uses):
        enum(use, ALLOWED_USES, (*spec, "allowedUses", index))
    if "LoadBalancer" in pool.allowed_uses:
        _validate_load_balancer_pool(pool, spec)
    enum(pool.assignment_mode, ("Automatic", "Manual"), (*spec, "assignmentMode"))


def _validate_load_balancer_pool(pool: IPPool, spec: FieldPath) -> None:
    if len(set(pool.allowed_uses)) > 1:
        raise fail(
            "allowedUses LoadBalancer cannot be combined with Workload or Tunnel",
            (*spec, "allowedUses"),
            fix="use a separate pool for LoadBalancer addresses",
        )
    if pool.encapsulated:
        raise fail(
            "a LoadBalancer pool cannot use IPIP or VXLAN",
            (*spec, "ipipMode"),
            fix="set ipipMode and vxlanMode to Never",
        )
    if pool.disable_bgp_export:
        raise fail(
            "a LoadBalancer pool cannot set disableBGPExport",
            (*spec, "disableBGPExport"),
            fix="remove disableBGPExport",
        )
    # Compared as text, as Calico does: " all()" is refused although it selects the same nodes.
    if pool.node_selector != "all()":
        raise fail(
            "a LoadBalancer pool needs nodeSelector all()", (*spec, "nodeSelector"), fix="set nodeSelector: all()"
        )


def _validate_ippool_update(old: IPPool, new: IPPool, base: FieldPath) -> None:
    spec = (*base, "spec")
    if old.cidr != new.cidr:
        raise fail("IPPool CIDR cannot be modified", (*spec, "cidr"), fix=REBUILD_FIX)
    if old.effective_block_size != new.effective_block_size:
        raise fail("IPPool BlockSize cannot be modified", (*spec, "blockSize"), fix=REBUILD_FIX)
    if "LoadBalancer" in old.allowed_uses and set(new.allowed_uses) != {"LoadBalancer"}:
        raise fail(
            "allowedUses cannot change from LoadBalancer to Workload or Tunnel",
            (*spec, "allowedUses"),
            fix=REBUILD_FIX,
        )


# --- BGPPeer ---------------------------------------------------------------------------------------


def _validate_bgppeer(peer: BGPPeer, base: FieldPath, rules: CalicoRelease, notes: list[Advice]) -> None:
    spec = (*base, "spec")
    for key in sorted(peer.enterprise_fields):
        raise fail(
            f"{key} is a Calico Enterprise field; Calico Open Source has no such field",
            (*spec, key),
            fix=f"remove spec.{key}",
        )
    if peer.node is not None and (not is_name(peer.node) or (rules.crd_schema and len(peer.node) > 253)):
        raise fail(f"invalid node name {peer.node!r}", (*spec, "node"), fix="use the Kubernetes node name")
    for key, text in (
        ("nodeSelector", peer.node_selector),
        ("peerSelector", peer.peer_selector),
        ("localWorkloadSelector", peer.local_workload_selector),
    ):
        if rules.crd_schema and text is not None and len(text) > SELECTOR_MAX_LENGTH:
            raise fail(
                f"{key} is longer than {SELECTOR_MAX_LENGTH} characters", (*spec, key), fix="shorten the selector"
            )
        selector(text, (*spec, key))
    _peer_exclusions(peer, spec)
    if peer.next_hop_mode is not None and peer.keep_original_next_hop:
        raise fail(
            "nextHopMode cannot be combined with keepOriginalNextHop: true",
            (*spec, "keepOriginalNextHop"),
            fix="remove keepOriginalNextHop (deprecated) and use nextHopMode: Keep",
        )
    enum(peer.source_address, ("UseNodeIP", "None"), (*spec, "sourceAddress"))
    schema_enum(
        peer.next_hop_mode, ("Auto", "Self", "Keep"), (*spec, "nextHopMode"), kind="BGPPeer", rules=rules, notes=notes
    )
    schema_enum(
        peer.reverse_peering, ("Auto", "Manual"), (*spec, "reversePeering"), kind="BGPPeer", rules=rules, notes=notes
    )
    duration(peer.max_restart_time, (*spec, "maxRestartTime"))
    duration(peer.keepalive_time, (*spec, "keepaliveTime"))
    count = peer.num_allowed_local_as_numbers
    if count is not None and not -(2**31) <= count <= 2**31 - 1:
        raise fail(
            "numAllowedLocalASNumbers must be 0 or more",
            (*spec, "numAllowedLocalASNumbers"),
            fix="use a small count such as 1",
        )
    if count is not None and count < 0:
        notes.append(
            advice(
                "a negative numAllowedLocalASNumbers is ignored", (*spec, "numAllowedLocalASNumbers"), "use 0 or more"
            )
        )
    if peer.ttl_security is not None and not 0 <= peer.ttl_security <= 255:
        raise fail("ttlSecurity must be 0-255 hops", (*spec, "ttlSecurity"), fix="use the hop count to the peer")
    if peer.reachable_by is not None:
        if not peer.peer_ip:
            raise fail("reachableBy needs a peerIP", (*spec, "reachableBy"), fix="set peerIP or remove reachableBy")
        if go_ip_version(peer.reachable_by) != go_ip_version(peer.peer_ip):
            raise fail(
                "reachableBy and peerIP must be the same address family",
                (*spec, "reachableBy"),
                fix="use a gateway of the peer's address family",
            )
    for index, name in enumerate(peer.filters):
        if not is_name(name):
            raise fail(f"invalid BGPFilter name {name!r}", (*spec, "filters", index), fix="use a BGPFilter's name")
    _peer_advice(peer, spec, notes)


def _peer_exclusions(peer: BGPPeer, spec: FieldPath) -> None:
    """The fields Calico's ``validateBGPPeerSpec`` refuses to see together."""
    if peer.node and peer.node_selector:
        raise fail(
            "node and nodeSelector cannot both be set",
            (*spec, "nodeSelector"),
            fix="use node for one node or nodeSelector for a set of nodes",
        )
    if peer.peer_ip and peer.peer_selector:
        raise fail(
            "peerIP and peerSelector cannot both be set",
            (*spec, "peerSelector"),
            fix="use peerIP for an outside router or peerSelector for Calico nodes",
        )
    if peer.peer_selector and peer.as_number is not None:
        raise fail(
            "asNumber must be empty when peerSelector is set",
            (*spec, "asNumber"),
            fix="remove asNumber: the AS of the selected nodes is used",
        )
    if peer.local_workload_selector:
        if peer.peer_ip or peer.peer_selector:
            raise fail(
                "localWorkloadSelector cannot be combined with peerIP or peerSelector",
                (*spec, "localWorkloadSelector"),
                fix="remove peerIP and peerSelector",
            )
        if peer.as_number is None:
            raise fail(
                "localWorkloadSelector needs an asNumber", (*spec, "asNumber"), fix="set the workloads' AS number"
            )


def _peer_advice(peer: BGPPeer, spec: FieldPath, notes: list[Advice]) -> None:
    """Peers Calico stores but calico-node makes nothing useful of."""
    secret_advice(peer.password_secret, (*spec, "password"), notes)
    if not peer.local_workload_selector and not peer.peer_ip and not peer.peer_selector:
        notes.append(
            advice(
                "a BGPPeer with neither peerIP nor peerSelector peers with nothing",
                (*spec, "peerIP"),
                "set peerIP to the router's address (or peerSelector to select Calico nodes)",
            )
        )
    elif peer.peer_ip and peer.as_number is None:
        notes.append(
            advice(
                "a BGPPeer with a peerIP but no asNumber is taken to be in AS 0, which no session accepts",
                (*spec, "asNumber"),
                "set the peer's AS number",
            )
        )
