"""Running HTTP and TCP health checks, as a Consul agent does.

``probe_http`` and ``probe_tcp`` do one attempt and return ``(status, output)``;
:class:`ProbeRunner` repeats one on its interval in a daemon thread (the first run after
a random stagger within the interval, like Consul) and reports through a callback.
"""

from __future__ import annotations

import random
import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

from devcluster.consul.model import CRITICAL, PASSING, WARNING, CheckSpec

OUTPUT_LIMIT = 4096
_NO_PROXY = urllib.request.ProxyHandler({})


def probe_http(spec: CheckSpec) -> tuple[str, str]:
    """GET (or ``Method``) the URL: 2xx is passing, 429 warning, anything else critical."""
    method = spec.method or "GET"
    headers = {"User-Agent": "Consul Health Check", "Accept": "text/plain, text/*, */*"}
    headers.update({name: values[-1] for name, values in spec.header.items() if values})  # type: ignore[index]
    request = urllib.request.Request(spec.http, data=spec.body.encode() or None, headers=headers, method=method)
    context = ssl.create_default_context()
    if spec.tls_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(_NO_PROXY, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=spec.timeout or 10.0) as response:
            code, reason = response.status, response.reason
            body = response.read(OUTPUT_LIMIT).decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        code, reason = err.code, err.reason
        body = err.read(OUTPUT_LIMIT).decode("utf-8", "replace") if err.fp else ""
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason_text = getattr(err, "reason", err)
        return CRITICAL, f'{method.title()} "{spec.http}": {reason_text}'
    output = f"HTTP {method} {spec.http}: {code} {reason} Output: {body}"
    if 200 <= code < 300:
        return PASSING, output
    return (WARNING if code == 429 else CRITICAL), output


def probe_tcp(spec: CheckSpec) -> tuple[str, str]:
    """Open (and close) a TCP connection to ``host:port``."""
    host, _, port = spec.tcp.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=spec.timeout or 10.0):
            pass
    except (OSError, ValueError) as err:
        return CRITICAL, f"dial tcp {spec.tcp}: {err}"
    return PASSING, f"TCP connect {spec.tcp}: Success"


def probe(spec: CheckSpec) -> tuple[str, str]:
    return probe_http(spec) if spec.kind == "http" else probe_tcp(spec)


class ProbeRunner:
    """Runs one check's probe every ``spec.interval`` seconds until ``stop()``."""

    def __init__(
        self, check_id: str, definition_index: int, spec: CheckSpec, report: Callable[[str, int, str, str], None]
    ) -> None:
        self.check_id = check_id
        self.definition_index = definition_index
        self.spec = spec
        self._report = report
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"consul-check-{check_id}", daemon=True)

    def start(self) -> ProbeRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        delay = random.uniform(0, self.spec.interval)
        while not self._stopped.wait(delay):
            status, output = probe(self.spec)
            if self._stopped.is_set():
                return
            self._report(self.check_id, self.definition_index, status, output)
            delay = self.spec.interval
