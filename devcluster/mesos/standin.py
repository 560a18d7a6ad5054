"""Wiring: the master state machine, its lock and clock thread, the streams, the agents, ZooKeeper.

:class:`MesosStandin` is what tests and ``python -m devcluster.mesos`` run. Every change goes
through :meth:`MesosStandin._apply`: under one lock the master decides and its events are queued
on the frameworks' streams, and launches and kills go to the agent pool (which only starts threads).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from devcluster import bridge
from devcluster.httpapi import RunningServer, serve
from devcluster.mesos.agents import AgentPool
from devcluster.mesos.api import Handler, build_router, ready_guard
from devcluster.mesos.master import Master
from devcluster.mesos.model import VERSION, Effects, StatusReport
from devcluster.mesos.offers import AgentInfo, make_agents
from devcluster.mesos.ports import PortClaim
from devcluster.mesos.protocol import BadCall, Call, event, record
from devcluster.mesos.zk import ZkRegistration, master_info

log = logging.getLogger("wharf.devcluster.mesos")
T = TypeVar("T")
IDLE_TICK = 1.0  # the clock thread wakes at least this often
PORT_QUARANTINE = 5.0  # seconds an ended task's host ports stay out of offers


@dataclass
class Subscription:
    """One SUBSCRIBE connection: RecordIO records queued for it; ``None`` ends it."""

    id: str
    framework_id: str
    queue: queue.Queue[bytes | None] = field(default_factory=queue.Queue)


class MesosStandin:
    """A Mesos master with its agents, on 127.0.0.1; ``start()`` returns self, ``stop()`` undoes all."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, state_dir: Path, agents: int = 3,
                 zk: str | None = None, docker_host: str | None = None,
                 heartbeat_interval: float = 15.0, update_retry: float = 10.0,
                 offer_timeout: float | None = None, agent_cpus: float = 4, agent_mem: float = 4096,
                 agent_disk: float = 10240, port_quarantine: float = PORT_QUARANTINE) -> None:
        self.host, self.port = host, port
        self.zk_url = zk
        self.docker_host = docker_host
        self.state_dir = Path(state_dir).resolve()
        self.master_id = str(uuid.uuid4())
        self.agent_count = agents
        self.agent_resources = (agent_cpus, agent_mem, agent_disk)
        self.agent_infos: tuple[AgentInfo, ...] = ()  # chosen at start: port ranges free right now
        self._ports = PortClaim()
        self.heartbeat_interval, self.update_retry, self.offer_timeout = heartbeat_interval, update_retry, offer_timeout
        self.port_quarantine = port_quarantine
        self.ready = False
        self.master: Master | None = None
        self.pool = AgentPool(self.state_dir, str(self.state_dir), docker_host, self._on_report)
        self.bridge: bridge.Bridge | None = None
        self._lock = threading.Lock()
        self._streams: dict[str, Subscription] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._server: RunningServer | None = None
        self._clock: threading.Thread | None = None
        self._zk: ZkRegistration | None = None
        self._next_deadline: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MesosStandin:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.agent_infos = make_agents(self.master_id, self._ports.claim(self.agent_count), *self.agent_resources)
        try:
            removed = self.pool.purge()
            if removed:
                log.info("removed %d containers left by an earlier run", removed)
            self._make_bridge()
            self._server = serve(ready_guard(self, build_router(self)), self.host, self.port,
                                 logger=logging.getLogger("wharf.devcluster.mesos.http"))
        except BaseException:
            self._remove_bridge()
            self._ports.release()
            raise
        self.port = self._server.port
        info = master_info(self.master_id, self.host, self.port, self.host, VERSION)
        self.master = Master(self.master_id, self.agent_infos, info, started=time.time(),
                             heartbeat_interval=self.heartbeat_interval, update_retry=self.update_retry,
                             offer_timeout=self.offer_timeout, port_quarantine=self.port_quarantine)
        self._clock = threading.Thread(target=self._clock_loop, name="mesos clock", daemon=True)
        self._clock.start()
        self.ready = True
        if self.zk_url:
            self._zk = ZkRegistration(self.zk_url, info)
            try:
                self._zk.start()
            except Exception:
                self._zk = None
                self.stop()
                raise
        log.info("Mesos stand-in %s on %s with %d agents", self.master_id, self.url, len(self.agent_infos))
        return self

    def stop(self) -> None:
        """Leave ZooKeeper, end the streams, kill and remove every task, close the server."""
        self.ready = False  # from now on every request is answered 503
        if self._zk is not None:
            self._zk.stop()
            self._zk = None
        self._stopping.set()
        self._wake.set()
        if self._clock is not None:
            self._clock.join(timeout=5)
        with self._lock:
            streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            stream.queue.put(None)
        self.pool.shutdown()
        self._remove_bridge()
        if self._server is not None:
            self._server.stop()
            self._server = None
        self._ports.release()

    def __enter__(self) -> MesosStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def flags(self) -> dict[str, str]:
        return {"port": str(self.port), "hostname": self.host, "zk": self.zk_url or "",
                "work_dir": str(self.state_dir), "docker_host": self.docker_host or "",
                "docker_network": self.bridge.name if self.bridge else "",
                "offer_timeout": str(self.offer_timeout or ""), "port_quarantine": str(self.port_quarantine)}

    def _docker(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.docker_host, timeout=60)

    def _make_bridge(self) -> None:
        """The network BRIDGE tasks run on (with a Docker engine only), made afresh at every start."""
        if not self.docker_host:
            return
        client = self._docker()
        try:
            self.bridge = bridge.create(client, self.docker_host, self.pool.owner)
        finally:
            client.close()
        self.pool.bridge = self.bridge

    def _remove_bridge(self) -> None:
        """Remove the bridge network (its containers are gone by now): no bridge or route is left."""
        if not self.docker_host:
            return
        client = self._docker()
        try:
            bridge.remove(client, self.pool.owner)
        except Exception:  # noqa: BLE001 - the engine may be gone; the dev cluster's clean-up retries
            log.warning("could not remove the bridge network", exc_info=True)
        finally:
            client.close()
        self.bridge = None
        self.pool.bridge = None

    # --- used by the HTTP layer --------------------------------------------------------------

    def view(self, read: Callable[[Master], T]) -> T:
        with self._lock:
            assert self.master is not None
            return read(self.master)

    def subscribe(self, call: Call) -> Subscription:
        stream = Subscription(str(uuid.uuid4()), "")

        def decide(master: Master, now: float) -> Effects:
            effects = master.subscribe(dict(call.body), call.framework_id, stream.id, now)
            stream.framework_id = effects.events[0][1]["subscribed"]["framework_id"]["value"]
            self._streams[stream.id] = stream
            return effects

        self._apply(decide)
        return stream

    def call(self, call: Call, stream_id: str | None, handler: Handler | None) -> None:
        def decide(master: Master, now: float) -> Effects:
            assert call.framework_id is not None
            framework = master.framework_for_call(call.framework_id, stream_id)
            return handler(master, framework, dict(call.body), now) if handler else Effects()

        self._apply(decide)

    def teardown(self, framework_id: str) -> None:
        """The operator's teardown: remove a registered framework (its tasks killed, its stream closed)."""
        def decide(master: Master, now: float) -> Effects:
            framework = master.frameworks.get(framework_id)
            if framework is None:
                raise BadCall("No framework found with specified ID")
            return master.teardown(framework, now)

        self._apply(decide)

    def events(self, stream: Subscription) -> Iterator[bytes]:
        """The RecordIO stream: queued events, and a HEARTBEAT whenever one falls due."""
        assert self.master is not None
        interval = self.master.heartbeat_interval
        heartbeat = record(event("HEARTBEAT"))
        try:
            first = stream.queue.get()  # SUBSCRIBED, queued before the stream was handed out
            if first is None:
                return
            yield first
            due = time.monotonic()
            while True:
                wait = due - time.monotonic()
                if wait <= 0:
                    yield heartbeat
                    due += interval
                    continue
                try:
                    item = stream.queue.get(timeout=wait)
                except queue.Empty:
                    continue
                if item is None:
                    return
                yield item
        finally:
            self._apply(lambda master, now: self._drop_stream(master, stream, now))

    # --- internals ---------------------------------------------------------------------------

    def _drop_stream(self, master: Master, stream: Subscription, now: float) -> Effects:
        if self._streams.pop(stream.id, None) is None:
            return Effects()
        log.debug("stream %s of framework %s closed", stream.id, stream.framework_id)
        return master.disconnected(stream.framework_id, stream.id, now)

    def _apply(self, decide: Callable[[Master, float], Effects], wake: bool = True) -> None:
        """Decide under the lock, queue the events, hand launches and kills to the agents (which never block)."""
        with self._lock:
            assert self.master is not None
            effects = decide(self.master, time.time())
            for stream_id, message in effects.closes:
                stream = self._streams.pop(stream_id, None)
                if stream is not None:
                    if message:
                        stream.queue.put(record(event("ERROR", {"message": message})))
                    stream.queue.put(None)
            for framework_id, item in effects.events:
                framework = self.master.frameworks.get(framework_id)
                stream = self._streams.get(framework.stream_id or "") if framework else None
                if stream is not None:
                    stream.queue.put(record(item))
            # under the lock, so that a KILL can never overtake the LAUNCH it is about
            for launch in effects.launches:
                self.pool.launch(launch)
            for kill in effects.kills:
                self.pool.kill(kill)
        if wake:
            self._wake.set()  # the clock thread re-allocates after any change

    def _on_report(self, report: StatusReport) -> None:
        if self.master is not None:
            self._apply(lambda master, now: master.agent_update(report, now))

    def _tick(self, master: Master, now: float) -> Effects:
        effects = master.tick(now)
        self._next_deadline = master.next_deadline()
        return effects

    def _clock_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._apply(self._tick, wake=False)
            except Exception:  # noqa: BLE001 - the clock must keep ticking
                log.exception("master tick failed")
            deadline = self._next_deadline
            self._wake.wait(IDLE_TICK if deadline is None else min(IDLE_TICK, max(0.0, deadline - time.time())))
