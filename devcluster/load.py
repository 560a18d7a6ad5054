"""Steady HTTP load through a load balancer, every request's outcome counted.

`Load(port, host)` runs `connections` keep-alive connections to 127.0.0.1:`port`, each sending a GET
with `Host: host` at an even pace (`rate` requests a second in all) until stopped. Every request
ends as one outcome: its status code (`200`, `503`, ...), `connection error` (refused, reset, closed
before an answer: the connection is then opened again, as a client library would) or `timeout`. A
connection the balancer closed while idle fails the request that reuses it, as it fails a client
that does not check its connections first. The bench and the demo print `summary()`; tests assert
`failed()` is 0.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Load:
    """Requests to 127.0.0.1:`port` with `Host: host`, `rate` a second over `connections` connections."""

    port: int
    host: str
    rate: float = 200.0
    connections: int = 8
    timeout: float = 5.0
    path: str = "/"
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, outcome)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.started = 0.0

    def start(self) -> Load:
        self.started = time.monotonic()
        for n in range(self.connections):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True, name=f"load-{n}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> Counter[str]:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 1)
        return self.outcomes

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.outcomes.values())

    def failed(self) -> int:
        """Requests that did not end with a 2xx or 3xx answer."""
        with self._lock:
            return sum(n for outcome, n in self.outcomes.items() if outcome[:1] not in ("2", "3"))

    def summary(self) -> str:
        """`8008 requests: 8001 x 200, 7 x 503` (outcomes by count)."""
        with self._lock:
            parts = ", ".join(f"{n} x {outcome}" for outcome, n in self.outcomes.most_common())
            return f"{sum(self.outcomes.values())} requests: {parts or 'none'}"

    def _record(self, outcome: str) -> None:
        with self._lock:
            self.outcomes[outcome] += 1
            if outcome[:1] not in ("2", "3"):
                self.failures.append((time.monotonic() - self.started, outcome))

    def _run(self, n: int) -> None:
        interval = self.connections / self.rate
        next_at = self.started + interval * n / self.connections  # connections spread over one interval
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            next_at += interval
            current = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            conn = current
            try:
                current.request("GET", self.path, headers={"Host": self.host})
                response = current.getresponse()
                response.read()
                self._record(str(response.status))
                if response.will_close:
                    current.close()
                    conn = None
            except TimeoutError:
                self._record("timeout")
                current.close()
                conn = None
            except (OSError, http.client.HTTPException):
                self._record("connection error")
                current.close()
                conn = None
        if conn is not None:
            conn.close()
