"""Run a stand-in in the foreground as `python -m devcluster.NAME` does: print its URL, stop on SIGTERM."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any, Protocol

from wharf import log


class StandIn(Protocol):
    @property
    def url(self) -> str: ...

    def start(self) -> Any: ...

    def stop(self) -> None: ...


def run(standin: StandIn, log_level: str = "info", on_hangup: Callable[[], None] | None = None) -> int:
    """Start `standin`, print its URL, and stop it on SIGTERM/SIGINT (exit 0); SIGHUP calls `on_hangup`.

    The signal handlers only set flags and wake the main thread, which does the work.
    """
    log.setup("text", log_level.lower())
    wake = threading.Event()
    flags = {"stop": False, "hangup": False}

    def on_signal(signum: int, _frame: object) -> None:
        flags["hangup" if signum == signal.SIGHUP else "stop"] = True
        wake.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    standin.start()
    print(standin.url, flush=True)
    try:
        while not flags["stop"]:
            wake.wait()
            wake.clear()
            if flags["hangup"] and not flags["stop"]:
                flags["hangup"] = False
                if on_hangup:
                    on_hangup()
    finally:
        standin.stop()
    return 0
