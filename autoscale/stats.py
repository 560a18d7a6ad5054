"""HAProxy's `show stat` CSV: parse it (pure) and read it over the admin socket or HTTP."""

from __future__ import annotations

import csv
import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import requests

from autoscale.decide import Reading
from wharf import haproxy
from wharf.errors import BadInput, Failure, reaching
from wharf.http import split_credentials

CSV_PATH = "/haproxy?stats;csv"


@dataclass(frozen=True)
class StatRow:
    """One row of `show stat`: proxy name, server name (FRONTEND/BACKEND for the aggregates), fields."""

    pxname: str
    svname: str
    fields: Mapping[str, str] = field(repr=False)

    def number(self, *names: str) -> float | None:
        """The first of `names` that holds a number (HAProxy leaves fields empty that do not apply)."""
        for name in names:
            raw = self.fields.get(name, "").strip()
            if raw:
                try:
                    return float(raw)
                except ValueError:
                    continue
        return None


def parse_stat_csv(text: str) -> list[StatRow]:
    """Rows of a `show stat` CSV; each `# pxname,...` header line applies to the rows after it."""
    rows: list[StatRow] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            header = next(csv.reader([line.lstrip("# ")]))
            continue
        if header is None:
            continue
        values = next(csv.reader([line]))
        data = dict(zip(header, values, strict=False))
        rows.append(StatRow(data.get("pxname", ""), data.get("svname", ""), data))
    return rows


def backend_readings(rows: Iterable[StatRow], source: str, t: float) -> dict[str, Reading]:
    """Each backend's counters at `t`: requests (`req_tot`, else `stot`) and rate (`req_rate`,
    else `rate`), keyed by backend name; `source` names the HAProxy they came from."""
    found: dict[str, Reading] = {}
    for row in rows:
        if row.svname != "BACKEND":
            continue
        total = row.number("req_tot", "stot")
        found[row.pxname] = Reading(t, f"{source}#{row.pxname}", None if total is None else int(total),
                                    row.number("req_rate", "rate"))
    return found


def stats_url(base: str) -> str:
    """The CSV URL for `--haproxy BASE` (marathon-lb-autoscale reads `BASE/haproxy?stats;csv`)."""
    if "?stats" in base:
        return base if base.endswith(";csv") else base + ";csv"
    return base.rstrip("/") + CSV_PATH


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)})


@dataclass(frozen=True)
class StatsSource:
    """One HAProxy: a unix admin socket path, or an HTTP base URL (credentials kept apart)."""

    where: str
    auth: tuple[str, str] | None = field(default=None, repr=False)
    timeout: float = 5.0

    @classmethod
    def parse(cls, text: str, auth: tuple[str, str] | None = None) -> StatsSource:
        """`/path/admin.sock`, `unix:/path`, or `http(s)://[user:pass@]host:port[/...]`."""
        text = text.strip()
        if text.startswith("unix:"):
            text = text[len("unix:"):]
        if text.startswith("/"):
            return cls(text)
        if not text.startswith(("http://", "https://")):
            raise BadInput(f"--haproxy: {text!r}: expected an http(s) URL or an admin socket path")
        url, given = split_credentials(text)
        return cls(url, given or auth)

    def addresses(self, resolve: Callable[[str], list[str]] | None = None) -> list[StatsSource]:
        """One source per address of the URL's host, as marathon-lb-autoscale polls every HAProxy
        behind a DNS name (a Mesos-DNS A record); an IP, a socket, or a name that does not
        resolve stays as it is."""
        parts = urlsplit(self.where)
        host = parts.hostname
        if self.where.startswith("/") or not host or _is_ip(host):
            return [self]
        try:
            found = (resolve or _resolve)(host)
        except OSError:
            return [self]
        sources = []
        for address in found or [host]:
            shown = f"[{address}]" if ":" in address else address
            netloc = f"{shown}:{parts.port}" if parts.port else shown
            sources.append(StatsSource(urlunsplit(parts._replace(netloc=netloc)), self.auth, self.timeout))
        return sources

    @property
    def name(self) -> str:
        """How the source is shown and logged (never with credentials)."""
        return self.where

    def read(self) -> str:
        """The `show stat` CSV text. Raises Failure if HAProxy cannot be reached."""
        if self.where.startswith("/"):
            return haproxy.ask(self.where, "show stat", self.timeout)
        with reaching("HAProxy", self.where):
            response = requests.get(stats_url(self.where), auth=self.auth, timeout=self.timeout)
        if response.status_code != 200:
            raise Failure(f"HAProxy at {self.where} answered HTTP {response.status_code} for its stats")
        return response.text
