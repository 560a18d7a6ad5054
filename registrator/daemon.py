"""`wharf registrator run`: the worker on the shared daemon skeleton, with its two watchers."""

from __future__ import annotations

from registrator.watch import ConsulWatcher, DockerWatcher, MarathonWatcher
from registrator.worker import Registrator
from wharf.daemon import Daemon
from wharf.retry import Retry


class RegistratorDaemon(Daemon):
    """Cycles `Registrator.cycle` (each waits up to 0.2 s for work); a failed cycle (Consul or
    Docker down) is retried within half a second, the state it had kept intact."""

    interval = 0.0
    backoff = Retry(delay=0.05, backoff=2.0, max_delay=0.5, jitter=0.2)

    def __init__(self, registrator: Registrator, docker_watcher: DockerWatcher, consul_watcher: ConsulWatcher,
                 metrics_port: int | None = None, marathon_watcher: MarathonWatcher | None = None) -> None:
        super().__init__("registrator", metrics_port=metrics_port)
        self.registrator = registrator
        watchers: list[DockerWatcher | ConsulWatcher | MarathonWatcher] = [docker_watcher, consul_watcher]
        self.watchers = tuple(watchers + ([marathon_watcher] if marathon_watcher else []))
        self._started = False

    def run_cycle(self) -> None:
        if not self._started:
            self._started = True
            for watcher in self.watchers:
                watcher.start()
        self.registrator.cycle(block=0.2)

    def close(self) -> None:
        for watcher in self.watchers:
            watcher.stop()
        for watcher in self.watchers:
            watcher.join(timeout=2)
