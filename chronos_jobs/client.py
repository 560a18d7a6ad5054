"""A small Chronos client for the calls wharf makes (`/v1/scheduler/*`), errors as wharf's Failure.

Reads and job writes are idempotent (a POST replaces the job of that name), so connection errors
are retried with `wharf.retry.Retry`; an answer Chronos refuses (4xx/5xx) is not. Credentials in
the URL (`http://user:password@host:port`) are used for basic auth and never shown. The calls go
through `wharf.http.HttpClient`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import requests

from wharf.errors import Failure, HttpError
from wharf.http import HttpClient
from wharf.retry import Retry
from wharf.settings import mask_url

__all__ = ["ChronosClient", "parse_graph_csv"]

PREFIX = "/v1/scheduler"


def parse_graph_csv(body: str) -> dict[str, dict[str, str]]:
    """`GET /graph/csv` as name -> {last: fresh|success|failure, status: idle|queued|running}."""
    nodes: dict[str, dict[str, str]] = {}
    for row in csv.reader(io.StringIO(body)):
        if len(row) >= 4 and row[0] == "node":
            status = row[3].split()[-1] if row[3] else "idle"
            nodes[row[1]] = {"last": row[2], "status": status}
    return nodes


class ChronosClient:
    """Chronos at `url`; `retry` governs connection errors."""

    def __init__(self, url: str, *, timeout: float = 10.0, retry: Retry | None = None) -> None:
        self.http = HttpClient(url, system="Chronos", timeout=timeout, shown=mask_url(url),
                               retry=retry or Retry(delay=0.2, max_delay=2.0, deadline=15.0,
                                                    retry_on=(requests.ConnectionError, requests.Timeout)))

    def _call(self, method: str, path: str, body: Any = None, text: bool = False) -> Any:
        try:
            return self.http.request(method, PREFIX + path, body, text=text)
        except HttpError as exc:
            reason = exc.text.strip().splitlines()[0] if exc.text.strip() else exc.reason
            raise Failure(f"Chronos refused {method} {PREFIX}{path}: {exc.status} {reason}") from None

    def jobs(self) -> dict[str, dict[str, Any]]:
        """Every job Chronos has, by name."""
        return {job["name"]: job for job in self._call("GET", "/jobs")}

    def put(self, job: Mapping[str, Any], endpoint: str) -> None:
        """Create or replace a job: `endpoint` is `iso8601` (scheduled) or `dependency`."""
        self._call("POST", f"/{endpoint}", dict(job))

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/job/{quote(name, safe='')}")

    def run(self, name: str) -> None:
        """Start a run of `name` now (Chronos's manual start)."""
        self._call("PUT", f"/job/{quote(name, safe='')}")

    def graph(self) -> dict[str, dict[str, str]]:
        """Each job's last outcome and whether it is idle, queued or running."""
        return parse_graph_csv(self._call("GET", "/graph/csv", text=True))
