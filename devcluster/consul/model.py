"""Records held by the Consul stand-in's state, and Go-style duration helpers.

Records are frozen; the state replaces them rather than mutating them. Durations are
kept in seconds and printed the way Go's ``time.Duration.String()`` prints them, because
that is how Consul echoes ``Interval``, ``Timeout`` and friends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

PASSING, WARNING, CRITICAL = "passing", "warning", "critical"
STATUSES = (PASSING, WARNING, CRITICAL)
SERF_CHECK_ID = "serfHealth"
NODE_MAINT_ID = "_node_maintenance"
SERVICE_MAINT_PREFIX = "_service_maintenance:"

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_PART = re.compile(r"(\d*\.?\d*)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Parse a Go duration (``"10s"``, ``"1m30s"``, ``"250ms"``, ``"0"``) into seconds."""
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f'invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(body):
        match = _PART.match(body, pos)
        if not match or match.group(1) in ("", "."):
            raise ValueError(f'invalid duration "{text}"')
        total += float(match.group(1)) * _UNITS_NS[match.group(2)]
        pos = match.end()
    return sign * total / 1e9


def format_duration(seconds: float) -> str:
    """Print seconds the way Go's ``time.Duration.String()`` does (``1m30s``, ``500ms``)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 10**9:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = _trim(rest / 1e9) + "s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


V = TypeVar("V")


def frozen_map(data: Mapping[str, V] | None = None) -> Mapping[str, V]:
    """A read-only copy, so frozen records stay immutable all the way down."""
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True)
class Limits:
    """Timing rules real Consul enforces; tests of the pure state may relax them."""

    min_check_interval: float = 1.0  # checks.MinInterval: shorter intervals are raised to 1s
    min_deregister_after: float = 60.0  # DeregisterCriticalServiceAfter has a 1 minute floor
    session_ttl_multiplier: float = 2.0  # a TTL session is only invalidated after 2 x TTL
    session_ttl_min: float = 10.0
    session_ttl_max: float = 86400.0
    max_lock_delay: float = 60.0
    check_output_max: int = 4096
    default_check_timeout: float = 10.0


@dataclass(frozen=True)
class Node:
    id: str
    name: str
    address: str
    datacenter: str
    meta: Mapping[str, str]
    create_index: int
    modify_index: int


@dataclass(frozen=True)
class Service:
    id: str
    name: str
    tags: tuple[str, ...] = ()
    address: str = ""
    port: int = 0
    meta: Mapping[str, str] = field(default_factory=frozen_map)
    tagged_addresses: Mapping[str, tuple[str, int]] = field(default_factory=frozen_map)  # name -> (address, port)
    weights: tuple[int, int] = (1, 1)
    enable_tag_override: bool = False
    local: bool = True  # registered through this agent (the built-in "consul" service is not)
    create_index: int = 0
    modify_index: int = 0


@dataclass(frozen=True)
class CheckSpec:
    """How a check is run: ``kind`` is ``http``, ``tcp``, ``ttl``, ``maintenance`` or ``""``."""

    kind: str = ""
    http: str = ""
    method: str = ""
    header: Mapping[str, list[str]] = field(default_factory=frozen_map)
    body: str = ""
    tls_skip_verify: bool = False
    tcp: str = ""
    interval: float = 0.0
    timeout: float = 0.0
    ttl: float = 0.0
    deregister_after: float = 0.0


@dataclass(frozen=True)
class Check:
    id: str
    name: str
    status: str = CRITICAL
    notes: str = ""
    output: str = ""
    service_id: str = ""
    spec: CheckSpec = CheckSpec()
    definition_index: int = 0  # bumps when (re)registered, so stale probe results are ignored
    create_index: int = 0
    modify_index: int = 0


@dataclass(frozen=True)
class Session:
    id: str
    name: str
    node: str
    lock_delay: float
    behavior: str
    ttl: str
    node_checks: tuple[str, ...]
    service_checks: tuple[str, ...]
    legacy_checks: tuple[str, ...] | None
    create_index: int
    modify_index: int


@dataclass(frozen=True)
class KVEntry:
    key: str
    value: bytes | None
    flags: int = 0
    session: str = ""
    lock_index: int = 0
    create_index: int = 0
    modify_index: int = 0

    def same_content(self, other: KVEntry) -> bool:
        return (self.value, self.flags, self.session, self.lock_index) == (
            other.value,
            other.flags,
            other.session,
            other.lock_index,
        )


class Indexes:
    """A raft-like index: one monotonic counter and the last index each table changed at.

    A write takes ``next()``, changes what it changes and ``touch()``es those tables with
    that index; a write that changes nothing leaves every index alone.
    """

    def __init__(self) -> None:
        self.current = 0
        self.tables: dict[str, int] = {}

    def next(self) -> int:
        return self.current + 1

    def touch(self, idx: int, *tables: str) -> None:
        self.current = max(self.current, idx)
        for table in tables:
            self.tables[table] = idx

    def table(self, *names: str) -> int:
        return max((self.tables.get(name, 0) for name in names), default=0)
