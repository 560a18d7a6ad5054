"""The KV store: entries, tombstones, session locks with lock-delay, and KV transactions.

Pure: callers pass the candidate raft index (``idx``) and the time (``now``); the store
touches the shared :class:`Indexes` only when something really changed. The index rules
follow Consul's state store: a single key answers with its ModifyIndex, a prefix with the
highest ModifyIndex or tombstone under it, and otherwise the table index, so a deleted key
still moves the index of a watch on its prefix.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from devcluster.consul.model import Indexes, KVEntry

TABLES = ("kvs", "tombstones")
WRITE_VERBS = frozenset({"set", "cas", "lock", "unlock", "delete", "delete-cas", "delete-tree"})
READ_VERBS = frozenset({"get", "get-tree", "check-index", "check-session", "check-not-exists"})


class KVError(Exception):
    """An operation Consul refuses with an error (HTTP 500), not with ``false``."""


@dataclass(frozen=True)
class TxnOp:
    """One KV operation of a ``/v1/txn`` request (``index`` is the CAS/check index)."""

    verb: str
    key: str
    value: bytes | None = None
    flags: int = 0
    index: int = 0
    session: str = ""


def entry_json(entry: KVEntry, with_value: bool = True) -> dict[str, Any]:
    """A DirEntry as Consul prints it: Value is base64 (or null), Session omitted when empty."""
    value = entry.value if with_value else None
    data: dict[str, Any] = {
        "LockIndex": entry.lock_index,
        "Key": entry.key,
        "Flags": entry.flags,
        "Value": None if value is None else base64.b64encode(value).decode(),
    }
    if entry.session:
        data["Session"] = entry.session
    data["CreateIndex"] = entry.create_index
    data["ModifyIndex"] = entry.modify_index
    return data


class KVStore:
    def __init__(self, indexes: Indexes) -> None:
        self.ix = indexes
        self.entries: dict[str, KVEntry] = {}
        self.tombstones: dict[str, int] = {}
        self.lock_delays: dict[str, float] = {}  # key -> time before which no session may acquire it

    # -- reads ---------------------------------------------------------------------------------

    def get(self, key: str) -> tuple[int, KVEntry | None]:
        entry = self.entries.get(key)
        if entry is not None:
            return entry.modify_index, entry
        return self.ix.table(*TABLES), None

    def list_prefix(self, prefix: str) -> tuple[int, list[KVEntry]]:
        found = [self.entries[k] for k in sorted(self.entries) if k.startswith(prefix)]
        return self._prefix_index(prefix, found), found

    def keys(self, prefix: str, separator: str = "") -> tuple[int, list[str]]:
        idx, found = self.list_prefix(prefix)
        keys: list[str] = []
        for entry in found:
            key = entry.key
            if separator:
                cut = key.find(separator, len(prefix))
                if cut >= 0:
                    key = key[: cut + len(separator)]
            if not keys or keys[-1] != key:
                keys.append(key)
        return idx, keys

    def _prefix_index(self, prefix: str, found: list[KVEntry]) -> int:
        if prefix == "":
            return self.ix.table(*TABLES)
        latest = max((e.modify_index for e in found), default=0)
        graves = max((i for k, i in self.tombstones.items() if k.startswith(prefix)), default=0)
        return max(latest, graves) or self.ix.table(*TABLES)

    # -- writes --------------------------------------------------------------------------------

    def _store(self, idx: int, entry: KVEntry) -> KVEntry:
        existing = self.entries.get(entry.key)
        if existing is not None and existing.same_content(entry):
            return existing
        created = existing.create_index if existing is not None else idx
        stored = replace(entry, create_index=created, modify_index=idx)
        self.entries[entry.key] = stored
        self.ix.touch(idx, "kvs")
        return stored

    def _remove(self, idx: int, key: str) -> None:
        if self.entries.pop(key, None) is not None:
            self.tombstones[key] = idx
            self.ix.touch(idx, *TABLES)

    def set(self, idx: int, key: str, value: bytes | None, flags: int = 0) -> KVEntry:
        """Plain PUT: the value changes, any lock on the key is kept."""
        existing = self.entries.get(key)
        session, lock_index = (existing.session, existing.lock_index) if existing else ("", 0)
        return self._store(idx, KVEntry(key, value, flags, session, lock_index))

    def cas(self, idx: int, key: str, value: bytes | None, flags: int, cas_index: int) -> KVEntry | None:
        """PUT ?cas=N: 0 means create-only; otherwise N must be the key's ModifyIndex."""
        existing = self.entries.get(key)
        if cas_index == 0 and existing is not None:
            return None
        if cas_index != 0 and (existing is None or existing.modify_index != cas_index):
            return None
        return self.set(idx, key, value, flags)

    def lock(
        self, idx: int, key: str, value: bytes | None, flags: int, session: str, sessions: Mapping[str, Any], now: float
    ) -> KVEntry | None:
        """PUT ?acquire=S: None when another session holds the key or its lock-delay runs."""
        if not session:
            raise KVError("missing session")
        if session not in sessions:
            raise KVError(f'invalid session "{session}"')
        if self.lock_delays.get(key, 0.0) > now:
            return None
        existing = self.entries.get(key)
        if existing is not None and existing.session not in ("", session):
            return None
        if existing is None:
            lock_index = 1
        elif existing.session == session:
            lock_index = existing.lock_index
        else:
            lock_index = existing.lock_index + 1
        return self._store(idx, KVEntry(key, value, flags, session, lock_index))

    def unlock(self, idx: int, key: str, value: bytes | None, flags: int, session: str) -> KVEntry | None:
        """PUT ?release=S: None unless S holds the key."""
        if not session:
            raise KVError("missing session")
        existing = self.entries.get(key)
        if existing is None or existing.session != session:
            return None
        return self._store(idx, KVEntry(key, value, flags, "", existing.lock_index))

    def delete(self, idx: int, key: str) -> None:
        self._remove(idx, key)

    def delete_cas(self, idx: int, key: str, cas_index: int) -> bool:
        """DELETE ?cas=N; like Consul, a key that does not exist counts as deleted."""
        existing = self.entries.get(key)
        if existing is None:
            return True
        if existing.modify_index != cas_index:
            return False
        self._remove(idx, key)
        return True

    def delete_tree(self, idx: int, prefix: str) -> None:
        for key in [k for k in self.entries if k.startswith(prefix)]:
            self._remove(idx, key)

    def invalidate_session(self, idx: int, session: str, delete: bool, lock_delay_until: float) -> None:
        """Release (or delete, for Behavior=delete) every key the session holds; start lock-delay."""
        for key in [k for k, e in self.entries.items() if e.session == session]:
            if lock_delay_until > 0:
                self.lock_delays[key] = lock_delay_until
            if delete:
                self._remove(idx, key)
            else:
                self._store(idx, replace(self.entries[key], session=""))

    def expire_lock_delays(self, now: float) -> None:
        for key in [k for k, until in self.lock_delays.items() if until <= now]:
            del self.lock_delays[key]

    # -- transactions --------------------------------------------------------------------------

    def txn(
        self, idx: int, ops: list[TxnOp], sessions: Mapping[str, Any], now: float
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Apply ops atomically: (results, []) on success, ([], errors) after a full rollback."""
        saved = (
            dict(self.entries),
            dict(self.tombstones),
            dict(self.lock_delays),
            dict(self.ix.tables),
            self.ix.current,
        )
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for position, op in enumerate(ops):
            try:
                results.extend({"KV": entry_json(e, keep)} for e, keep in self._txn_op(idx, op, sessions, now))
            except KVError as err:
                errors.append({"OpIndex": position, "What": str(err)})
        if errors:
            self.entries, self.tombstones, self.lock_delays, self.ix.tables, self.ix.current = saved
            return [], errors
        return results, []

    def _txn_op(self, idx: int, op: TxnOp, sessions: Mapping[str, Any], now: float) -> list[tuple[KVEntry, bool]]:
        """Run one op; returns (entry, keep_value) pairs for the Results list."""
        key, verb = op.key, op.verb
        if verb == "set":
            return [(self.set(idx, key, op.value, op.flags), False)]
        if verb == "cas":
            return _must(self.cas(idx, key, op.value, op.flags, op.index), f'failed to set key "{key}", index is stale')
        if verb == "lock":
            if self.lock_delays.get(key, 0.0) > now:
                raise KVError(f'failed to lock key "{key}" due to lock delay')
            entry = self.lock(idx, key, op.value, op.flags, op.session, sessions, now)
            return _must(entry, f'failed to lock key "{key}", lock is already held')
        if verb == "unlock":
            entry = self.unlock(idx, key, op.value, op.flags, op.session)
            return _must(entry, f'failed to unlock key "{key}", lock isn\'t held, or is held by another session')
        if verb == "delete":
            self.delete(idx, key)
            return []
        if verb == "delete-tree":
            self.delete_tree(idx, key)
            return []
        if verb == "delete-cas":
            if not self.delete_cas(idx, key, op.index):
                raise KVError(f'failed to delete key "{key}", index is stale')
            return []
        if verb == "get-tree":
            return [(entry, True) for entry in self.list_prefix(key)[1]]
        entry = self.entries.get(key)
        if verb == "get":
            return [(_must(entry, f'key "{key}" doesn\'t exist')[0][0], True)]
        if verb == "check-not-exists":
            if entry is not None:
                raise KVError(f'key "{key}" exists')
            return []
        if verb == "check-index":
            found = _must(entry, f'failed to check index, key "{key}" doesn\'t exist')
            if found[0][0].modify_index != op.index:
                raise KVError(
                    f'failed index check for key "{key}", current modify index {found[0][0].modify_index} != {op.index}'
                )
            return found
        if verb == "check-session":
            found = _must(entry, f'failed to check session, key "{key}" doesn\'t exist')
            if found[0][0].session != op.session:
                raise KVError(
                    f'failed session check for key "{key}", current session "{found[0][0].session}" != "{op.session}"'
                )
            return found
        raise KVError(f'unknown KV verb "{verb}"')


def _must(entry: KVEntry | None, message: str) -> list[tuple[KVEntry, bool]]:
    if entry is None:
        raise KVError(message)
    return [(entry, False)]
