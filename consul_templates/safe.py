"""Which catalog values may reach a config file, position by position.

A value that could end a line, start a comment, open a block or quote, or split a word
(newline, `#`, quotes, braces, `;`, spaces, control or non-ASCII characters, huge values),
or that is not a string where Consul writes one, is never written. `clean()` drops the instance
or service that carries such a value in a position the templates use (names, addresses, ports),
and drops unsafe tags, meta entries and KV values themselves, each with a reason for the log.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import attrgetter
from types import MappingProxyType

from consul_templates.snapshot import Service, ServiceInstance, Snapshot
from wharf.contracts.words import ALNUM, HOST_LABEL, Word, is_name
from wharf.contracts.words import is_path as is_path  # names, vhosts and paths follow the contract's rules
from wharf.contracts.words import is_vhost as is_vhost

INSTANCE_ID_WORD = Word(ALNUM, ALNUM + "._:@/-", 1, 256)
TAG_WORD = Word(ALNUM + "._:=/@+-", ALNUM + "._:=/@+-", 1, 255)
# printable ASCII without whitespace, quotes, `#`, `;`, braces, backslash, backquote, `$`
VALUE_WORD = Word(ALNUM + "._:=/@+,%*!?&()<>[]|^~-", ALNUM + "._:=/@+,%*!?&()<>[]|^~-", 0, 512)

INSTANCE_ID = INSTANCE_ID_WORD.pattern()
TAG = TAG_WORD.pattern()
META_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")
VALUE = VALUE_WORD.pattern()
IPV4 = re.compile(r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}")
KV_KEY = re.compile(r"[A-Za-z0-9._/-]{1,512}")


@dataclass(frozen=True)
class Drop:
    """Something left out of the snapshot, and why."""

    what: str  # "service", "instance", "tag", "meta", "kv"
    name: str  # the service name, instance id, tag, or key (repr'd, so it is safe to log)
    reason: str
    service: str = ""  # the service it belongs to (repr'd when the name itself is unsafe)


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


def _instance_problem(inst: ServiceInstance) -> str | None:
    if not _is_instance_id(inst.id):
        return "id has characters a config cannot hold"
    if inst.node and not is_name(inst.node):
        return "node name has characters a config cannot hold"
    if not is_address(inst.address):
        return "address is not an IP address or hostname"
    if not is_port(inst.port):
        return "port is not in 1-65535"
    return None


def _every(word: Word, values: Sequence[str]) -> bool:
    """Whether every value is a string `word` allows, checked for all of them at once in C: joined
    by newlines (which no word holds), every allowed character is deleted from the text's bytes and
    only the newlines between the values may be left; each value but the first follows a newline,
    which is where its length and first character are looked for."""
    if not values:
        return True
    try:
        text = "\n".join(values)
    except TypeError:  # not all strings
        return False
    if not text.isascii() or text.encode().translate(None, _allowed(word.rest)) != b"\n" * (len(values) - 1):
        return False
    first = values[0]
    if word.shortest and (not first or not values[-1] or "\n\n" in text):  # an empty value
        return False
    if len(first) > word.longest or _longer_than(word.longest).search(text):
        return False
    return not any(first.startswith(c) or "\n" + c in text for c in _not_first(word))


@lru_cache(maxsize=16)
def _allowed(chars: str) -> bytes:
    return chars.encode()


@lru_cache(maxsize=16)
def _longer_than(longest: int) -> re.Pattern[str]:
    """A value after a newline that is longer than `longest`."""
    return re.compile(rf"\n[^\n]{{{longest + 1}}}")


@lru_cache(maxsize=16)
def _not_first(word: Word) -> tuple[str, ...]:
    """The characters `word` may hold but not start with."""
    return tuple(sorted(set(word.rest) - set(word.first)))


_ID, _NODE, _ADDRESS, _PORT, _TAG_LIST, _META = (attrgetter(f) for f in ("id", "node", "address", "port", "tags",
                                                                          "meta"))


def _all_safe(instances: Sequence[ServiceInstance]) -> bool:
    """Whether every position of every instance may be written as it is (the common case, checked
    a position at a time across all instances)."""
    if not instances:
        return True
    ports = list(map(_PORT, instances))
    metas = [m for m in map(_META, instances) if m]
    return (min(ports) > 0 and max(ports) < 65536
            and _every(INSTANCE_ID_WORD, list(map(_ID, instances)))
            and all(is_name(n) for n in set(map(_NODE, instances)) if n)
            and all(is_address(a) for a in set(map(_ADDRESS, instances)))
            and _every(TAG_WORD, list(chain.from_iterable(map(_TAG_LIST, instances))))
            and all(isinstance(k, str) and is_meta_key(k) for k in set(chain.from_iterable(metas)))  # keys repeat
            and _every(VALUE_WORD, _values(metas)))


def _values(metas: Sequence[Mapping[str, str]]) -> list[str]:
    """Every value of every Meta, in order."""
    try:
        return list(chain.from_iterable(map(MappingProxyType.values, metas)))  # type: ignore[arg-type]
    except TypeError:  # another kind of Mapping (a ServiceInstance made by hand)
        return list(chain.from_iterable(m.values() for m in metas))


def clean(snapshot: Snapshot) -> tuple[Snapshot, tuple[Drop, ...]]:
    """The snapshot with every unsafe value left out, and what was left out."""
    services: list[Service] = []
    drops: list[Drop] = []
    for svc in snapshot.services:
        kept, dropped = clean_service(svc)
        drops += dropped
        if kept is not None:
            services.append(kept)
    kv, kv_drops = clean_kv(snapshot.kv)
    if not drops and not kv_drops:
        return snapshot, ()
    return Snapshot(tuple(services), kv), (*drops, *kv_drops)


def clean_kv(pairs: Mapping[str, str]) -> tuple[Mapping[str, str], tuple[Drop, ...]]:
    kv, drops = {}, []
    for k, v in pairs.items():
        if isinstance(k, str) and isinstance(v, str) and KV_KEY.fullmatch(k) and is_value(v):
            kv[k] = v
        else:
            drops.append(Drop("kv", repr(k)[:80], "unsafe key or value left out"))
    return (MappingProxyType(kv) if drops else pairs), tuple(drops)


def clean_service(svc: Service) -> tuple[Service | None, tuple[Drop, ...]]:
    """One service with every unsafe value left out (None when its name itself is unsafe or no
    instance is left), and what was left out."""
    if not is_name(svc.name):
        return None, (Drop("service", repr(svc.name)[:80], "name has characters a config cannot hold",
                           repr(svc.name)[:80]),)
    if _all_safe(svc.instances):
        return svc, ()  # the common case: nothing to leave out
    drops: list[Drop] = []
    kept = []
    for inst in svc.instances:
        problem = _instance_problem(inst)
        if problem:
            drops.append(Drop("instance", repr(inst.id)[:80], problem, svc.name))
            continue
        tags = tuple(t for t in inst.tags if is_tag(t))
        for t in inst.tags:
            if not is_tag(t):
                drops.append(Drop("tag", repr(t)[:80], f"unsafe tag of instance {inst.id} left out", svc.name))
        meta = {}
        for k, v in inst.meta.items():
            if isinstance(k, str) and isinstance(v, str) and is_meta_key(k) and is_value(v):
                meta[k] = v
            else:
                drops.append(Drop("meta", repr(k)[:80], f"unsafe meta entry of instance {inst.id} left out",
                                  svc.name))
        kept.append(inst if len(tags) == len(inst.tags) and len(meta) == len(inst.meta) else
                    inst._replace(tags=tags, meta=MappingProxyType(meta)))
    return (Service(svc.name, tuple(kept)) if kept else None), tuple(drops)
