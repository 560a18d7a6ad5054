"""Real ZooKeeper (Debian's package), standalone, on a loopback port."""

from __future__ import annotations

import socket
from typing import Any

from devcluster.service import DevService

JARS = "/usr/share/java/zookeeper.jar"


def four_letter(host: str, port: int, word: str, timeout: float = 1.0) -> str:
    """Send one of ZooKeeper's four-letter words and return the answer."""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(word.encode())
        chunks = []
        while chunk := conn.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode()


class ZooKeeper(DevService):
    name = "zookeeper"
    port_flags = ("--zk-port",)
    binaries = ("java", JARS)

    @property
    def port(self) -> int:
        return self.ports["--zk-port"]

    def prepare(self) -> None:
        conf = self.dir / "conf"
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "zoo.cfg").write_text(
            "tickTime=2000\n"
            f"dataDir={self.dir / 'data'}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "maxClientCnxns=200\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=*\n"
        )

    def argv(self) -> list[str]:
        conf = self.dir / "conf"
        return ["java", "-Xmx256m", "-Dzookeeper.log.dir=" + str(self.dir), "-cp", f"{conf}:{JARS}",
                "org.apache.zookeeper.server.ZooKeeperServerMain", str(conf / "zoo.cfg")]

    def probe(self) -> None:
        answer = four_letter("127.0.0.1", self.port, "ruok")
        if answer != "imok":
            raise RuntimeError(f"ruok answered {answer!r}")

    def endpoints(self) -> dict[str, Any]:
        return {"address": f"127.0.0.1:{self.port}", "data_dir": str(self.dir / "data")}

    def env(self) -> dict[str, str]:
        return {"WHARF_ZK": f"127.0.0.1:{self.port}"}

