"""The Mesos stand-in against Mesos's v1 protos, pymesos, a real ZooKeeper and a real Docker engine.

With MESOS_MASTER set (zk://host:port/mesos or host:port) the tests of the scheduler API run against
that real master; tests of what only a stand-in on this machine shows are then skipped.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymesos import MesosSchedulerDriver, Scheduler

import devcluster.mesos.api
from devcluster.mesos import MesosStandin
from devcluster.mesos.agents import OWNER_LABEL
from devcluster.mesos.client import SchedulerClient
from devcluster.mesos.ports import BLOCK, PortClaim, free_everywhere
from devcluster.mesos.protocol import parse_call
from tests.conftest import Endpoint, real_mesos_master, stand_in_only
from tests.polling import wait_for
from tests.upstream import optional, upstream

pytestmark = pytest.mark.contract

PROTOS = ("mesos", "include", "mesos", "v1")
IMAGE = "wharf/busybox:latest"


# --- a minimal .proto reader ------------------------------------------------------------------

SCALARS = {"double": (int, float), "float": (int, float), "int32": int, "int64": int, "uint32": int,
           "uint64": int, "sint32": int, "sint64": int, "fixed32": int, "fixed64": int, "sfixed32": int,
           "sfixed64": int, "bool": bool, "string": str, "bytes": str}


class Protos:
    """Messages (field -> (label, type)) and enums (names) of proto2 files, by full name."""

    def __init__(self, *paths: Path) -> None:
        self.messages: dict[str, dict[str, tuple[str, str]]] = {}
        self.enums: dict[str, set[str]] = {}
        for path in paths:
            text = re.sub(r"/\*.*?\*/", " ", path.read_text(), flags=re.S)
            text = re.sub(r"//[^\n]*", " ", text)
            package = re.search(r"\bpackage\s+([\w.]+)\s*;", text).group(1)  # type: ignore[union-attr]
            tokens = re.findall(r'"[^"]*"|[\w.]+|[{}<>;=,\[\]()]', text)
            self._block(tokens, 0, package, None)

    def _block(self, tokens: list[str], i: int, scope: str, message: str | None) -> int:
        while i < len(tokens):
            tok = tokens[i]
            if tok == "}":
                return i + 1
            if tok in ("message", "enum") and i + 2 < len(tokens) and tokens[i + 2] == "{":
                name = f"{scope}.{tokens[i + 1]}"
                if tok == "message":
                    self.messages[name] = {}
                    i = self._block(tokens, i + 3, name, name)
                else:
                    i, values = i + 3, set()
                    while tokens[i] != "}":
                        if tokens[i + 1] == "=" and tokens[i] != "option":
                            values.add(tokens[i])
                        i = tokens.index(";", i) + 1
                    self.enums[name] = values
                    i += 1
            elif tok == "oneof":
                i = self._block(tokens, i + 3, scope, message)
            elif tok in ("syntax", "package", "import", "option", "reserved", "extensions"):
                i = tokens.index(";", i) + 1
            elif message is not None and tok == "map":
                close = tokens.index(">", i)
                self.messages[message][tokens[close + 1]] = ("map", "")
                i = tokens.index(";", i) + 1
            elif message is not None:
                label = tok if tok in ("optional", "required", "repeated") else ""
                j = i + 1 if label else i
                self.messages[message][tokens[j + 1]] = (label, self._qualify(tokens[j], scope))
                i = tokens.index(";", i) + 1
            else:
                i += 1
        return i

    def _qualify(self, name: str, scope: str) -> str:
        return name if name in SCALARS else f"?{scope}?{name}"  # resolved lazily, once all files are read

    def resolve(self, ref: str) -> str:
        if not ref.startswith("?"):
            return ref
        _, scope, name = ref.split("?")
        parts = scope.split(".")
        for k in range(len(parts), -1, -1):
            candidate = ".".join([*parts[:k], name])
            if candidate in self.messages or candidate in self.enums:
                return candidate
        raise KeyError(f"unknown type {name} in {scope}")

    def check(self, value: Any, type_name: str, path: str = "") -> list[str]:
        """Every field name, enum value and scalar type in ``value`` (JSON) against ``type_name``."""
        type_name = self.resolve(type_name)
        if type_name in SCALARS:
            ok = isinstance(value, SCALARS[type_name]) and not (type_name != "bool" and isinstance(value, bool))
            return [] if ok else [f"{path}: {value!r} is not a {type_name}"]
        if type_name in self.enums:
            return [] if value in self.enums[type_name] else [f"{path}: {value!r} is not a {type_name}"]
        if not isinstance(value, dict):
            return [f"{path}: expected a {type_name} object, got {value!r}"]
        fields = self.messages[type_name]
        errors = [f"{path}: {type_name} lacks required '{name}'" for name, (label, _) in fields.items()
                  if label == "required" and name not in value]
        for key, item in value.items():
            if key not in fields:
                errors.append(f"{path}.{key}: no such field in {type_name}")
                continue
            label, field_type = fields[key]
            if label == "map":
                continue
            if label == "repeated":
                if not isinstance(item, list):
                    errors.append(f"{path}.{key}: repeated field is not a list")
                    continue
                for n, element in enumerate(item):
                    errors += self.check(element, field_type, f"{path}.{key}[{n}]")
            else:
                errors += self.check(item, field_type, f"{path}.{key}")
        return errors


@pytest.fixture(scope="module")
def protos() -> Protos | None:
    """Mesos's v1 protos; None without the upstream artifacts (the tests then check behaviour only)."""
    where = optional(*PROTOS)
    return None if where is None else Protos(where / "mesos.proto", where / "scheduler" / "scheduler.proto")


