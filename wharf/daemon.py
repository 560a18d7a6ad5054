"""The skeleton every wharf daemon shares: run cycles until SIGTERM, survive failures, serve metrics.

A daemon subclasses `Daemon` and implements `run_cycle()` (one pass of its work) and, if it holds
resources, `close()`. Signal handlers only set a flag and wake the loop; the loop does the rest:

    while not stopping:
        run_cycle()          # an exception is logged and counted, then retried with backoff
        wait(interval)       # returns at once when SIGTERM/SIGINT arrives
    close()

Given the settings (`run(settings)`), a daemon serving metrics registers that endpoint with the Consul
agent they name, and deregisters it on a clean stop (`wharf.announce`).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from wharf.announce import Announcer, announce
from wharf.errors import describe
from wharf.log import fields
from wharf.retry import Retry
from wharf.settings import Settings

CYCLES = Counter("wharf_daemon_cycles_total", "Cycles run, by outcome", ["daemon", "outcome"])
CYCLE_SECONDS = Histogram("wharf_daemon_cycle_seconds", "Time one cycle took", ["daemon"])
LAST_SUCCESS = Gauge("wharf_daemon_last_success_timestamp_seconds", "When a cycle last succeeded",
                     ["daemon"])
UP = Gauge("wharf_daemon_up", "1 while the daemon's loop runs", ["daemon"])


class Daemon:
    """Base class of wharf's long-running processes."""

    #: how long to wait between successful cycles, in seconds
    interval: float = 5.0
    #: how to back off after failed cycles (only its delays are used)
    backoff: Retry = Retry(delay=1.0, max_delay=60.0, jitter=0.2)

    def __init__(self, name: str, metrics_port: int | None = None, metrics_host: str = "127.0.0.1") -> None:
        self.name = name
        self.metrics_port = metrics_port
        self.metrics_host = metrics_host
        self.stopping = False
        self.log = logging.getLogger(f"wharf.{name}")
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._metrics_server: Any = None
        self._announcer: Announcer | None = None

    def run_cycle(self) -> None:
        """Do one pass of the daemon's work. Raise to report a failed cycle."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the daemon holds; called once, after the loop ends."""

    def stop(self, *_: object) -> None:
        """Ask the loop to end after the current cycle. Safe to call from a signal handler."""
        self.stopping = True
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # the pipe is full: the loop is being woken already

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, returning early when `stop()` is called."""
        if not self.stopping:
            select.select([self._wake_r], [], [], max(0.0, seconds))

    def run(self, settings: Settings | None = None) -> int:
        """Run until stopped; returns the process exit code (0 after a clean stop). With `settings`,
        the metrics endpoint listens on their `metrics_address` and is registered with their Consul
        agent while the daemon runs."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        if settings is not None:
            self.metrics_host = settings["metrics_address"]
        if self.metrics_port is not None:
            self._metrics_server, _ = start_http_server(self.metrics_port, addr=self.metrics_host)
            self.log.info("metrics", extra=fields(address=f"{self.metrics_host}:{self.metrics_port}"))
            if settings is not None:  # the port the server has (0 asks for any free one)
                port = int(self._metrics_server.server_port)
                self._announcer = announce(self.name, self.metrics_host, port, settings, self.log)
        UP.labels(self.name).set(1)
        self.log.info("started")
        backoff: Iterator[float] | None = None
        try:
            while not self.stopping:
                started = time.monotonic()
                try:
                    self.run_cycle()
                except Exception as exc:  # a cycle's failure must not end the daemon
                    CYCLES.labels(self.name, "error").inc()
                    backoff = backoff or self.backoff.delays()
                    delay = next(backoff)
                    self.log.warning("cycle failed", extra=fields(error=describe(exc), retry_in=round(delay, 2)))
                else:
                    CYCLES.labels(self.name, "ok").inc()
                    LAST_SUCCESS.labels(self.name).set_to_current_time()
                    backoff, delay = None, self.interval
                CYCLE_SECONDS.labels(self.name).observe(time.monotonic() - started)
                self.wait(delay)
        finally:
            UP.labels(self.name).set(0)
            self._shutdown()
        self.log.info("stopped")
        return 0

    def _shutdown(self) -> None:
        if self._announcer is not None:
            self._announcer.stop()
        try:
            self.close()
        except Exception as exc:
            self.log.warning("close failed", extra=fields(error=describe(exc)))
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)
