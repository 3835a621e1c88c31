"""The value checks Calico's validator builds its rules from, and the advice bgpflat adds to them.

Each check follows the Go it mirrors (``libcalico-go/lib/validator/v3`` and the Kubernetes name
rules it calls): a value these checks refuse is one Calico refuses. ``Advice`` is bgpflat's own,
stricter opinion about an object Calico accepts (a BGPPeer with neither peerIP nor peerSelector):
it is reported as a warning, never as a refusal.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import NamedTuple

from bgpflat.core.calico.models import FieldPath, SecretKeyRef, fail, format_path
from bgpflat.core.calico.releases import CalicoRelease
from bgpflat.core.net.selector import parse_selector
from bgpflat.errors import SpecError


class Advice(NamedTuple):
    """A warning about an object Calico accepts: what is odd, where, and what to do instead."""

    message: str
    path: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (fix: {self.fix})"


def advice(message: str, path: FieldPath, fix: str) -> Advice:
    return Advice(message, format_path(path), fix)


DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"{DNS_LABEL}(\.{DNS_LABEL})*")
NAME_FIX = "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
# Go's time.ParseDuration: an optional sign, then "0" or one or more decimal numbers with a unit.
_GO_DURATION = re.compile(r"[-+]?(0|((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)")
ANNOTATIONS_SIZE_LIMIT = 256 * 1024


def is_name(text: str) -> bool:
    """Calico's ``name`` rule: a DNS-1123 subdomain, with no length limit of its own."""
    return DNS_SUBDOMAIN.fullmatch(text) is not None


def qualified_name_problem(key: str) -> str | None:
    """Kubernetes ``IsQualifiedName``: ``[prefix/]name``, prefix a DNS subdomain, name ≤63 characters."""
    prefix, slash, name = key.rpartition("/")
    if slash:
        if not prefix:
            return "the prefix before '/' is empty"
        if len(prefix) > 253 or not DNS_SUBDOMAIN.fullmatch(prefix):
            return f"the prefix {prefix!r} is not a DNS subdomain (lowercase letters, digits, '-' and '.')"
        if "/" in prefix:
            return "a key has at most one '/'"
    if not name:
        return "the name part is empty"
    if len(name) > 63:
        return "the name part is longer than 63 characters"
    if not _QUALIFIED_NAME.fullmatch(name):
        return "the name part must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    return None


def label_value_problem(value: str) -> str | None:
    """Kubernetes ``IsValidLabelValue``: empty, or ≤63 characters of the qualified-name alphabet."""
    if len(value) > 63:
        return "longer than 63 characters"
    if value and not _QUALIFIED_NAME.fullmatch(value):
        return "must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    return None


def selector(text: str | None, path: FieldPath) -> None:
    """Calico's ``selector`` rule: the selector parses."""
    if not text:
        return
    try:
        parse_selector(text)
    except SpecError as exc:
        raise fail(f"invalid {path[-1]}: {exc.message}", path, fix=exc.fix) from None


def one_of(allowed: Sequence[str]) -> str:
    return ", ".join(allowed[:-1]) + f" or {allowed[-1]}" if len(allowed) > 1 else allowed[0]


def enum_error(value: str, allowed: Sequence[str], path: FieldPath) -> SpecError:
    name = next(str(p) for p in reversed(path) if isinstance(p, str))
    return fail(f"invalid {name} {value!r}", path, fix=f"use {one_of(allowed)}")


def enum(value: str | None, allowed: Sequence[str], path: FieldPath) -> None:
    """A value Calico's validator checks against a fixed list (a regex of alternatives)."""
    if value is not None and value not in allowed:
        raise enum_error(value, allowed, path)


def schema_enum(
    value: str | None, allowed: Sequence[str], path: FieldPath, *, kind: str, rules: CalicoRelease, notes: list[Advice]
) -> None:
    """A value only the CRD schema (``+kubebuilder:validation:Enum``) restricts.

    Calico's validator does not check it. Where the release's CRDs carry the enum, the Kubernetes API
    server refuses any other value, and so does bgpflat; where they do not, the value is stored and
    calico-node treats it as unset: bgpflat warns.
    """
    if value is None or value in allowed:
        return
    name = next(str(p) for p in reversed(path) if isinstance(p, str))
    if rules.schema_enforces(kind, name):
        raise enum_error(value, allowed, path)
    notes.append(
        advice(
            f"{name} {value!r} is not one Calico knows; calico-node treats it as unset", path, f"use {one_of(allowed)}"
        )
    )


def duration(value: str | None, path: FieldPath) -> None:
    """A ``metav1.Duration``: what Go's ``time.ParseDuration`` reads, or the object does not decode."""
    if value is not None and not _GO_DURATION.fullmatch(value):
        raise fail(f"invalid duration {value!r} for {path[-1]}", path, fix="use a duration such as 120s, 2m or 1m30s")


def secret_advice(ref: SecretKeyRef | None, path: FieldPath, notes: list[Advice]) -> None:
    """A secret reference without a name or key: stored, but calico-node then uses no password."""
    if ref is not None and not (ref.name and ref.key):
        notes.append(
            advice(
                "the secretKeyRef lacks a name or a key: calico-node finds no secret and sets no password",
                (*path, "secretKeyRef"),
                "password: {secretKeyRef: {name: <secret>, key: <key>}}",
            )
        )


def go_ip_version(text: str) -> int | None:
    """The family Go's ``net.ParseIP`` gives ``text`` (4, 6) or None when it does not parse.

    Go reads an IPv4-mapped IPv6 address (``::ffff:10.0.0.1``) as IPv4, and takes no zone
    (``%eth0``) and no surrounding spaces.
    """
    if text != text.strip() or "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return 4
    return address.version