def proto_errors(protos: Protos | None, values: list[Any], type_name: str) -> list[str]:
    """What in ``values`` Mesos's protos do not allow; nothing can be said without them."""
    return [] if protos is None else [e for value in values for e in protos.check(value, type_name)]


def test_the_proto_reader_knows_the_messages(protos: Protos | None) -> None:
    upstream(*PROTOS)
    assert protos is not None
    assert protos.messages["mesos.v1.scheduler.Event"]["subscribed"] == ("optional",
                                                                          "?mesos.v1.scheduler.Event?Subscribed")
    assert "TASK_RUNNING" in protos.enums["mesos.v1.TaskState"]
    assert protos.resolve(protos.messages["mesos.v1.scheduler.Call.Request"]["requests"][1]) == "mesos.v1.Request"
    assert protos.check({"type": "HEARTBEAT", "bogus": 1}, "mesos.v1.scheduler.Event") == [
        ".bogus: no such field in mesos.v1.scheduler.Event"]
    assert protos.check({"type": "BEAT"}, "mesos.v1.scheduler.Event")


# --- fixtures and helpers ---------------------------------------------------------------------

@pytest.fixture
def make_standin(tmp_path: Path) -> Iterator[Callable[..., MesosStandin]]:
    started: list[MesosStandin] = []

    def make(**kw: Any) -> MesosStandin:
        kw.setdefault("heartbeat_interval", 0.3)
        standin = MesosStandin(state_dir=tmp_path / f"mesos{len(started)}", **kw).start()
        started.append(standin)
        return standin

    yield make
    for standin in started:
        standin.stop()


@pytest.fixture
def master(request: pytest.FixtureRequest, make_standin: Callable[..., MesosStandin]) -> Endpoint:
    """The master under test, per test: `MESOS_MASTER`'s leader, or a fresh stand-in registered in ZooKeeper."""
    real = real_mesos_master()
    if real is not None:
        return real
    standin = make_standin(zk=request.getfixturevalue("zk_url"))
    return Endpoint(standin.url, standin, master=standin.zk_url)


def teardown(url: str, framework_id: str, framework: dict[str, Any]) -> None:
    """Re-subscribe a disconnected framework (within its failover timeout) and tear it down."""
    client = SchedulerClient(url)
    try:
        client.subscribe(framework, framework_id)
        client.call("TEARDOWN")
    finally:
        client.close()


