"""The stand-ins for systems that cannot be installed here, run as dev-cluster services."""

from __future__ import annotations

import json
import sys
import urllib.request
from typing import Any, ClassVar

from devcluster.docker_engine import DockerEngine
from devcluster.service import DevService


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=1.0) as response:
        return json.load(response)


class PythonStandIn(DevService):
    """A stand-in run as `python -m devcluster.<module> --port N ...` on one loopback port."""

    module: ClassVar[str]

    @property
    def port(self) -> int:
        return self.ports[self.port_flags[0]]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def zk(self, path: str) -> str:
        """A `zk://` URL on the dev cluster's ZooKeeper."""
        return f"zk://127.0.0.1:{self.ports['--zk-port']}/{path}"

    @property
    def mesos_zk(self) -> str:
        """Where the Mesos stand-in registers, as real masters do (`MESOS_MASTER`)."""
        return self.zk("mesos")

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", f"devcluster.{self.module}", "--port", str(self.port), *self.options()]

    def options(self) -> list[str]:
        """The command-line options after `--port`."""
        return []

    def endpoints(self) -> dict[str, Any]:
        return {"http": self.url}


class MesosStandIn(PythonStandIn):
    """A Mesos master with its agents; tasks run as containers on the dev cluster's Docker engine."""

    name = "mesos"
    module = "mesos"
    port_flags = ("--mesos-port",)
    needs = ("zookeeper", "docker")

    @property
    def docker(self) -> DockerEngine:
        return DockerEngine(self.dir.parent / DockerEngine.name, self.ports)

    def options(self) -> list[str]:
        agents = int(self.choices.get("nodes") or 0)  # `wharf dev up --nodes N`: one agent per node
        return ["--zk", self.mesos_zk, "--docker-host", self.docker.host, "--state-dir", str(self.dir / "work"),
                *(["--agents", str(agents)] if agents else [])]

    def clean_up(self) -> None:
        """Also remove the bridge network a stand-in that did not stop cleanly left on the engine."""
        super().clean_up()
        from devcluster import bridge

        try:
            client = self.docker.client(timeout=5)
        except Exception:  # noqa: BLE001 - no engine, no network
            return
        try:
            bridge.remove(client, str((self.dir / "work").resolve()))
        except Exception:  # noqa: BLE001 - the engine is down: its own clean-up deletes the bridge
            pass
        finally:
            client.close()

    def probe(self) -> None:
        if not _get(f"{self.url}/master/state")["slaves"]:
            raise RuntimeError("no agents")

    def endpoints(self) -> dict[str, Any]:
        return {"http": self.url, "zk": self.mesos_zk}

    def env(self) -> dict[str, str]:
        return {"MESOS_MASTER": self.mesos_zk}


class ChronosStandIn(PythonStandIn):
    """Chronos's scheduler API; a framework of the Mesos stand-in, found through ZooKeeper."""

    name = "chronos"
    module = "chronos"
    port_flags = ("--chronos-port",)
    needs = ("mesos",)

    def options(self) -> list[str]:
        return ["--master", self.mesos_zk]

    def probe(self) -> None:
        _get(f"{self.url}/v1/scheduler/jobs")

    def env(self) -> dict[str, str]:
        return {"CHRONOS_URL": self.url}


class MarathonStandIn(PythonStandIn):
    """Marathon's REST API and event stream; a framework of the Mesos stand-in, state in ZooKeeper."""

    name = "marathon"
    module = "marathon"
    port_flags = ("--marathon-port",)
    needs = ("mesos",)

    def options(self) -> list[str]:
        return ["--master", self.mesos_zk, "--zk", self.zk("marathon")]

    def probe(self) -> None:
        with urllib.request.urlopen(f"{self.url}/ping", timeout=1.0) as response:
            if response.read().strip() != b"pong":
                raise RuntimeError("/ping did not answer pong")

    def env(self) -> dict[str, str]:
        return {"MARATHON_URL": self.url}
