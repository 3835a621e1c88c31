"""``load_desired``: the documents of ``-f`` files -> a validated ``DesiredState``.

One flat spec (``bgpflat.yaml``), or any number of native Calico manifests; never both (see
``bgpflat.core.state.documents`` for what a document is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bgpflat.core.state.documents import Located, SourceDocument
from bgpflat.core.state.flat_spec import parse_spec
from bgpflat.core.state.manifests import parse_manifests
from bgpflat.core.state.model import DesiredState, Networks
from bgpflat.errors import SpecError


def load_desired(documents: Sequence[SourceDocument], *, networks: Networks | None = None) -> DesiredState:
    """Documents of ``-f`` files -> validated ``DesiredState`` (``bgpflat.core.state.documents`` has the contract)."""
    docs = [d for d in documents if d.data is not None]
    if not docs:
        raise SpecError(
            "no Calico resources and no flat spec found",
            file=documents[0].file if documents else None,
            fix="pass a bgpflat.yaml or Calico manifests",
        )
    flat = [d for d in docs if _is_flat(d.data)]
    if flat:
        if len(docs) > 1:
            other = next(d for d in docs if d is not flat[0])
            raise Located(other).error(
                "a flat spec must be the only document: do not mix it with other documents or manifests",
                (),
                fix="put the flat spec in a file of its own, or write everything as Calico manifests",
            )
        return parse_spec(flat[0])
    return parse_manifests(docs, networks=networks)


def _is_flat(data: Any) -> bool:
    return isinstance(data, Mapping) and "kind" not in data and "apiVersion" not in data
