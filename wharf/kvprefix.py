"""A Consul KV prefix that wharf owns: documents written under it in one transaction, and a daemon
that acts on what it holds whenever it changes. `wharf apps` and `wharf jobs` both use it
(`sync-kv`, `watch-kv`); each room says what its documents are and what to do with them.

Layout under the prefix `P`: one key per document, `P/<name>`, whose value is its JSON (stable
bytes: sorted keys, so an unchanged document is an unchanged value); and `P/.wharf/commit`, the
commit the documents came from, if given.

`sync` writes only the keys whose value changed, and removes keys of documents no longer wanted, all
in one Consul transaction guarded by each key's ModifyIndex (`cas`), so a concurrent writer makes it
fail rather than be overwritten. If Consul cannot be read nothing is written: an unreadable prefix is
never taken as an empty one. Consul allows at most 64 operations in a transaction; a larger change
is refused with the count (split the push). Without a commit, the stored one stays.

`PrefixWatcher` is the daemon: a blocking query on the prefix (a `wharf.watch.ConsulWatch`, one
query a cycle) wakes it; it acts on the state at the index it read (`act`), and remembers that index
once handled. A wake-up at an index already handled does nothing; several writes between two
wake-ups act only on the last state. An `act` that raises leaves the index unhandled: the skeleton
backs off and the next cycle tries again. Its notifications (`notices`) are sent as they happen.
"""

from __future__ import annotations

import base64
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wharf.configrepo import SpecError, SpecErrors
from wharf.consul_http import address_of
from wharf.daemon import Daemon
from wharf.errors import BadInput, Failure, reaching
from wharf.log import fields
from wharf.notify import Event
from wharf.settings import Settings
from wharf.sinks import DaemonNotices
from wharf.watch import ConsulWatch

__all__ = ["COMMIT_KEY", "MAX_TXN_OPS", "Entry", "PrefixWatcher", "entries_of", "layout", "prefix_of",
           "read_prefix", "refusal_events", "split", "sync", "sync_lines", "txn_ops"]

log = logging.getLogger("wharf.kvprefix")
COMMIT_KEY = ".wharf/commit"
MAX_TXN_OPS = 64  # Consul's limit on operations in one transaction


@dataclass(frozen=True)
class Entry:
    """One key under the prefix as Consul holds it."""

    key: str
    value: bytes
    modify_index: int


def prefix_of(text: str, flag: str = "--prefix", why: str = "wharf writes and deletes every key under it") -> str:
    """`--prefix` (or the `flag` named): a KV path without leading or trailing slashes; empty is bad
    input, saying `why` it matters."""
    prefix = text.strip().strip("/")
    if not prefix:
        raise BadInput(f"{flag}: must not be empty ({why})")
    return prefix


def layout(prefix: str, documents: Mapping[str, Any], commit: str | None = None) -> dict[str, bytes]:
    """What the keys under `prefix` should hold: each document (by its name under the prefix) as
    stable JSON bytes, and the commit."""
    out = {f"{prefix}/{name}": json.dumps(data, sort_keys=True, indent=1).encode() + b"\n"
           for name, data in documents.items()}
    if commit:
        out[f"{prefix}/{COMMIT_KEY}"] = commit.encode()
    return out


def txn_ops(wanted: Mapping[str, bytes], current: Mapping[str, Entry], keep_commit: bool = False) -> list[dict]:
    """The Consul transaction that turns `current` into `wanted`: a `cas` set for each new or
    changed key (index 0: must not exist yet), a `delete-cas` for each key no longer wanted."""
    ops = []
    for key in sorted(wanted):
        have = current.get(key)
        if have is None or have.value != wanted[key]:
            ops.append({"KV": {"Verb": "cas", "Key": key, "Value": base64.b64encode(wanted[key]).decode(),
                               "Index": have.modify_index if have else 0}})
    for key in sorted(set(current) - set(wanted)):
        if keep_commit and key.endswith("/" + COMMIT_KEY):
            continue
        ops.append({"KV": {"Verb": "delete-cas", "Key": key, "Index": current[key].modify_index}})
    return ops


def entries_of(raw: Iterable[Mapping[str, Any]] | None) -> dict[str, Entry]:
    """Consul's recurse answer as Entries (folders, which have no value, are left out)."""
    out = {}
    for item in raw or []:
        if item.get("Key", "").endswith("/"):
            continue
        out[item["Key"]] = Entry(item["Key"], item.get("Value") or b"", int(item.get("ModifyIndex", 0)))
    return out


def split(entries: Mapping[str, Entry], prefix: str) -> tuple[list[tuple[str, str, bytes]], str | None]:
    """The documents under `prefix` as (key, name under the prefix, value), sorted by key, and the
    stored commit (None if there is none)."""
    documents, commit = [], None
    for key, entry in sorted(entries.items()):
        name = key[len(prefix) + 1:]
        if name == COMMIT_KEY:
            commit = entry.value.decode("utf-8", "replace").strip() or None
        else:
            documents.append((key, name, entry.value))
    return documents, commit


