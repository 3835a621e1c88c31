"""``ClusterWatch``: what ``read_everything`` reads, listed once and then kept current by watches.

``verify --watch`` runs for weeks; re-listing 45,000 objects every interval would load the API
server for nothing. Each resource of ``read_sources`` is listed once (its resourceVersion noted)
and then watched from there, one thread per resource, as client-go's reflectors do:

* ADDED/MODIFIED/DELETED change the local copy and bump ``generation``;
* BOOKMARK events only move the resourceVersion on (``allowWatchBookmarks``);
* a watch the server ends (``timeoutSeconds``) is opened again from the last resourceVersion;
* 410 Gone (the resourceVersion was compacted away) lists that resource again;
* any other failure is reported through ``on_error`` and retried with backoff (1, 2, 4 … 30 s),
  the copy kept as it was meanwhile.

``objects()`` hands the copy out in snapshot order, normalised as ``read_everything`` does, so a
watched cluster, a live read and a snapshot give the same expected routes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from bgpflat.adapters.collector import collector_paused
from bgpflat.adapters.kube.calico import CalicoApi, Source
from bgpflat.adapters.kube.client import WHOLE_LIST, WatchStream
from bgpflat.adapters.kube.reads import in_order
from bgpflat.errors import KubeError, KubeNotFound

WATCH_SECONDS = 240
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
_GONE = 410
CLOSE_WAIT = 5.0

Key = tuple[str, str]  # (namespace, name)


class _Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


class ClusterWatch:
    """The cluster's route-model objects, current. ``start`` lists everything (raising on failure);
    ``close`` ends every watch."""

    def __init__(self, api: CalicoApi, *, on_error: Callable[[str], None] = lambda message: None) -> None:
        self.api = api
        self._on_error = on_error
        self._sources: list[Source] = []
        self._store: dict[int, dict[Key, dict[str, Any]]] = {}
        self._condition = threading.Condition()
        self._generation = 0
        self._stop = threading.Event()
        self._streams: dict[int, WatchStream] = {}
        self._threads: list[threading.Thread] = []
        self.relists = 0

    @property
    def target(self) -> Any:
        return self.api.target

    @property
    def generation(self) -> int:
        """Goes up with every change seen (a new ``objects()`` may differ from the last)."""
        with self._condition:
            return self._generation

    def start(self) -> None:
        self._sources = self.api.read_sources()
        # Listed as ``read_everything`` reads (all at once, each in one request), and for the same reasons.
        with collector_paused():
            versions = list(in_order([partial(self._list, index) for index in range(len(self._sources))]))
        for index, version in enumerate(versions):
            if version is None:
                continue  # not served here (no operator, no BGPFilter before Calico 3.26)
            thread = threading.Thread(
                target=self._run, args=(index, version), name=f"watch {self._sources[index].plural}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def objects(self) -> list[dict[str, Any]]:
        with self._condition:
            out: list[dict[str, Any]] = []
            for index, source in enumerate(self._sources):
                items = self._store.get(index, {})
                keys = sorted(items) if source.calico else list(items)
                out.extend(items[key] for key in keys)
            return out

    def wait(self, timeout: float, *, since: int) -> int:
        """Block until the generation passes ``since``, ``close`` is called or ``timeout`` passes."""
        with self._condition:
            self._condition.wait_for(lambda: self._generation != since or self._stop.is_set(), timeout=timeout)
            return self._generation

    def close(self) -> None:
        self._stop.set()
        with self._condition:
            self._condition.notify_all()
            streams = list(self._streams.values())
        for stream in streams:
            stream.close()
        # One bound for all: a watch still waiting for the server's first byte cannot be
        # interrupted, and its (daemon) thread must not hold up the exit for long.
        deadline = time.monotonic() + CLOSE_WAIT
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    # -- one resource -------------------------------------------------------------------------

    def _query(self, source: Source) -> dict[str, Any]:
        return {"fieldSelector": f"metadata.name={source.name}"} if source.name else {}

    def _list(self, index: int) -> str | None:
        """(Re)list one resource into the store; None when it is not served."""
        source = self._sources[index]
        try:
            items, version = self.api.client.list_versioned(
                source.path,
                query=self._query(source),
                accept=source.accept(),
                action=f"list {source.plural}",
                page_size=WHOLE_LIST,
            )
        except KubeNotFound:
            if source.required:
                raise
            return None
        fresh = {_key(item): source.normalise(item) for item in items}
        with self._condition:
            self._store[index] = fresh
            self._generation += 1
            self._condition.notify_all()
        return version

    def _run(self, index: int, version: str) -> None:
        source = self._sources[index]
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._watch(index, version)
                failures = 0
            except _Gone:
                self.relists += 1
                try:
                    version = self._list(index) or version
                except KubeError as exc:
                    self._on_error(f"list of {source.plural}: {exc}")
                    self._stop.wait(BACKOFF[-1])
            except KubeError as exc:
                if self._stop.is_set():
                    return
                delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
                failures += 1
                self._on_error(f"watch of {source.plural}: {exc} (again in {delay:g} s)")
                self._stop.wait(delay)

    def _watch(self, index: int, version: str) -> str:
        """Follow one watch until the server ends it; returns the last resourceVersion seen."""
        source = self._sources[index]
        query = {**self._query(source), "resourceVersion": version, "allowWatchBookmarks": "true"}
        try:
            stream = self.api.client.watch(
                source.path,
                query=query,
                accept=source.accept(watch=True),
                action=f"watch {source.plural}",
                seconds=WATCH_SECONDS,
            )
        except KubeError as exc:
            if exc.status == _GONE:
                raise _Gone() from None
            raise
        with self._condition:
            self._streams[index] = stream
        try:
            for event in stream.events():
                if self._stop.is_set():
                    break
                version = self._apply(index, event) or version
        except KubeError:
            if self._stop.is_set():
                return version
            raise
        finally:
            with self._condition:
                self._streams.pop(index, None)
        return version

    def _apply(self, index: int, event: dict[str, Any]) -> str:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == _GONE:
                raise _Gone()
            raise KubeError(f"watch of {self._sources[index].plural}: {obj.get('message') or obj}")
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "BOOKMARK":
            return version
        source = self._sources[index]
        key = _key(obj)
        with self._condition:
            items = self._store.setdefault(index, {})
            if kind == "DELETED":
                items.pop(key, None)
            else:
                items[key] = source.normalise(obj)
            self._generation += 1
            self._condition.notify_all()
        return version


def _key(obj: dict[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("namespace") or ""), str(metadata.get("name") or ""))
