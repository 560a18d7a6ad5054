"""Register the stand-in in ZooKeeper the way Mesos masters do, so ``zk://.../mesos`` finds it.

A real master contends by creating an ephemeral sequential znode ``<path>/json.info_<seq>``
holding its MasterInfo as JSON; the leader is the lowest sequence number, and schedulers
(pymesos's detector among them) watch that directory and read ``address.ip``/``address.port``.
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from typing import Any

from wharf.zk import ZkAddress

log = logging.getLogger("wharf.devcluster.mesos.zk")

NODE_PREFIX = "json.info_"


class ZkUrl(ZkAddress):
    """``zk://host:port[,host:port]/path`` (wharf's ZooKeeper address) without credentials."""

    @classmethod
    def parse(cls, text: str, need_path: bool = True) -> ZkUrl:
        """Read it as `ZkAddress.parse` does; credentials (``user:pass@``) are not supported here."""
        found = ZkAddress.parse(text, need_path)
        if found.auth is not None:
            raise ValueError("ZooKeeper credentials in the URL are not supported by this stand-in")
        return cls(found.hosts, found.path)


def ip_as_int(ip: str) -> int:
    """MasterInfo.ip: the IPv4 address's network-order bytes read as a native (little-endian) uint32."""
    return int(struct.unpack("<I", socket.inet_aton(ip))[0])


def master_info(master_id: str, ip: str, port: int, hostname: str, version: str) -> dict[str, Any]:
    """A v1 ``MasterInfo``, as a real master publishes it."""
    return {
        "id": master_id, "ip": ip_as_int(ip), "port": port, "pid": f"master@{ip}:{port}",
        "hostname": hostname, "version": version,
        "address": {"hostname": hostname, "ip": ip, "port": port},
        "capabilities": [{"type": "AGENT_UPDATE"}],
    }


class ZkRegistration:
    """Holds the master's ephemeral znode; re-creates it when a new session replaces a lost one."""

    def __init__(self, url: str, info: dict[str, Any]) -> None:
        self.url = ZkUrl.parse(url)
        self.data = json.dumps(info, separators=(",", ":")).encode()
        self.node: str | None = None
        self._client: Any = None
        self._lock = threading.Lock()
        self._lost = False

    def start(self, timeout: float = 15.0) -> None:
        from kazoo.client import KazooClient

        self._client = KazooClient(hosts=self.url.hosts, timeout=10.0)
        try:
            self._client.start(timeout=timeout)
            self._client.add_listener(self._on_state)
            self._register()
        except Exception:
            self.stop()
            raise

    def _register(self) -> None:
        with self._lock:
            if self._client is None:
                return
            self.node = self._client.create(f"{self.url.path}/{NODE_PREFIX}", self.data, ephemeral=True,
                                            sequence=True, makepath=True)
            log.info("registered in ZooKeeper as %s", self.node)

    def _on_state(self, state: str) -> None:
        from kazoo.client import KazooState

        if state == KazooState.LOST:
            self._lost = True
        elif state == KazooState.CONNECTED and self._lost:
            self._lost = False
            self._client.handler.spawn(self._register)  # no blocking calls inside a listener

    def stop(self) -> None:
        """Delete the znode (leaving no stale leader behind) and close the session."""
        with self._lock:
            client, self._client = self._client, None
        if client is None:
            return
        try:
            if self.node:
                client.delete(self.node)
        except Exception:  # noqa: BLE001 - the session's end removes it anyway
            log.debug("deleting %s", self.node, exc_info=True)
        client.stop()
        client.close()
