"""The cyclic garbage collector paused while an adapter builds plain data: one rule for both adapters.

Loading a snapshot or a learned-route file, or decoding the API server's lists, allocates millions
of dicts, lists and strings and frees none; every allocation counts towards another collection
that walks every object built so far. Its passes were half to three quarters of the time of
loading a 5,000-node snapshot, and 58 MB of IPAMBlocks decode in 0.45 s with it paused against
1.7–2.4 s with it on. Decoded JSON and YAML have no cycles (reference counting frees them), so
nothing is kept that the collector would have freed.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_pauses = 0  # nested or concurrent pauses (threads read lists at once); the last one out restores it
_was_enabled = False


@contextlib.contextmanager
def collector_paused(*, freeze: bool = False) -> Iterator[None]:
    """The cyclic garbage collector off for the block, as it was before afterwards.

    ``freeze``: also keep everything alive at the end out of the collector's later passes
    (``gc.freeze``), for data a command keeps until it exits; freezing only stops the scans,
    objects are still freed when their last reference goes. Only around code that builds acyclic
    data: a cycle made in here stays until the collector runs again.
    """
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
