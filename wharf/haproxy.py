"""One client for HAProxy's Runtime API and master CLI (one command, the whole answer), one
reader of its statistics (`show stat` CSV over the admin socket or its stats page), and the record
of which config file the running HAProxy was made to apply (`mark_applied`, `applied`)."""

from __future__ import annotations

import csv
import ipaddress
import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit, urlunsplit

import requests

from wharf.atomic import write_atomic
from wharf.errors import BadInput, Failure, reaching
from wharf.http import split_credentials


def _endpoint(address: str | Path) -> tuple[socket.AddressFamily, str | tuple[str, int]]:
    """A unix socket path (`/run/admin.sock`, `unix:/run/admin.sock`) or `host:port` (`[::1]:9999`)."""
    text = str(address).removeprefix("unix:")
    host, sep, port = text.rpartition(":")
    if isinstance(address, Path) or text.startswith(("/", ".")) or not sep or not port.isdigit():
        return socket.AF_UNIX, text
    host = host.strip("[]")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))


def send(address: str | Path, command: str, timeout: float = 5.0) -> str:
    """Send `command` to an HAProxy stats/admin or master socket and return the whole answer.
    Raises OSError (a timeout included) when the socket cannot be reached or stops answering."""
    family, where = _endpoint(address)
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(where)
        conn.sendall(command.encode() + b"\n")
        conn.shutdown(socket.SHUT_WR)  # the master CLI answers once the request side is closed
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def ask(address: str | Path, command: str, timeout: float = 5.0) -> str:
    """`send`, its failures as wharf's errors: `Unreachable` naming HAProxy at `address` and what to check."""
    with reaching("HAProxy", str(address)):
        return send(address, command, timeout)


#: HAProxy's admin-state bits that keep a server out of rotation (SRV_ADMF_MAINT: forced, inherited,
#: resolver maintenance); 0x04 only says the config wrote it `disabled`, which `state ready` overrides
MAINT_BITS = 0x01 | 0x02 | 0x20


class ServerState(NamedTuple):
    """One server of `show servers state`: where it points, whether it is in rotation as far as its
    admin state goes (no maintenance bit: what the renderer sets), and whether it is up now (in
    rotation and HAProxy's own health check, if any, finds it running)."""

    address: str
    port: int
    ready: bool
    up: bool


def servers_state(text: str) -> dict[tuple[str, str], ServerState]:
    """`show servers state`, as (backend, server) -> `ServerState`."""
    found: dict[tuple[str, str], ServerState] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 19 or line.startswith("#") or not words[0].isdigit():
            continue
        op_state, admin = int(words[5]), int(words[6])
        port = int(words[18]) if words[18].isdigit() else 0
        ready = not admin & MAINT_BITS
        found[words[1], words[3]] = ServerState(words[4], port, ready, ready and op_state == 2)
    return found


# --- statistics ---------------------------------------------------------------------------------

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
            return ask(self.where, "show stat", self.timeout)
        with reaching("HAProxy", self.where):
            response = requests.get(stats_url(self.where), auth=self.auth, timeout=self.timeout)
        if response.status_code != 200:
            raise Failure(f"HAProxy at {self.where} answered HTTP {response.status_code} for its stats")
        return response.text


def takes_requests(status: str) -> bool:
    """Whether an HAProxy server with this `show stat` status is in rotation (`UP`, `UP 1/3`, or
    `no check` for a server HAProxy does not check)."""
    return status.startswith("UP") or status == "no check"


# --- which config the running HAProxy applied (written by the renderer, read by `wharf trace`) ----

APPLIED_SUFFIX = ".applied"


@dataclass(frozen=True)
class Applied:
    """The config file as it was when the renderer last had HAProxy run it (a reload or Runtime API
    commands): its size and modification time, and when and how it was applied."""

    size: int
    mtime_ns: int
    at: float
    how: str

    def matches(self, info: os.stat_result) -> bool:
        """Whether the config file, as `info` (its stat) shows it, is still the file HAProxy was made to run."""
        return (info.st_size, info.st_mtime_ns) == (self.size, self.mtime_ns)


def mark_applied(config: Path, how: str) -> None:
    """Record that HAProxy now runs `config` as it is (beside it, `<config>.applied`): its size and
    modification time, no digest (a pass at 5,000 services must stay cheap)."""
    info = config.stat()
    record = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "at": time.time(), "how": how}
    write_atomic(config.with_name(config.name + APPLIED_SUFFIX), json.dumps(record))


def applied(config: Path) -> Applied | None:
    """What the renderer last recorded for `config`, or None when it never did (or the record is unreadable)."""
    try:
        data = json.loads(config.with_name(config.name + APPLIED_SUFFIX).read_text())
        return Applied(int(data["size"]), int(data["mtime_ns"]), float(data["at"]), str(data["how"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
