"""The framework's state in ZooKeeper (kazoo): its FrameworkID and one znode per task.

    <root>/framework_id     the FrameworkID the master gave (the leader re-subscribes with it)
    <root>/tasks/<task id>  a TaskRecord as JSON (the queue is the tasks in state QUEUED)
    <root>/election         kazoo's Election recipe: the lowest contender leads

Writes go in transactions that first check the leader's own election node: a scheduler whose
session has expired (and so no longer leads) cannot write, even if it has not noticed yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from framework.tasks import TaskRecord

DEFAULT_ROOT = "/wharf/framework"
CHUNK_BYTES = 512 * 1024  # stay well under ZooKeeper's 1 MB request limit


class StoreError(Exception):
    """A write was refused (the fence failed: this scheduler no longer leads) or failed."""


class Store:
    """Reads and writes one framework's state under `root`."""

    def __init__(self, zk: KazooClient, root: str = DEFAULT_ROOT) -> None:
        self.zk = zk
        self.root = root.rstrip("/") or DEFAULT_ROOT
        self._known: set[str] = set()

    @property
    def election_path(self) -> str:
        return f"{self.root}/election"

    def ensure(self) -> None:
        for path in (f"{self.root}/tasks", self.election_path):
            self.zk.ensure_path(path)

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

    def load(self) -> list[TaskRecord]:
        """Every stored task (read in parallel)."""
        names = self.zk.get_children(f"{self.root}/tasks")
        pending = [self.zk.get_async(f"{self.root}/tasks/{n}") for n in names]
        records = []
        for result in pending:
            try:
                data, _ = result.get()
            except NoNodeError:
                continue
            records.append(TaskRecord.from_json(json.loads(data)))
        self._known = {r.id for r in records}
        return records

    def save(self, records: Iterable[TaskRecord], fence: str | None = None) -> None:
        """Store records (new ones created, others replaced) in as few transactions as fit."""
        ops: list[tuple[str, str, bytes]] = []
        for record in records:
            data = json.dumps(record.to_json(), separators=(",", ":")).encode()
            path = f"{self.root}/tasks/{record.id}"
            ops.append(("set" if record.id in self._known else "create", path, data))
        batch: list[tuple[str, str, bytes]] = []
        size = 0
        for op in ops:
            if batch and size + len(op[2]) > CHUNK_BYTES:
                self._commit(batch, fence)
                batch, size = [], 0
            batch.append(op)
            size += len(op[2]) + len(op[1])
        if batch:
            self._commit(batch, fence)

    def delete(self, task_ids: Iterable[str], fence: str | None = None) -> None:
        ops = [("delete", f"{self.root}/tasks/{t}", b"") for t in task_ids]
        if ops:
            self._commit(ops, fence)

    def _commit(self, ops: list[tuple[str, str, bytes]], fence: str | None) -> None:
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
        results = tx.commit()
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            first: Any = failed[0]
            if fence is not None and isinstance(results[0], Exception):
                raise StoreError(f"not the leader any more (election node {fence} is gone): {first!r}")
            raise StoreError(f"ZooKeeper refused the write: {first!r}")
        for kind, path, _ in ops:
            if not path.startswith(f"{self.root}/tasks/"):
                continue
            task_id = path.rsplit("/", 1)[1]
            if kind == "create":
                self._known.add(task_id)
            elif kind == "delete":
                self._known.discard(task_id)
