"""The documents of ``-f`` files, as the core receives them, and errors that point into them.

Contract with the code that reads files (the core does no I/O)
-------------------------------------------------------------
``load_desired(documents)`` takes the **already loaded** documents of one or more files. Each
document is any object with four attributes (``SourceDocument``; ``bgpflat.adapters.files.Document``
already fits, and ``SpecDocument`` below is the plain version):

* ``data``  – the loaded YAML/JSON value of one document;
* ``file``  – the file name to print in messages (or ``None``);
* ``line``  – the 1-based line where the document starts (or ``None``);
* ``lines`` – a mapping **field path -> 1-based line** for the nodes of that document. A field path
  is a tuple of mapping keys and list indices from the document root:
  ``("peers", 2, "asNumber")``, ``("items", 0, "spec", "cidr")``,
  ``("metadata", "labels", "app.kubernetes.io/managed-by")``. It may be empty (no line numbers).

Every error is a ``SpecError`` (``ValidationError`` for a broken Calico rule) carrying the file, the
line of the offending node (or of its nearest ancestor present in ``lines``), the field path as text
(``peers[2].asNumber``; see ``format_path``) and the fix. A ``kind: List`` may be passed whole (its
items are then ``("items", i, ...)``) or already split into one document per item with rebased
``lines``; both work.

Which form a document is: a mapping with ``apiVersion``/``kind`` is a Kubernetes manifest
(``projectcalico.org/v3`` IPPool, BGPPeer, BGPConfiguration, or a ``List``/``IPPoolList``/… of
them, as ``calicoctl get -o yaml`` prints); any other mapping is a flat spec, which must then be the
only document. The flat spec schema is in ``bgpflat.core.state.flat_spec.FLAT_SPEC_KEYS`` and the README.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bgpflat.core.calico import FieldPath, format_path, parse_path
from bgpflat.errors import SpecError


class SourceDocument(Protocol):
    @property
    def data(self) -> Any: ...

    @property
    def file(self) -> str | None: ...

    @property
    def line(self) -> int | None: ...

    @property
    def lines(self) -> Mapping[FieldPath, int]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SpecDocument:
    """A loaded document and where it came from (the plain ``SourceDocument``)."""

    data: Any
    file: str | None = None
    line: int | None = None
    lines: Mapping[FieldPath, int] = field(default_factory=dict)


def line_of(doc: SourceDocument, path: FieldPath) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    key = tuple(path)
    lines = doc.lines or {}
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return lines.get((), doc.line)


class Located:
    """Raises errors that point into one document."""

    def __init__(self, doc: SourceDocument) -> None:
        self.doc = doc

    def error(
        self, message: str, path: FieldPath, *, fix: str | None = None, cls: type[SpecError] = SpecError
    ) -> SpecError:
        return cls(message, file=self.doc.file, line=line_of(self.doc, path), path=format_path(path) or None, fix=fix)

    def relocate(self, exc: SpecError, mapper: Callable[[FieldPath], FieldPath] | None = None) -> SpecError:
        path = parse_path(exc.path) if exc.path else ()
        if mapper is not None:
            path = mapper(path)
        return self.error(exc.message, path, fix=exc.fix, cls=type(exc))


def where(doc: SourceDocument, path: FieldPath) -> str:
    """``file:line`` of ``path``, for messages that name an earlier definition."""
    line = line_of(doc, path)
    name = doc.file or "<input>"
    return f"{name}:{line}" if line is not None else name


def type_name(value: Any) -> str:
    """What a wrong value is, in words (``nothing`` for a missing one)."""
    return "nothing" if value is None else type(value).__name__