@pytest.fixture
def calls_seen(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every scheduler call body the stand-in parses during the test."""
    seen: list[dict[str, Any]] = []

    def recording(raw: bytes) -> Any:
        call = parse_call(raw)
        seen.append(json.loads(raw))
        return call

    monkeypatch.setattr(devcluster.mesos.api, "parse_call", recording)
    return seen


def clients(url: str) -> Iterator[SchedulerClient]:
    made: list[SchedulerClient] = []
    try:
        while True:
            made.append(SchedulerClient(url))
            yield made[-1]
    finally:
        for client in made:
            client.close()




def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def scalar(cpus: float, mem: float) -> list[dict[str, Any]]:
    return [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}]


def port_resource(port: int) -> dict[str, Any]:
    return {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": port, "end": port}]}}


def first_port(offer: dict[str, Any]) -> int:
    ports = next(r for r in offer["resources"] if r["name"] == "ports")
    return int(ports["ranges"]["range"][0]["begin"])


def command_task(task_id: str, offer: dict[str, Any], command: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "resources": scalar(0.1, 32), "command": command, **extra}


def docker_task(task_id: str, offer: dict[str, Any], script: str, image: str = IMAGE, **extra: Any) -> dict[str, Any]:
    extra.setdefault("container", {"type": "DOCKER", "docker": {"image": image, "network": "HOST"}})
    return command_task(task_id, offer, {"value": script}, **extra)


def launch(client: SchedulerClient, offer: dict[str, Any], *tasks: dict[str, Any],
           refuse: float = 0) -> None:
    client.call("ACCEPT", {"offer_ids": [offer["id"]], "filters": {"refuse_seconds": refuse},
                           "operations": [{"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}]})


def next_offers(client: SchedulerClient, timeout: float = 10) -> list[dict[str, Any]]:
    return list(client.next_event("OFFERS", timeout)["offers"]["offers"])


def wait_state(client: SchedulerClient, task_id: str, state: str, timeout: float = 30) -> dict[str, Any]:
    """Read updates (acknowledging them) until one says ``task_id`` is in ``state`` (or one did already)."""
    deadline = time.monotonic() + timeout
    while True:
        for event in list(client.seen):
            status = event.get("update", {}).get("status", {})
            if status.get("task_id", {}).get("value") == task_id and status.get("state") == state:
                return dict(status)
        status = client.next_event("UPDATE", max(0.01, deadline - time.monotonic()))["update"]["status"]
        if "uuid" in status:
            client.call("ACKNOWLEDGE", {"agent_id": status["agent_id"], "task_id": status["task_id"],
                                        "uuid": status["uuid"]})


def owned_containers(docker_engine: Any, standin: MesosStandin) -> list[Any]:
    client = docker_engine.client()
    try:
        return list(client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={standin.state_dir}"}))
    finally:
        client.close()


# --- pymesos through ZooKeeper ----------------------------------------------------------------

class RecordingScheduler(Scheduler):  # type: ignore[misc]
    """A pymesos scheduler that launches queued task builders on offers and records updates."""

    def __init__(self) -> None:
        self.registered_event = threading.Event()
        self.reregistered_event = threading.Event()
        self.master_info: dict[str, Any] = {}
        self.updates: queue.Queue[dict[str, Any]] = queue.Queue()
        self.pending: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
        self.lock = threading.Lock()

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        self.master_info = dict(master_info)
        self.registered_event.set()

    def reregistered(self, driver: Any, master_info: Any) -> None:
        self.reregistered_event.set()

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:  # noqa: N802 - pymesos API
        for offer in offers:
            with self.lock:
                build = self.pending.pop(0) if self.pending else None
            if build is None:
                driver.declineOffer(offer["id"], {"refuse_seconds": 0.3})
            else:
                driver.launchTasks(offer["id"], [build(offer)], {"refuse_seconds": 0})

    def statusUpdate(self, driver: Any, status: Any) -> None:  # noqa: N802 - pymesos API
        self.updates.put(dict(status))

    def run(self, driver: Any, build: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        with self.lock:
            self.pending.append(build)
        driver.reviveOffers()

    def wait_state(self, task_id: str, states: set[str], timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.updates.get(timeout=max(0.01, deadline - time.monotonic()))
            if status["task_id"]["value"] == task_id and status["state"] in states:
                return status


@pytest.fixture
def zk_url(zookeeper: Any) -> str:
    return f"zk://{zookeeper.endpoints()['address']}/mesos-{uuid.uuid4().hex[:8]}"


def start_driver(recorder: RecordingScheduler, zk_url: str, **framework: Any) -> Any:
    info = {"user": "root", "name": "wharf-contract", "failover_timeout": 60, **framework}
    driver = MesosSchedulerDriver(recorder, info, zk_url)
    driver.start()
    return driver


@stand_in_only("MESOS_MASTER", why="inspects the stand-in's containers on the local Docker engine, "
                                   "bind-mounts a local directory, records the calls the stand-in parses")
def test_pymesos_finds_the_master_in_zookeeper_and_runs_containers(
        make_standin: Callable[..., MesosStandin], zk_url: str, docker_engine: Any, tmp_path: Path,
        calls_seen: list[dict[str, Any]], protos: Protos | None) -> None:
    standin = make_standin(zk=zk_url, docker_host=docker_engine.host)
    recorder = RecordingScheduler()
    driver = start_driver(recorder, zk_url)
    try:
        assert recorder.registered_event.wait(20), "pymesos never registered"
        assert recorder.master_info["port"] == standin.port

        # a web server in a container, on the agent's address and a port from the offer
        where: dict[str, str] = {}

        def web(offer: dict[str, Any]) -> dict[str, Any]:
            host, port = offer["hostname"], first_port(offer)
            where["address"] = f"{host}:{port}"
            script = ("mkdir -p www && env > www/env.txt && echo hello-$MESOS_TASK_ID > www/index.html && "
                      f"exec httpd -f -p {host}:{port} -h www")
            task = docker_task("web", offer, script, labels={"labels": [{"key": "SERVICE_NAME", "value": "web"}]})
            task["resources"] = [*scalar(0.2, 64), port_resource(port)]
            task["command"]["environment"] = {"variables": [{"name": "FOO", "value": "bar"}]}
            return task

        recorder.run(driver, web)
        running = recorder.wait_state("web", {"TASK_RUNNING", "TASK_FAILED"})
        assert running["state"] == "TASK_RUNNING", running
        address = where["address"]
        page = wait_for(lambda: _fetch(f"http://{address}/"), what="httpd in the container")
        assert page == "hello-web\n"
        env = dict(line.split("=", 1) for line in _fetch(f"http://{address}/env.txt").splitlines() if "=" in line)
        assert env["FOO"] == "bar" and env["MESOS_TASK_ID"] == "web" and env["MESOS_SANDBOX"] == "/mnt/mesos/sandbox"
        assert env["MESOS_AGENT_ID"] == env["MESOS_SLAVE_ID"] == running["agent_id"]["value"]
        (container,) = owned_containers(docker_engine, standin)
        assert container.name == env["MESOS_CONTAINER_NAME"] and container.name.startswith("mesos-")
        assert container.labels["SERVICE_NAME"] == "web"
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        assert container.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024

        driver.killTask({"value": "web"})
        assert recorder.wait_state("web", {"TASK_KILLED"})["state"] == "TASK_KILLED"
        wait_for(lambda: not owned_containers(docker_engine, standin), what="the container to go")

        # a container that writes into a bind-mounted directory and exits 0, and one that fails
        shared = tmp_path / "shared"
        shared.mkdir()
        recorder.run(driver, lambda offer: docker_task(
            "proof", offer, "echo ok-$MESOS_TASK_ID > /data/proof", container={
                "type": "DOCKER", "docker": {"image": IMAGE, "network": "HOST"},
                "volumes": [{"container_path": "/data", "host_path": str(shared), "mode": "RW"}]}))
        assert recorder.wait_state("proof", {"TASK_FINISHED", "TASK_FAILED"})["state"] == "TASK_FINISHED"
        assert (shared / "proof").read_text() == "ok-proof\n"
        recorder.run(driver, lambda offer: docker_task("bad", offer, "exit 3"))
        failed = recorder.wait_state("bad", {"TASK_FINISHED", "TASK_FAILED"})
        assert failed["state"] == "TASK_FAILED" and "status 3" in failed["message"]
        recorder.run(driver, lambda offer: docker_task("noimage", offer, "true", image="wharf/missing:1"))
        missing = recorder.wait_state("noimage", {"TASK_FINISHED", "TASK_FAILED"})
        assert (missing["state"], missing["reason"]) == ("TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED")
        assert "wharf/missing:1" in missing["message"]
    finally:
        driver.stop()
        driver.join()
    wait_for(lambda: not get_json(standin.url + "/master/state")["frameworks"], what="the TEARDOWN")
    kinds = {c["type"] for c in calls_seen}
    assert {"SUBSCRIBE", "ACCEPT", "DECLINE", "REVIVE", "KILL", "ACKNOWLEDGE", "TEARDOWN"} <= kinds
    assert proto_errors(protos, calls_seen, "mesos.v1.scheduler.Call") == []


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode()
    except (OSError, http.client.HTTPException):
        return None


@stand_in_only("MESOS_MASTER", why="reads, then stops, the stand-in's own ZooKeeper registration")
def test_zookeeper_holds_master_info_as_real_masters_write_it(
        make_standin: Callable[..., MesosStandin], zk_url: str, zookeeper: Any, protos: Protos | None) -> None:
    from kazoo.client import KazooClient

    standin = make_standin(zk=zk_url)
    path = "/" + zk_url.rsplit("/", 1)[1]
    zk = KazooClient(hosts=zookeeper.endpoints()["address"])
    zk.start()
    try:
        (child,) = zk.get_children(path)
        assert re.fullmatch(r"json\.info_\d{10}", child)
        data, stat = zk.get(f"{path}/{child}")
        assert stat.ephemeralOwner != 0
        info = json.loads(data)
        assert proto_errors(protos, [info], "mesos.v1.MasterInfo") == []
        assert info["address"] == {"hostname": "127.0.0.1", "ip": "127.0.0.1", "port": standin.port}
        assert info["ip"] == 16777343 and info["pid"] == f"master@127.0.0.1:{standin.port}"
        standin.stop()
        assert zk.get_children(path) == []
    finally:
        zk.stop()
        zk.close()


def test_pymesos_failover_within_timeout_gets_its_running_task_back(master: Endpoint) -> None:
    assert master.master
    name = f"wharf-contract-{uuid.uuid4().hex[:8]}"
    first = RecordingScheduler()
    driver = start_driver(first, master.master, failover_timeout=60, name=name)
    second_driver = None
    try:
        assert first.registered_event.wait(20)
        first.run(driver, lambda offer: command_task("long", offer, {"value": "exec sleep 300"}))
        assert first.wait_state("long", {"TASK_RUNNING"})["state"] == "TASK_RUNNING"
        framework_id = driver.framework_id
        driver.stop(failover=True)  # drop the subscription without tearing down
        driver.join()
        driver = None

        second = RecordingScheduler()
        second_driver = start_driver(second, master.master, failover_timeout=60, name=name,
                                     id={"value": framework_id})
        assert second.reregistered_event.wait(20), "the framework did not re-register"
        assert second_driver.framework_id == framework_id
        second_driver.reconcileTasks([{"task_id": {"value": "long"}}])
        status = second.wait_state("long", {"TASK_RUNNING", "TASK_LOST", "TASK_KILLED"})
        assert (status["state"], status["reason"]) == ("TASK_RUNNING", "REASON_RECONCILIATION")
    finally:
        for d in (driver, second_driver):
            if d is not None:
                d.stop()
                d.join()


# --- the scheduler API over plain HTTP ---------------------------------------------------------

FRAMEWORK = {"user": "root", "name": "raw", "capabilities": [{"type": "TASK_KILLING_STATE"}]}


@stand_in_only("MESOS_MASTER", why="needs the stand-in's offer_timeout (for RESCIND) "
                                   "and records the calls the stand-in parses")
def test_every_event_uses_the_protos_names(make_standin: Callable[..., MesosStandin], docker_engine: Any,
                                           protos: Protos | None, calls_seen: list[dict[str, Any]]) -> None:
    standin = make_standin(docker_host=docker_engine.host, offer_timeout=1.0)
    make = clients(standin.url)
    client = next(make)
    client.subscribe({**FRAMEWORK, "failover_timeout": 30,
                      "capabilities": [{"type": "TASK_KILLING_STATE"}, {"type": "PARTITION_AWARE"}]})
    offers = next_offers(client)
    launch(client, offers[0], docker_task("c1", offers[0], "exec sleep 300"),
           command_task("p1", offers[0], {"value": "exec sleep 300"}),
           command_task("big", offers[0], {"value": "true"}, resources=scalar(1000, 1)))
    wait_state(client, "c1", "TASK_RUNNING")
    client.call("RECONCILE", {"tasks": []})
    client.call("RECONCILE", {"tasks": [{"task_id": {"value": "nope"}}]})
    client.call("KILL", {"task_id": {"value": "c1"}})
    wait_state(client, "c1", "TASK_KILLED")
    client.next_event("RESCIND", timeout=10)  # offers left unanswered are rescinded after offer_timeout
    other = next(make)
    other.subscribe({**FRAMEWORK, "failover_timeout": 30}, client.framework_id)
    assert client.next_event("ERROR", timeout=10)["error"]["message"] == "Framework failed over"
    events = client.seen + other.seen
    assert {"SUBSCRIBED", "HEARTBEAT", "OFFERS", "UPDATE", "RESCIND", "ERROR"} <= {e["type"] for e in events}
    statuses = [e["update"]["status"] for e in events if e["type"] == "UPDATE"]
    assert {"TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED", "TASK_ERROR", "TASK_UNKNOWN"} <= {
        s["state"] for s in statuses}
    assert proto_errors(protos, events, "mesos.v1.scheduler.Event") == []
    assert proto_errors(protos, calls_seen, "mesos.v1.scheduler.Call") == []


def test_bad_requests_get_mesos_errors(master: Endpoint) -> None:
    framework = {**FRAMEWORK, "name": f"raw-{uuid.uuid4().hex[:8]}", "failover_timeout": 30}
    make = clients(master.url)
    client = next(make)
    client.subscribe(framework)
    fid = {"value": client.framework_id}
    try:
        _bad_requests(master, make, client, fid)
    finally:
        if master.real:  # leave nothing behind: re-subscribe (within the failover timeout) and tear down
            teardown(master.url, fid["value"], framework)


def _bad_requests(master: Endpoint, make: Iterator[SchedulerClient], client: SchedulerClient,
                  fid: dict[str, str]) -> None:
    assert client.post(b"{not json")[0] == 400
    assert client.post({"type": "NOT_A_CALL", "framework_id": fid})[0] == 400
    assert client.post({"framework_id": fid})[0] == 400
    assert client.post({"type": "REVIVE"})[0] == 400  # no framework_id
    assert client.post({"type": "REVIVE", "framework_id": {"value": "unknown"}})[0] == 400
    status, text = client.post({"type": "REVIVE", "framework_id": fid}, {"Mesos-Stream-Id": "someone-else"})
    assert status == 400 and "didn't match" in text
    assert client.post({"type": "REVIVE", "framework_id": fid}, {"Content-Type": "text/plain"})[0] == 415
    if not master.real:  # what the stand-in honestly refuses (it speaks no protobuf; it lacks UPDATE_FRAMEWORK)
        assert client.post({"type": "SUBSCRIBE", "subscribe": {"framework_info": FRAMEWORK}},
                           {"Accept": "application/x-protobuf"})[0] == 406
        assert client.post({"type": "UPDATE_FRAMEWORK", "framework_id": fid, "update_framework": {}})[0] == 501
    stream_id, client.stream_id = client.stream_id, None
    status, text = client.post({"type": "REVIVE", "framework_id": fid})
    assert status == 400 and "Mesos-Stream-Id" in text
    client.stream_id = stream_id
    assert client.post({"type": "REVIVE", "framework_id": fid})[0] == 202
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(master.url + "/api/v1/scheduler", timeout=5)
    assert err.value.code == 405

    offers = next_offers(client)
    launch(client, offers[0], command_task("greedy", offers[0], {"value": "true"}, resources=scalar(999, 32)))
    status_ = client.next_event("UPDATE")["update"]["status"]
    assert (status_["state"], status_["reason"], status_["source"]) == (
        "TASK_ERROR", "REASON_TASK_INVALID", "SOURCE_MASTER")
    launch(client, offers[0], command_task("stale", offers[0], {"value": "true"}))  # offer already used
    status_ = client.next_event("UPDATE")["update"]["status"]
    assert (status_["state"], status_["reason"]) == ("TASK_LOST", "REASON_INVALID_OFFERS")
    if not master.real:  # the stand-in does not implement LAUNCH_GROUP, and says so
        status, text = client.post({"type": "ACCEPT", "framework_id": fid, "accept": {
            "offer_ids": [offers[1]["id"]], "operations": [{"type": "LAUNCH_GROUP", "launch_group": {}}]}})
        assert status == 400 and "LAUNCH_GROUP is not supported" in text

    client.close()  # the stream goes: the framework is disconnected, within its failover timeout
    # a master started elsewhere may see the stream go only when a heartbeat (15 s by default) finds it closed
    wait_for(lambda: not framework_state(master.url, fid["value"])["connected"], 60 if master.real else 30,
             what="the disconnection")
    late = next(make)
    late.stream_id = stream_id
    late.framework_id = fid["value"]
    assert late.post({"type": "REVIVE", "framework_id": fid})[0] == 403


def operator_teardown(url: str, body: bytes, method: str = "POST") -> tuple[int, str]:
    """`/master/teardown` as an operator calls it (a form body `frameworkId=ID`)."""
    req = urllib.request.Request(url + "/master/teardown", data=body if method == "POST" else None, method=method,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_an_operator_teardown_removes_the_framework_and_its_id_is_refused_after(master: Endpoint) -> None:
    framework = {**FRAMEWORK, "name": f"removed-{uuid.uuid4().hex[:8]}", "failover_timeout": 60}
    make = clients(master.url)
    client = next(make)
    client.subscribe(framework)
    fid = str(client.framework_id)
    assert operator_teardown(master.url, b"", "GET")[0] == 405
    status, text = operator_teardown(master.url, b"nothing=here")
    assert status == 400 and "Missing 'frameworkId' query parameter" in text
    status, text = operator_teardown(master.url, b"frameworkId=no-such-framework")
    assert (status, text) == (400, "No framework found with specified ID")
    assert operator_teardown(master.url, f"frameworkId={fid}".encode())[0] == 200
    with pytest.raises(EOFError):
        client.next_event("NO_SUCH_EVENT", timeout=10)  # the stream is closed, without an event
    state = get_json(master.url + "/master/state")
    assert fid not in [f["id"] for f in state["frameworks"]]
    assert fid in [f["id"] for f in state["completed_frameworks"]]

    conn = http.client.HTTPConnection(urllib.parse.urlsplit(master.url).netloc, timeout=10)
    try:
        body = {"type": "SUBSCRIBE", "framework_id": {"value": fid},
                "subscribe": {"framework_info": {**framework, "id": {"value": fid}}}}
        conn.request("POST", "/api/v1/scheduler", json.dumps(body),
                     {"Content-Type": "application/json", "Accept": "application/json"})
        response = conn.getresponse()
        assert response.status == 200 and response.getheader("Mesos-Stream-Id")
        length = int(response.readline())
        assert json.loads(response.read(length)) == {"type": "ERROR",
                                                     "error": {"message": "Framework has been removed"}}
        assert response.readline() == b""  # and the stream ends there
    finally:
        conn.close()
    assert operator_teardown(master.url, f"frameworkId={fid}".encode())[0] == 400  # removed already


def framework_state(url: str, framework_id: str) -> dict[str, Any]:
    """The framework's entry in the master's `/master/state`."""
    (framework,) = [f for f in get_json(url + "/master/state")["frameworks"] if f["id"] == framework_id]
    return dict(framework)


@stand_in_only("MESOS_MASTER", why="assumes the stand-in's three agents")
def test_declined_agent_stays_out_for_refuse_seconds_and_others_come_back(
        make_standin: Callable[..., MesosStandin]) -> None:
    standin = make_standin()
    client = next(clients(standin.url))
    client.subscribe(FRAMEWORK)
    offers = {o["agent_id"]["value"]: o for o in next_offers(client)}
    assert len(offers) == 3
    held, *others = sorted(offers)
    declined_at = time.monotonic()
    client.call("DECLINE", {"offer_ids": [offers[held]["id"]], "filters": {"refuse_seconds": 1.5}})
    client.call("DECLINE", {"offer_ids": [offers[a]["id"] for a in others], "filters": {"refuse_seconds": 0}})
    seen: dict[str, float] = {}
    while held not in seen:
        for offer in next_offers(client, timeout=10):
            seen.setdefault(offer["agent_id"]["value"], time.monotonic() - declined_at)
    assert set(others) <= set(seen), "agents declined with refuse_seconds=0 must come back at once"
    assert seen[held] >= 1.5 > max(seen[a] for a in others)


@stand_in_only("MESOS_MASTER", why="assumes the stand-in's three agents")
def test_suppress_stops_offers_and_revive_brings_them_back(make_standin: Callable[..., MesosStandin]) -> None:
    standin = make_standin()
    client = next(clients(standin.url))
    client.subscribe(FRAMEWORK)
    offers = next_offers(client)
    client.call("SUPPRESS")
    client.call("DECLINE", {"offer_ids": [o["id"] for o in offers], "filters": {"refuse_seconds": 0}})
    with pytest.raises(TimeoutError):
        client.next_event("OFFERS", timeout=1.0)  # suppressed: nothing, although all is free and unfiltered
    client.call("REVIVE")
    assert len(next_offers(client)) == 3


@stand_in_only("MESOS_MASTER", why="assumes one stand-in agent with known resources")
def test_offers_never_hold_what_running_tasks_use(make_standin: Callable[..., MesosStandin]) -> None:
    standin = make_standin(agents=1)
    client = next(clients(standin.url))
    client.subscribe(FRAMEWORK)
    (offer,) = next_offers(client)
    port = first_port(offer)
    task = command_task("holder", offer, {"value": "exec sleep 300"}, resources=[*scalar(1.5, 1000),
                                                                                 port_resource(port)])
    launch(client, offer, task)
    wait_state(client, "holder", "TASK_RUNNING")
    (again,) = next_offers(client)
    res = {r["name"]: r for r in again["resources"]}
    assert res["cpus"]["scalar"]["value"] == 2.5 and res["mem"]["scalar"]["value"] == 3096
    assert res["ports"]["ranges"]["range"][0]["begin"] == port + 1
    state = get_json(standin.url + "/master/state")
    assert state["slaves"][0]["used_resources"]["cpus"] == 1.5
    assert state["slaves"][0]["offered_resources"]["cpus"] == 2.5
    client.call("KILL", {"task_id": {"value": "holder"}})
    wait_state(client, "holder", "TASK_KILLED")
    (freed,) = next_offers(client)  # what the task held comes back while the rest is still on offer
    assert {r["name"]: r for r in freed["resources"]}["cpus"]["scalar"]["value"] == 1.5
    client.call("DECLINE", {"offer_ids": [again["id"], freed["id"]], "filters": {"refuse_seconds": 0}})
    (whole,) = next_offers(client)
    assert {r["name"]: r for r in whole["resources"]}["cpus"]["scalar"]["value"] == 4


def offered_ports(offers: list[dict[str, Any]]) -> set[int]:
    return {p for o in offers for r in o["resources"] if r["name"] == "ports"
            for span in r["ranges"]["range"] for p in range(int(span["begin"]), int(span["end"]) + 1)}


@stand_in_only("MESOS_MASTER", why="sets the stand-in's port quarantine; assumes one stand-in agent")
def test_a_dead_tasks_host_port_stays_out_of_offers_for_the_quarantine(
        make_standin: Callable[..., MesosStandin]) -> None:
    standin = make_standin(agents=1, port_quarantine=2.0)
    client = next(clients(standin.url))
    client.subscribe(FRAMEWORK)
    (offer,) = next_offers(client)
    port = first_port(offer)
    launch(client, offer, command_task("brief", offer, {"value": "exec sleep 0.3"},
                                       resources=[*scalar(0.1, 32), port_resource(port)]))
    wait_state(client, "brief", "TASK_FINISHED")
    ended = time.monotonic()  # a little after the master saw it end
    while True:
        offers = next_offers(client)
        if port in offered_ports(offers):
            back_after = time.monotonic() - ended
            break
        client.call("DECLINE", {"offer_ids": [o["id"] for o in offers], "filters": {"refuse_seconds": 0.2}})
    assert 1.8 <= back_after < 5, back_after


@stand_in_only("MESOS_MASTER", why="reads the sandbox file the task writes on this machine")
@pytest.mark.parametrize("kind", ["process", "docker"])
def test_a_kill_reports_task_killing_then_sigkills_once_the_grace_period_is_over(
        make_standin: Callable[..., MesosStandin], docker_engine: Any, kind: str) -> None:
    standin = make_standin(agents=1, docker_host=docker_engine.host)
    client = next(clients(standin.url))
    client.subscribe(FRAMEWORK)  # with TASK_KILLING_STATE
    (offer,) = next_offers(client)
    stubborn = "trap 'date +%s > \"$MESOS_SANDBOX/term\"' TERM; while true; do sleep 0.1; done"  # ignores SIGTERM
    grace = {"kill_policy": {"grace_period": {"nanoseconds": 3_000_000_000}}}
    task = (command_task("stubborn", offer, {"value": stubborn}, **grace) if kind == "process"
            else docker_task("stubborn", offer, stubborn, **grace))
    launch(client, offer, task)
    wait_state(client, "stubborn", "TASK_RUNNING", timeout=60)
    client.call("KILL", {"task_id": {"value": "stubborn"}})
    killing = wait_state(client, "stubborn", "TASK_KILLING")
    (note,) = wait_for(lambda: list(standin.state_dir.rglob("stubborn/*/term")), 5, "the SIGTERM note")
    assert wait_for(lambda: note.read_text().strip(), 5, "the note's text")
    assert not [e for e in client.seen if e.get("update", {}).get("status", {}).get("state") == "TASK_KILLED"]
    killed = wait_state(client, "stubborn", "TASK_KILLED")
    assert 2.9 <= killed["timestamp"] - killing["timestamp"] < 10  # SIGKILL only once the 3 s grace is over


@stand_in_only("MESOS_MASTER", why="reads host-process sandboxes and pids on this machine")
def test_command_tasks_run_as_host_processes_with_mesos_environment(
        make_standin: Callable[..., MesosStandin]) -> None:
    standin = make_standin()
    client = next(clients(standin.url))
    client.subscribe(FRAMEWORK)
    offers = next_offers(client)
    env = {"variables": [{"name": "GREETING", "value": "hi there"}]}
    launch(client, offers[0],
           command_task("shell", offers[0], {"value": "env > env.txt; echo $$ > pid", "environment": env}),
           command_task("argv", offers[0], {"shell": False, "value": "/usr/bin/env", "arguments": ["env"],
                                            "environment": env}),
           command_task("fails", offers[0], {"value": "exit 7"}),
           command_task("sleeper", offers[0], {"value": "echo $$ > pid; exec sleep 300"}))
    wait_state(client, "shell", "TASK_FINISHED")
    (env_file,) = standin.state_dir.rglob("shell/*/env.txt")
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert values["MESOS_TASK_ID"] == "shell" and values["GREETING"] == "hi there"
    assert values["MESOS_SANDBOX"] == str(env_file.parent)
    assert values["MESOS_AGENT_ID"] == offers[0]["agent_id"]["value"]
    wait_state(client, "argv", "TASK_FINISHED")
    (stdout,) = standin.state_dir.rglob("argv/*/stdout")
    assert "MESOS_TASK_ID=argv" in stdout.read_text()
    failed = wait_state(client, "fails", "TASK_FAILED")
    assert "status 7" in failed["message"]
    wait_state(client, "sleeper", "TASK_RUNNING")
    (pid_file,) = wait_for(lambda: list(standin.state_dir.rglob("sleeper/*/pid")), what="the pid file")
    pid = int(wait_for(lambda: pid_file.read_text().strip(), what="the pid"))
    assert Path(f"/proc/{pid}").exists()
    client.call("KILL", {"task_id": {"value": "sleeper"}, "kill_policy": {"grace_period": {"nanoseconds": 0}}})
    wait_state(client, "sleeper", "TASK_KILLED")
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


@stand_in_only("MESOS_MASTER", why="watches the task's host process on this machine")
def test_failover_timeout_expiry_kills_the_tasks(make_standin: Callable[..., MesosStandin]) -> None:
    standin = make_standin()
    make = clients(standin.url)
    client = next(make)
    client.subscribe({**FRAMEWORK, "failover_timeout": 0.5})
    offers = next_offers(client)
    launch(client, offers[0], command_task("orphan", offers[0], {"value": "echo $$ > pid; exec sleep 300"}))
    wait_state(client, "orphan", "TASK_RUNNING")
    (pid_file,) = wait_for(lambda: list(standin.state_dir.rglob("orphan/*/pid")), what="the pid file")
    pid = int(wait_for(lambda: pid_file.read_text().strip(), what="the pid"))
    framework_id = client.framework_id
    client.close()
    state = wait_for(lambda: (s := get_json(standin.url + "/master/state"))["completed_frameworks"] and s,
                     what="the framework to be removed")
    assert state["frameworks"] == [] and state["completed_frameworks"][0]["id"] == framework_id
    wait_for(lambda: not _alive(pid), what="the task's process to be killed")
    with pytest.raises(RuntimeError, match="Framework has been removed"):
        next(make).subscribe(FRAMEWORK, framework_id)


@stand_in_only("MESOS_MASTER", why="assumes the stand-in's agents, resources and attributes")
def test_state_metrics_redirect_health(make_standin: Callable[..., MesosStandin]) -> None:
    standin = make_standin()
    client = next(clients(standin.url))
    client.subscribe(FRAMEWORK)
    offers = next_offers(client)
    launch(client, offers[0], command_task("s1", offers[0], {"value": "exec sleep 300"},
                                           labels={"labels": [{"key": "a", "value": "b"}]}))
    wait_state(client, "s1", "TASK_RUNNING")
    for path in ("/master/state", "/state", "/master/state.json"):
        state = get_json(standin.url + path)
        (framework,) = state["frameworks"]
        assert framework["active"] and framework["name"] == "raw"
        (task,) = framework["tasks"]
        assert task["state"] == "TASK_RUNNING" and task["labels"] == [{"key": "a", "value": "b"}]
        assert framework["used_resources"]["cpus"] == 0.1
        assert len(state["slaves"]) == 3 and state["slaves"][0]["attributes"]["rack"] == "rack-1"
    metrics = get_json(standin.url + "/metrics/snapshot")
    assert metrics["master/elected"] == 1 and metrics["master/tasks_running"] == 1
    assert metrics["master/cpus_total"] == 12 and metrics["master/cpus_used"] == 0.1
    assert metrics["master/mem_total"] == 3 * 4096 and metrics["master/disk_used"] == 0
    assert metrics["master/frameworks_active"] == 1
    conn = http.client.HTTPConnection("127.0.0.1", standin.port, timeout=5)
    conn.request("GET", "/master/redirect")
    resp = conn.getresponse()
    assert resp.status == 307 and resp.getheader("Location") == f"//127.0.0.1:{standin.port}"
    conn.close()
    with urllib.request.urlopen(standin.url + "/health", timeout=5) as resp:
        assert resp.status == 200
    assert get_json(standin.url + "/version")["version"].count(".") == 2


def agent_ports(standin: MesosStandin) -> set[int]:
    ports: set[int] = set()
    for slave in get_json(standin.url + "/master/state")["slaves"]:
        for lo, hi in re.findall(r"(\d+)-(\d+)", slave["resources"]["ports"]):
            ports |= set(range(int(lo), int(hi) + 1))
    return ports


@stand_in_only("MESOS_MASTER", why="starts two stand-ins on this machine")
def test_two_stand_ins_at_once_offer_disjoint_ports_that_are_free(make_standin: Callable[..., MesosStandin]) -> None:
    first, second = make_standin(), make_standin()
    a, b = agent_ports(first), agent_ports(second)
    assert len(a) == len(b) == 3 * (BLOCK - 1) and not a & b  # a dev cluster and a test run never share a port
    assert all(free_everywhere(p) for p in a | b)
    first.stop()
    assert all(free_everywhere(p) for p in a)


def test_a_port_claim_skips_blocks_in_use_or_held_and_gives_them_back() -> None:
    probe = PortClaim()
    starts = [lo - 1 for lo, _ in probe.claim(3)]  # three blocks free right now
    probe.release()
    busy = socket.socket()
    busy.bind(("127.0.0.2", starts[0] + 5))  # an agent task's port, say, in the first block
    busy.listen()
    one, two = PortClaim(), PortClaim()
    try:
        assert one.claim(1, starts) == [(starts[1] + 1, starts[1] + BLOCK - 1)]
        assert two.claim(1, starts) == [(starts[2] + 1, starts[2] + BLOCK - 1)]  # the second is held by `one`
        with pytest.raises(RuntimeError, match="only 0 of 1 agent port ranges"):
            PortClaim().claim(1, starts)
        one.release()
        assert one.claim(1, starts[1:2]) == [(starts[1] + 1, starts[1] + BLOCK - 1)]  # given back
    finally:
        busy.close()
        one.release()
        two.release()


@stand_in_only("MESOS_MASTER", why="plants containers on the local Docker engine and starts a stand-in")
def test_leftover_containers_are_removed_on_start(make_standin: Callable[..., MesosStandin],
                                                  docker_engine: Any, tmp_path: Path) -> None:
    state_dir = (tmp_path / "mesos0").resolve()
    client = docker_engine.client()
    try:
        client.containers.create(IMAGE, ["sleep", "300"], labels={OWNER_LABEL: str(state_dir)})
        foreign = client.containers.create(IMAGE, ["sleep", "300"], labels={OWNER_LABEL: "someone-else"})
        standin = make_standin(docker_host=docker_engine.host)
        assert standin.state_dir == state_dir
        assert owned_containers(docker_engine, standin) == []
        foreign.reload()  # still there: not ours
        foreign.remove(force=True)
    finally:
        client.close()


@stand_in_only("MESOS_MASTER", why="runs `python -m devcluster.mesos` here")
def test_python_m_runs_in_the_foreground_and_cleans_up_on_sigterm(
        tmp_path: Path, zookeeper: Any, zk_url: str, docker_engine: Any) -> None:
    from kazoo.client import KazooClient

    from devcluster.process import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "devcluster.mesos", "--port", str(port), "--zk", zk_url,
                             "--docker-host", docker_engine.host, "--state-dir", str(tmp_path / "state"),
                             "--agents", "2", "--log-level", "DEBUG"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONUNBUFFERED": "1"})
    zk = KazooClient(hosts=zookeeper.endpoints()["address"])
    zk.start()
    path = "/" + zk_url.rsplit("/", 1)[1]
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"http://127.0.0.1:{port}"
        assert wait_for(lambda: zk.exists(path) and zk.get_children(path), what="the znode")
        client = SchedulerClient(f"http://127.0.0.1:{port}")
        client.subscribe(FRAMEWORK)
        offers = next_offers(client)
        assert len(offers) == 2
        launch(client, offers[0], docker_task("kept", offers[0], "exec sleep 300"))
        wait_state(client, "kept", "TASK_RUNNING")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        client.close()
        assert zk.get_children(path) == []
        docker = docker_engine.client()
        try:
            owner = f"{OWNER_LABEL}={(tmp_path / 'state').resolve()}"
            left = docker.containers.list(all=True, filters={"label": owner})
        finally:
            docker.close()
        assert left == []
        assert proc.stderr is not None
        log = proc.stderr.read()
        assert re.search(r"scheduler call ACCEPT framework=\S+ -> 202", log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        zk.stop()
        zk.close()
