"""A lab prober: GETs its URLs round after round from inside one namespace and prints each result.

Run as a script inside the namespace the probes start from (``python3 -I prober.py --interval 0.2
--timeout 2 URL...``); standard library only, so it starts fast and needs nothing installed.
Names resolve through that namespace's resolv.conf, so a URL with a Service's short name follows
the search domain as a person's browser would. One JSON line per probe on stdout, flushed:
``{"t": <unix time>, "url": ..., "ok": true|false, "ms": ..., "error": ...}``. SIGTERM ends it
after the probe in flight.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import urllib.request
from types import FrameType


def probe(url: str, timeout: float) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            answer.read()
            return 200 <= answer.status < 400, "" if answer.status < 400 else f"HTTP {answer.status}"
    except Exception as exc:  # every failure is a failed probe, whatever raised it
        return False, f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between rounds")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds one GET may take")
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args(argv)
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for url in args.urls:
            if stopping:
                break
            started = time.monotonic()
            ok, error = probe(url, args.timeout)
            line = {"t": time.time(), "url": url, "ok": ok, "ms": round((time.monotonic() - started) * 1000)}
            if error:
                line["error"] = error
            print(json.dumps(line), flush=True)
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
