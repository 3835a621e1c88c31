"""The Calico releases the conformance matrix runs against: one confd build (and its templates) each.

The module proxy serves ``github.com/projectcalico/calico`` only by pseudo-version, and of the
releases from v3.29.0 to v3.32.1 it serves two: v3.30.1 and v3.31.0. Every other release's
commit (v3.29.0-v3.29.7, v3.30.0, v3.30.2-v3.30.7, v3.31.1-v3.31.7, v3.32.0, v3.32.1) is refused
with ``403 Forbidden``, by commit hash and by pseudo-version alike; the README's conformance table
lists them. ``PINNED`` is the release CI builds and runs every time; the others run when their
confd is already in the cache, or when asked for (``--calico-version``, ``--all-releases``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bgpflat.errors import LabError
from bgpflat.lab import go_build
from bgpflat.lab.confd import BINARY_ENV, CALICO_CONFD, default_templates_dir, ensure_confd, find_confd
from bgpflat.lab.conformance.cases import CALICO_VERSION
from bgpflat.lab.versions import CALICO_V3_30_1, ModulePin

PINNED = CALICO_VERSION
RELEASES: dict[str, ModulePin] = {"v3.30.1": CALICO_V3_30_1, PINNED: CALICO_CONFD}
"""Every release with a confd build recipe, oldest first."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseConfd:
    version: str
    confd: Path
    templates: Path


def pin_for(version: str) -> ModulePin:
    """The module pin of ``version``; ``LabError`` names the releases there are."""
    if version not in RELEASES:
        raise LabError(f"--calico-version {version}: no confd recipe for it; use one of {', '.join(RELEASES)}")
    return RELEASES[version]


def confd_for(version: str, *, build: bool, progress: go_build.Progress | None = None) -> ReleaseConfd | None:
    """``version``'s confd and templates: built first when ``build``, else only when already cached."""
    pin = pin_for(version)
    if version != PINNED and os.environ.get(BINARY_ENV):
        raise LabError(f"{BINARY_ENV} names one confd binary, taken for {PINNED}; unset it to run Calico {version}")
    binary = ensure_confd(calico=pin, progress=progress) if build else find_confd(calico=pin)
    if binary is None:
        return None
    return ReleaseConfd(version=version, confd=binary, templates=default_templates_dir(pin))


def cached_releases() -> list[str]:
    """The releases besides ``PINNED`` whose confd is already built (none when ``BGPFLAT_CONFD``
    names a binary: that one stands for the pinned release)."""
    if os.environ.get(BINARY_ENV):
        return []
    return [v for v, pin in RELEASES.items() if v != PINNED and find_confd(calico=pin) is not None]
