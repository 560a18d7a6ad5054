"""The stand-in's saved state: apps, their versions, live instances, the FrameworkID.

Kept in a directory (``--state-dir``, one JSON file replaced atomically) or in ZooKeeper
(``--zk zk://host:port/marathon``, one zlib-compressed znode under that path, written through
kazoo). The scheduler loop saves whenever something changed; a restarted stand-in loads it,
re-subscribes as the same framework and asks the master to reconcile its tasks.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Protocol

from devcluster.marathon.apps import Instance
from devcluster.mesos.zk import ZkUrl
from wharf.atomic import write_atomic

FILE = "marathon-state.json"
_INSTANCE_FIELDS = [f.name for f in fields(Instance) if f.name != "health"]


class StateStore(Protocol):
    def save(self, data: dict[str, Any]) -> None: ...

    def load(self) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


def snapshot(framework_id: str | None, apps: dict[str, Any], versions: dict[str, Any],
             instances: dict[str, Instance]) -> dict[str, Any]:
    return {"frameworkId": framework_id, "apps": apps, "versions": versions,
            "instances": [{k: v for k, v in asdict(i).items() if k != "health"} for i in instances.values()]}


def _read(data: dict[str, Any]) -> dict[str, Any]:
    instances = []
    for saved in data.get("instances", []):
        kept: dict[str, Any] = {k: v for k, v in saved.items() if k in _INSTANCE_FIELDS}
        kept["ports"] = tuple(kept.get("ports") or ())
        instances.append(Instance(**kept))
    data["instances"] = instances
    return data


class FileStore:
    """One JSON file in a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, data: dict[str, Any]) -> None:
        write_atomic(self.directory / FILE, json.dumps(data), 0o600)  # app definitions may hold secrets

    def load(self) -> dict[str, Any] | None:
        path = self.directory / FILE
        return _read(json.loads(path.read_text())) if path.exists() else None

    def close(self) -> None:
        pass


class ZkStore:
    """One znode, ``<path>/state``, in ZooKeeper."""

    def __init__(self, url: str) -> None:
        from kazoo.client import KazooClient

        parsed = ZkUrl.parse(url)
        self.node = f"{parsed.path}/state"
        self._client = KazooClient(hosts=parsed.hosts, timeout=10.0)
        self._client.start(timeout=15)

    def save(self, data: dict[str, Any]) -> None:
        payload = zlib.compress(json.dumps(data).encode())
        if self._client.exists(self.node):
            self._client.set(self.node, payload)
        else:
            self._client.create(self.node, payload, makepath=True)

    def load(self) -> dict[str, Any] | None:
        if not self._client.exists(self.node):
            return None
        payload, _ = self._client.get(self.node)
        return _read(json.loads(zlib.decompress(payload)))

    def close(self) -> None:
        self._client.stop()
        self._client.close()