def sync_lines(changed: Iterable[str], prefix: str, count: int, noun: str) -> list[str]:
    """What `sync-kv` prints for people: each key written or deleted, then one summary line."""
    keys = [f"wrote {key}" for key in changed]
    if keys:
        return [*keys, f"{len(keys)} keys changed under {prefix}/ ({count} {noun})"]
    return [f"nothing to write: {count} {noun} under {prefix}/ are up to date"]


def refusal_events(kind: str, errors: Iterable[SpecError]) -> list[Event]:
    """What a refused index tells the team: one `failed` event per bad key, naming it and why."""
    by_key: dict[str, list[str]] = defaultdict(list)
    for error in errors:
        by_key[error.file].append(str(error))
    return [Event(kind, key, "failed", message="refused, nothing sent: " + "; ".join(lines))
            for key, lines in by_key.items()]


# --- Consul I/O --------------------------------------------------------------------------------

def read_prefix(client: Any, prefix: str, index: int | None = None, wait: str | None = None) -> tuple[int, dict]:
    """(X-Consul-Index, entries) of everything under `prefix`; raises Failure if Consul cannot say."""
    kwargs: dict[str, Any] = {"recurse": True}
    if index is not None:
        kwargs.update(index=index, wait=wait)
    with reaching("Consul", address_of(client)):  # py-consul raises its own and requests' exceptions
        found, raw = client.kv.get(prefix + "/", **kwargs)
    return int(found or 0), entries_of(raw)


def sync(client: Any, wanted: Mapping[str, bytes], prefix: str, noun: str = "documents") -> list[str]:
    """Make the keys under `prefix` hold `wanted` (from `layout`) in one transaction; the keys
    changed (set or deleted). A stored commit stays when `wanted` has none. `noun` names what the
    documents are in the refusal of a change too large for one transaction."""
    _, current = read_prefix(client, prefix)
    ops = txn_ops(wanted, current, keep_commit=f"{prefix}/{COMMIT_KEY}" not in wanted)
    if not ops:
        return []
    if len(ops) > MAX_TXN_OPS:
        raise BadInput(f"--prefix {prefix}: {len(ops)} keys change, more than the {MAX_TXN_OPS} operations Consul "
                       f"allows in one transaction; sync fewer {noun} at a time")
    with reaching("Consul", address_of(client)):  # one transaction: all of it is written or nothing
        result = client.txn.put(ops)
    if isinstance(result, dict) and result.get("Errors"):
        raise Failure(f"Consul: transaction refused, nothing written: {result['Errors']}")
    return [op["KV"]["Key"] for op in ops]


class PrefixWatcher(Daemon):
    """A daemon acting on what a KV prefix holds whenever its index moves; a room implements `act`."""

    interval = 0.0  # the blocking query does the waiting

    def __init__(self, name: str, consul: Any, prefix: str, *, wait: float = 30.0, metrics_port: int | None = None,
                 logger: logging.Logger = log) -> None:
        super().__init__(name, metrics_port)
        self.consul, self.prefix, self.wait_seconds, self.kv_log = consul, prefix, wait, logger
        self.seen: int | None = None  # the index the last read returned
        self.handled: int | None = None  # the index whose state was acted on (or refused)
        self.notices = DaemonNotices()  # the settings' sinks once `run(settings)` starts
        self.watch = ConsulWatch(f"kv:{prefix}", self._read, address=address_of(consul), logger=logger)

    def act(self, index: int, entries: dict[str, Entry]) -> None:
        """Act on the prefix's state at `index`. Raise to have the skeleton back off and try again."""
        raise NotImplementedError

    def run(self, settings: Settings | None = None) -> int:
        """Run until stopped, notifying the sinks the settings name (bad ones: BadInput, before anything)."""
        self.notices = DaemonNotices(settings)
        return super().run(settings)

    def close(self) -> None:
        """Flush the notifications still queued (for a few seconds at most)."""
        self.notices.close()

    def refused(self, index: int, errors: SpecErrors, kind: str, line: str) -> None:
        """Log each bad value (naming its key) as `line` and tell the team: nothing of `index` is sent."""
        for error in errors.errors:
            self.kv_log.error(line, extra=fields(index=index, error=str(error)))
        self.notices.send(refusal_events(kind, errors.errors))

    def _read(self, index: int) -> tuple[int, tuple[int, dict[str, Entry]]]:
        found, entries = read_prefix(self.consul, self.prefix, index or None, f"{self.wait_seconds:g}s")
        return found, (found, entries)

    def run_cycle(self) -> None:
        self.wait(self.watch.due_in())  # the watch's rate limit, cut short by SIGTERM
        if self.stopping:
            return
        _, (index, entries) = self.watch.step()  # a failure is raised: the skeleton backs off
        if self.seen is not None and index < self.seen:
            self.kv_log.warning("KV index went back (a Consul restart?); reading afresh",
                                extra=fields(index=index, was=self.seen))
            self.handled = None
        self.seen = index
        if index == self.handled or self.stopping:
            return
        self.act(index, entries)
        self.handled = index
