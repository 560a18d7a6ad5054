"""Which catalog values may reach a config file, position by position.

A value that could end a line, start a comment, open a block or quote, or split a word
(newline, `#`, quotes, braces, `;`, spaces, control or non-ASCII characters, huge values)
is never written. `clean()` drops the instance or service that carries such a value in a
position the templates use (names, addresses, ports), and drops unsafe tags, meta entries and
KV values themselves, each with a reason for the log.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

from consul_templates.snapshot import Instance, Service, Snapshot, paused_gc

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
INSTANCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,255}")
HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
VHOST = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*")
PATH = re.compile(r"/[A-Za-z0-9._~%/-]{0,255}")
TAG = re.compile(r"[A-Za-z0-9._:=/@+-]{1,255}")
META_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
# printable ASCII without whitespace, quotes, `#`, `;`, braces, backslash, backquote, `$`
VALUE = re.compile(r"[A-Za-z0-9._:=/@+,%*!?&()<>\[\]|^~-]{0,512}")
IPV4 = re.compile(r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}")
KV_KEY = re.compile(r"[A-Za-z0-9._/-]{1,512}")


@dataclass(frozen=True)
class Drop:
    """Something left out of the snapshot, and why."""

    what: str  # "service", "instance", "tag", "meta", "kv"
    name: str  # the service name, instance id, or key (repr'd, so it is safe to log)
    reason: str


@lru_cache(maxsize=65536)
def is_name(value: str) -> bool:
    """A service or node name: letters, digits, `.`, `_`, `-`; starts with a letter or digit."""
    return bool(NAME.fullmatch(value))


@lru_cache(maxsize=65536)
def is_hostname(value: str) -> bool:
    """A DNS name: dot-separated labels of letters, digits and inner hyphens, at most 253 long."""
    return len(value) <= 253 and all(HOST_LABEL.fullmatch(p) for p in value.split("."))


@lru_cache(maxsize=65536)
def is_address(value: str) -> bool:
    """An IPv4 or IPv6 literal, or a hostname."""
    if IPV4.fullmatch(value):
        return True
    try:
        ipaddress.ip_address(value)
        return "%" not in value  # no IPv6 zone ids: they carry interface names
    except ValueError:
        return is_hostname(value)


def is_port(value: int) -> bool:
    return 0 < value < 65536


@lru_cache(maxsize=65536)
def is_vhost(value: str) -> bool:
    """One virtual host: a hostname, optionally with a leading `*.` wildcard."""
    return len(value) <= 253 and bool(VHOST.fullmatch(value))


@lru_cache(maxsize=65536)
def is_path(value: str) -> bool:
    """A URL path prefix: starts with `/`, then unreserved characters, `%` and `/`."""
    return bool(PATH.fullmatch(value))


@lru_cache(maxsize=65536)
def is_tag(value: str) -> bool:
    return bool(TAG.fullmatch(value))


@lru_cache(maxsize=65536)
def is_meta_key(value: str) -> bool:
    return bool(META_KEY.fullmatch(value))


@lru_cache(maxsize=65536)
def is_value(value: str) -> bool:
    """A meta or KV value that can sit in a config word without quoting."""
    return bool(VALUE.fullmatch(value))


@lru_cache(maxsize=65536)
def _is_instance_id(value: str) -> bool:
    return bool(INSTANCE_ID.fullmatch(value))


def _instance_problem(inst: Instance) -> str | None:
    if not _is_instance_id(inst.id):
        return "id has characters a config cannot hold"
    if inst.node and not is_name(inst.node):
        return "node name has characters a config cannot hold"
    if not is_address(inst.address):
        return "address is not an IP address or hostname"
    if not is_port(inst.port):
        return "port is not in 1-65535"
    return None


def _joined(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """`pattern` repeated, newline-separated: a newline is in none of the classes, so the joined
    values match exactly when every value matches on its own (one C-speed match instead of many)."""
    return re.compile(rf"(?:{pattern.pattern})(?:\n(?:{pattern.pattern}))*")


TAGS, META_KEYS, VALUES = _joined(TAG), _joined(META_KEY), _joined(VALUE)


def _all_safe(inst: Instance) -> bool:
    """Whether every tag and meta entry of `inst` may be written as it is."""
    if inst.tags and not TAGS.fullmatch("\n".join(inst.tags)):
        return False
    meta = inst.meta
    return not meta or bool(META_KEYS.fullmatch("\n".join(meta)) and VALUES.fullmatch("\n".join(meta.values())))


def clean(snapshot: Snapshot) -> tuple[Snapshot, tuple[Drop, ...]]:
    """The snapshot with every unsafe value left out, and what was left out."""
    with paused_gc():
        return _clean(snapshot)


def _clean(snapshot: Snapshot) -> tuple[Snapshot, tuple[Drop, ...]]:
    drops: list[Drop] = []
    services = []
    for svc in snapshot.services:
        if not is_name(svc.name):
            drops.append(Drop("service", repr(svc.name)[:80], "name has characters a config cannot hold"))
            continue
        kept = []
        for inst in svc.instances:
            problem = _instance_problem(inst)
            if problem:
                drops.append(Drop("instance", repr(inst.id)[:80], f"{svc.name}: {problem}"))
                continue
            if _all_safe(inst):
                kept.append(inst)  # the common case: nothing to leave out
                continue
            tags = tuple(t for t in inst.tags if is_tag(t))
            for t in inst.tags:
                if not is_tag(t):
                    drops.append(Drop("tag", repr(t)[:80], f"{svc.name} {inst.id}: unsafe tag left out"))
            meta = {}
            for k, v in inst.meta.items():
                if is_meta_key(k) and is_value(v):
                    meta[k] = v
                else:
                    drops.append(Drop("meta", repr(k)[:80], f"{svc.name} {inst.id}: unsafe meta entry left out"))
            kept.append(inst._replace(tags=tags, meta=MappingProxyType(meta)))
        services.append(Service(svc.name, tuple(kept)))
    kv = {}
    for k, v in snapshot.kv.items():
        if KV_KEY.fullmatch(k) and is_value(v):
            kv[k] = v
        else:
            drops.append(Drop("kv", repr(k)[:80], "unsafe key or value left out"))
    return Snapshot(tuple(services), MappingProxyType(kv)), tuple(drops)
