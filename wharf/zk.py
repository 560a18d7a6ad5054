"""One reader of ZooKeeper addresses: `[zk://][user:pass@]host:port[,host:port][/path]`."""

from __future__ import annotations

from dataclasses import dataclass, field


def host_port(text: str) -> str:
    """`text` if it is `host:port` with a port between 1 and 65535, else ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not host:port")
    return text


@dataclass(frozen=True)
class ZkAddress:
    """Where a ZooKeeper ensemble is and the znode path under it (`""` for none)."""

    hosts: str  # "host:port,host:port" as kazoo takes it
    path: str = ""  # "/mesos", or "" for none
    auth: str | None = field(default=None, repr=False)  # "user:pass", as Mesos reads it from zk:// URLs

    @property
    def connection(self) -> str:
        """kazoo's `hosts` with the path as its chroot."""
        return self.hosts + self.path

    @classmethod
    def parse(cls, text: str, need_path: bool = True) -> ZkAddress:
        """Read `zk://host:port[,host:port]/path` (the scheme optional); ValueError names what is
        wrong. With `need_path` false the path (a chroot) may be left out."""
        shown = str(text).strip()
        netloc, _, path = shown.removeprefix("zk://").partition("/")
        path = "/" + path.strip("/") if path.strip("/") else ""
        if need_path and not path:
            raise ValueError(f"{shown!r} has no ZooKeeper path (zk://host:port/mesos)")
        auth, _, hosts = netloc.rpartition("@")
        for host in hosts.split(","):
            host_port(host)
        return cls(hosts, path, auth or None)
