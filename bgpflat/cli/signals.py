"""Ctrl-C and SIGTERM (a cancelled CI job) during an apply: stop at the next safe point.

The first signal is only noted; apply reads it between two writes and stops there with the usual
report (written / not written / rollback command), so no write is cut off with its outcome unknown.
A second signal stops at once, as before.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType

from bgpflat.cli.output import info


@contextlib.contextmanager
def stop_at_safe_point() -> Iterator[Callable[[], str | None]]:
    """Yields ``interrupted()``: the name of the signal received so far, or None."""
    received: list[signal.Signals] = []

    def note(signum: int, frame: FrameType | None) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(signal.Signals(signum))
        info(f"{received[0].name} received: stopping after the write in flight (send it again to stop at once)")

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: received[0].name if received else None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_code(interrupted: Callable[[], str | None]) -> int | None:
    """128 + the signal number, as a shell reports a process a signal stopped; None if none came."""
    name = interrupted()
    return None if name is None else 128 + signal.Signals[name].value
