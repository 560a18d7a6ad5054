"""The framework's state in ZooKeeper (kazoo): its FrameworkID, live tasks, and recently finished ones.

    <root>/framework_id                   the FrameworkID the master gave (the leader re-subscribes with it)
    <root>/tasks/<task id>                a live TaskRecord as JSON (the queue is the tasks in state QUEUED)
    <root>/finished/<bucket>/<task id>    a finished (terminal) TaskRecord, kept for the retention
    <root>/election                       kazoo's Election recipe: the lowest contender leads

A takeover reads `tasks/` only. A task that ends moves to `finished/` in one transaction; a bucket
is named after the epoch second from which all it holds may go (the end of its tasks' retention,
rounded up), so purging is listing bucket names and deleting those that are due, without reading
a record. A finished task is never written again.

Writes go in transactions that first check the leader's own election node: a scheduler whose
session has expired (and so no longer leads) cannot write, even if it has not noticed yet. A
submit is one such transaction, or is refused whole (`TooLarge`) before anything is sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.protocol.serialization import Transaction

from framework.tasks import TaskRecord
from wharf.errors import BadInput, Failure

DEFAULT_ROOT = "/wharf/framework"
DAY = 24 * 3600.0
CHUNK_BYTES = 512 * 1024  # the loop's own writes: stay well under ZooKeeper's 1 MB request limit
MAX_TX_BYTES = 1_000_000  # one submit's transaction: under jute.maxbuffer (1 MiB by default), headers aside

Op = tuple[str, str, bytes]  # (create | set | delete, path, data)


class StoreError(Failure):
    """A write was refused (the fence failed: this scheduler no longer leads) or failed."""


class TooLarge(BadInput, ValueError):
    """A submit that cannot be one ZooKeeper transaction; nothing was stored."""

    def __init__(self, tasks: int, size: int, fixed: int = 0, limit: int = MAX_TX_BYTES) -> None:
        per_task = (size - fixed) / max(tasks, 1) + 8  # 8: room for timestamps written with more digits
        fit = max(0, int((limit - fixed) // per_task))
        super().__init__(f"{tasks} tasks need {size:,} bytes in one ZooKeeper transaction, over the "
                         f"{limit:,}-byte limit (ZooKeeper's jute.maxbuffer is 1 MiB by default); "
                         f"submit at most {fit} instances at a time")
        self.tasks, self.size, self.limit = tasks, size, limit


def bucket_width(retention: float) -> int:
    """Seconds one finished/ bucket spans: about 1/24 of the retention, between 1 s and 1 h."""
    return max(1, min(3600, int(retention / 24)))


def bucket_of(ended: float, retention: float) -> str:
    """The bucket of a task that ended at `ended`: the second from which it may be purged, rounded up."""
    width = bucket_width(retention)
    return str(math.ceil((ended + retention) / width) * width)


def due(buckets: Iterable[str], now: float) -> list[str]:
    """The buckets whose retention has passed at `now`, oldest first."""
    return sorted((b for b in buckets if b.isdigit() and int(b) <= now), key=int)


def _json(record: TaskRecord) -> bytes:
    return json.dumps(record.to_json(), separators=(",", ":")).encode()


class Store:
    """Reads and writes one framework's state under `root`."""

    def __init__(self, zk: KazooClient, root: str = DEFAULT_ROOT, retention: float = DAY) -> None:
        self.zk = zk
        self.root = root.rstrip("/") or DEFAULT_ROOT
        self.retention = retention
        self._known: set[str] = set()  # live tasks stored under tasks/
        self._buckets: set[str] = set()  # finished/ buckets known to exist

    @property
    def election_path(self) -> str:
        return f"{self.root}/election"

    @property
    def tasks_path(self) -> str:
        return f"{self.root}/tasks"

    @property
    def finished_path(self) -> str:
        return f"{self.root}/finished"

    def ensure(self) -> None:
        for path in (self.tasks_path, self.finished_path, self.election_path):
            self.zk.ensure_path(path)

    # --- the FrameworkID -----------------------------------------------------------------

    def framework_id(self) -> str | None:
        try:
            data, _ = self.zk.get(f"{self.root}/framework_id")
        except NoNodeError:
            return None
        return data.decode() or None

    def set_framework_id(self, framework_id: str, fence: str | None = None) -> None:
        path = f"{self.root}/framework_id"
        kind = "set" if self.zk.exists(path) else "create"
        self._commit([(kind, path, framework_id.encode())], fence)

    def forget_framework_id(self, fence: str | None = None) -> None:
        """Delete the stored FrameworkID (the master removed it): the next subscription registers anew."""
        path = f"{self.root}/framework_id"
        if self.zk.exists(path):
            self._commit([("delete", path, b"")], fence)

    # --- reading -------------------------------------------------------------------------

    def load(self) -> list[TaskRecord]:
        """Every live task (read in parallel); finished ones are not read."""
        records = self._read(f"{self.tasks_path}/{n}" for n in self.zk.get_children(self.tasks_path))
        self._known = {r.id for r in records}
        self._buckets = set(self.zk.get_children(self.finished_path))
        return records

    def finished(self) -> list[TaskRecord]:
        """Every finished task still kept (read in parallel): for the API, never for a takeover."""
        paths = [f"{self.finished_path}/{b}/{n}" for b in self._children(self.finished_path)
                 for n in self._children(f"{self.finished_path}/{b}")]
        return self._read(paths)

    def _children(self, path: str) -> list[str]:
        try:
            return list(self.zk.get_children(path))
        except NoNodeError:  # purged meanwhile
            return []
        except KazooException as exc:
            raise StoreError(f"ZooKeeper read failed: {exc!r}") from exc

    def _read(self, paths: Iterable[str]) -> list[TaskRecord]:
        pending = [self.zk.get_async(p) for p in paths]
        records = []
        for result in pending:
            try:
                data, _ = result.get()
            except NoNodeError:
                continue
            records.append(TaskRecord.from_json(json.loads(data)))
        return records

    # --- writing -------------------------------------------------------------------------

    def add(self, records: Iterable[TaskRecord], fence: str | None = None) -> None:
        """Store new tasks in one transaction, or raise `TooLarge` having sent nothing."""
        records = list(records)
        ops: list[Op] = [("create", f"{self.tasks_path}/{r.id}", _json(r)) for r in records]
        tx = self._transaction(ops, fence)
        size = len(Transaction(tx.operations).serialize())
        if size > MAX_TX_BYTES:
            raise TooLarge(len(records), size, len(Transaction(self._transaction([], fence).operations).serialize()))
        self._finish(tx, ops, fence)

    def save(self, records: Iterable[TaskRecord], fence: str | None = None) -> None:
        """Store changed records in as few transactions as fit; a task that ended moves to finished/,
        its delete and create always in the same transaction."""
        groups: list[list[Op]] = []
        buckets: set[str] = set()
        for record in records:
            data, live = _json(record), f"{self.tasks_path}/{record.id}"
            if not record.terminal:
                groups.append([("set" if record.id in self._known else "create", live, data)])
                continue
            bucket = bucket_of(record.ended_at or 0.0, self.retention)
            group: list[Op] = []
            if bucket not in self._buckets and bucket not in buckets:
                group.append(("create", f"{self.finished_path}/{bucket}", b""))
                buckets.add(bucket)
            if record.id in self._known:
                group.append(("delete", live, b""))
            group.append(("create", f"{self.finished_path}/{bucket}/{record.id}", data))
            groups.append(group)
        self._commit_chunked(groups, fence)

    def purge(self, now: float, fence: str | None = None) -> int:
        """Delete the finished/ buckets whose retention has passed; returns how many tasks went."""
        removed = 0
        for bucket in due(self._children(self.finished_path), now):
            path = f"{self.finished_path}/{bucket}"
            names = self._children(path)
            self._commit_chunked([[("delete", f"{path}/{n}", b"")] for n in names] + [[("delete", path, b"")]],
                                 fence)
            self._buckets.discard(bucket)
            removed += len(names)
        return removed

    def _commit_chunked(self, groups: list[list[Op]], fence: str | None) -> None:
        """Commit op groups in transactions of about CHUNK_BYTES, never splitting a group."""
        batch: list[Op] = []
        size = 0
        for group in groups:
            grown = sum(len(op[1]) + len(op[2]) + 64 for op in group)  # 64: an op's own framing, ACL included
            if batch and size + grown > CHUNK_BYTES:
                self._commit(batch, fence)
                batch, size = [], 0
            batch += group
            size += grown
        if batch:
            self._commit(batch, fence)

    def _transaction(self, ops: list[Op], fence: str | None) -> Any:
        tx = self.zk.transaction()
        if fence is not None:
            tx.check(fence, 0)
        for kind, path, data in ops:
            if kind == "create":
                tx.create(path, data)
            elif kind == "set":
                tx.set_data(path, data)
            else:
                tx.delete(path)
        return tx

    def _commit(self, ops: list[Op], fence: str | None) -> None:
        self._finish(self._transaction(ops, fence), ops, fence)

    def _finish(self, tx: Any, ops: list[Op], fence: str | None) -> None:
        try:
            results = tx.commit()
        except KazooException as exc:
            raise StoreError(f"ZooKeeper write failed: {exc!r}") from exc
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            first: Any = failed[0]
            if fence is not None and isinstance(results[0], Exception):
                raise StoreError(f"not the leader any more (election node {fence} is gone): {first!r}")
            raise StoreError(f"ZooKeeper refused the write: {first!r}")
        for kind, path, _ in ops:
            parent, _, name = path.rpartition("/")
            if parent == self.tasks_path:
                if kind == "create":
                    self._known.add(name)
                elif kind == "delete":
                    self._known.discard(name)
            elif parent == self.finished_path and kind == "create":
                self._buckets.add(name)
