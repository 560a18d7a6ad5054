"""Wiring: the Marathon framework and its HTTP API on 127.0.0.1; what tests and ``python -m`` start."""

from __future__ import annotations

import logging
from pathlib import Path

from devcluster.httpapi import RunningServer, serve
from devcluster.marathon import store
from devcluster.marathon.scheduler import Marathon
from devcluster.marathon.server import MarathonApi

log = logging.getLogger("wharf.devcluster.marathon")


class MarathonStandin:
    """Marathon as a framework of ``master`` (``zk://…/mesos`` or ``host:port``); ``start()`` returns self.

    With ``state_dir`` or ``zk`` (``zk://host:port/marathon``) its apps, tasks and FrameworkID are
    kept there: ``stop()`` then leaves the tasks running (a failover, as a real Marathon restart
    does) and the next start takes them back.
    """

    def __init__(self, master: str, host: str = "127.0.0.1", port: int = 0, *, name: str = "marathon",
                 state_dir: Path | None = None, zk: str | None = None) -> None:
        self.host, self.port = host, port
        self.store: store.StateStore | None = (store.ZkStore(zk) if zk else
                                               store.FileStore(state_dir) if state_dir else None)
        self.marathon = Marathon(master, name=name, save=self.store.save if self.store else None)
        saved = self.store.load() if self.store else None
        if saved is not None:
            self.marathon.restore(saved)
        self._server: RunningServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, registered_within: float | None = 30.0) -> MarathonStandin:
        """Serve the API, subscribe to the master and (unless None) wait for the registration."""
        api = MarathonApi(self.marathon, lambda: f"{self.host}:{self.port}")
        self._server = serve(api.router(), self.host, self.port,
                             logger=logging.getLogger("wharf.devcluster.marathon.http"))
        self.port = self._server.port
        self.marathon.start()
        if registered_within is not None and not self.marathon.registered.wait(registered_within):
            self.stop()
            raise RuntimeError(f"Marathon could not register with the master at {self.marathon.master}")
        log.info("Marathon stand-in on %s, framework %s", self.url, self.marathon.framework_id)
        return self

    def stop(self) -> None:
        """Tear the framework down (its tasks are killed; kept with a store) and close the server."""
        self.marathon.stop(failover=self.store is not None)
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> MarathonStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
