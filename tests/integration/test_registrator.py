"""The registrator against the real Docker engine and a real Consul agent.

Each test runs `wharf registrator run` as a user would, with its own host name and owner marker,
so it only ever sees (and asserts on) the services it wrote on the shared agent.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import stand_in_only, wharf
from tests.integration.registrator_kit import consistent, owned, registrator, remove_all, web
from tests.polling import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def tag(docker_engine: Any) -> Iterator[str]:
    """A label value marking this test's containers; they are removed at the end."""
    value = uuid.uuid4().hex[:8]
    yield value
    client = docker_engine.client()
    try:
        remove_all(client, value)
    finally:
        client.close()


@pytest.fixture
def docker(docker_engine: Any) -> Iterator[Any]:
    client = docker_engine.client()
    yield client
    client.close()


def checks_of(consul_client: Any, service_id: str) -> dict[str, str]:
    return {c["CheckID"]: c["Status"] for c in consul_client.agent.checks().values() if c["ServiceID"] == service_id}


@stand_in_only("CONSUL_HTTP_ADDR", why="the agent's HTTP check must reach this machine's containers on loopback")
def test_service_labels_are_registered_the_check_is_real_and_stop_deregisters(
        consul: Any, docker_engine: Any, docker: Any, tag: str, tmp_path: Path) -> None:
    c = consul.client()
    with registrator(consul, docker_engine.host, tmp_path, "--resync", "0") as reg:
        cid, name, port = web(docker, tag, {"SERVICE_NAME": "shop", "SERVICE_TAGS": "prod,v1",
                                            "SERVICE_CHECK_HTTP": "/health", "SERVICE_CHECK_INTERVAL": "1s",
                                            "SERVICE_REGION": "eu1"})
        sid = f"{reg.hostname}:{name}:{port}"
        service = wait_for(lambda: c.agent.services().get(sid), 20, "the registration")
        assert (service["Service"], service["Tags"], service["Address"], service["Port"]) == (
            "shop", ["prod", "v1"], "127.0.0.1", port)
        assert service["Meta"]["wharf_owner"] == reg.owner and service["Meta"]["container_id"] == cid
        assert service["Meta"]["region"] == "eu1"

        check = f"service:{sid}"
        wait_for(lambda: checks_of(c, sid).get(check) == "passing", 30, "the HTTP check to pass")
        docker.api.exec_start(docker.api.exec_create(cid, ["rm", "/www/health"]))
        wait_for(lambda: checks_of(c, sid).get(check) == "critical", 30, "the check to fail (404)")
        docker.api.exec_start(docker.api.exec_create(cid, ["sh", "-c", "echo ok > /www/health"]))
        wait_for(lambda: checks_of(c, sid).get(check) == "passing", 30, "the check to pass again")

        docker.api.stop(cid, timeout=1)
        wait_for(lambda: sid not in c.agent.services(), 20, "the deregistration")
        assert reg.metric("wharf_registrator_registrations_total") >= 1
        assert reg.metric("wharf_registrator_deregistrations_total") >= 1
        assert reg.metric("wharf_registrator_event_lag_seconds_count") >= 1
        assert reg.alive()


def test_the_drain_during_docker_stop(consul: Any, docker_engine: Any, docker: Any, tag: str,
                                      tmp_path: Path) -> None:
    """From the `kill` event on, the service is not passing; it is deregistered at `die`."""
    c = consul.client()
    with registrator(consul, docker_engine.host, tmp_path, "--resync", "0") as reg:
        name = f"drained-{tag}"
        cid, cname, port = web(docker, tag, {"SERVICE_NAME": name})
        sid = f"{reg.hostname}:{cname}:{port}"
        wait_for(lambda: sid in c.agent.services(), 30, "the registration")
        samples: list[tuple[float, str | None]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                _, nodes = c.health.service(name)
                mine = [n for n in nodes if n["Service"]["ID"] == sid]
                worst = None
                if mine:
                    statuses = {ch["Status"] for ch in mine[0]["Checks"]}
                    worst = "passing" if statuses == {"passing"} else "not passing"
                samples.append((time.time(), worst))
                time.sleep(0.02)

        events: dict[str, float] = {}
        stream = docker.api.events(decode=True, filters={"type": "container", "container": cid})

        def listen() -> None:
            for ev in stream:
                events.setdefault(ev["Action"], ev["timeNano"] / 1e9)
                if ev["Action"] == "die":
                    return

        sampler, listener = threading.Thread(target=sample), threading.Thread(target=listen)
        sampler.start()
        listener.start()
        try:
            docker.api.stop(cid, timeout=5)
            listener.join(10)
            wait_for(lambda: samples and samples[-1][1] is None, 20, "the deregistration")
        finally:
            done.set()
            sampler.join()
            stream.close()
        kill, die = events["kill"], events["die"]
        assert die - kill > 4  # httpd ignored TERM: the engine waited the 5 s
        before = [s for t, s in samples if t < kill]
        assert before and before[-1] == "passing"
        after = [(t, s) for t, s in samples if t >= kill]
        first_drained = next(t for t, s in after if s != "passing")
        assert first_drained - kill < 1.0, "the drain came late"
        assert all(s != "passing" for t, s in after if t >= first_drained)
        assert any(s == "not passing" for t, s in after if t < die - 0.5), "deregistered before the die"
        assert reg.metric("wharf_registrator_drains_total") >= 1


def test_services_it_did_not_create_are_never_touched_and_sync_once(
        consul: Any, docker_engine: Any, docker: Any, tag: str, tmp_path: Path) -> None:
    c = consul.client()
    hostname, owner = f"h{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:6]}"
    cid, name, port = web(docker, tag, {"SERVICE_NAME": "mine"})
    clash_id, clash_name, clash_port = web(docker, tag, {"SERVICE_NAME": "clash"})
    clash = f"{hostname}:{clash_name}:{clash_port}"
    foreign = {
        f"{hostname}:gone:1": {"Meta": {}},  # looks like ours, but no owner marker (say, gliderlabs')
        f"{hostname}:gone:2": {"Meta": {"wharf_owner": "another-registrator"}},
        clash: {"Meta": {"wharf_owner": "another-registrator"}},  # the ID ours would take
    }
    for sid, extra in foreign.items():
        c.agent.service.register("foreign", service_id=sid, port=1, meta=extra["Meta"])
    before = {sid: c.agent.services()[sid] for sid in foreign}
    env = {"CONSUL_HTTP_ADDR": consul.addr, **({"CONSUL_HTTP_TOKEN": consul.token} if consul.token else {})}
    args = ["registrator", "sync", "--once", "--json", "--hostname", hostname, "--owner", owner,
            "--host-ip", "127.0.0.1", "--docker-host", docker_engine.host]
    try:
        first = wharf(*args, env=env)
        assert first.returncode == 0, first.stderr
        result = json.loads(first.stdout)
        assert f"{hostname}:{name}:{port}" in result["registered"]
        assert clash in result["conflicts"] and clash not in result["registered"]
        assert set(owned(c, owner)) >= {f"{hostname}:{name}:{port}"}
        assert clash not in owned(c, owner)

        again = json.loads(wharf(*args, env=env).stdout)
        assert again["registered"] == [] and again["deregistered"] == []

        docker.api.remove_container(cid, force=True)
        docker.api.remove_container(clash_id, force=True)
        with registrator(consul, docker_engine.host, tmp_path, "--resync", "1", hostname=hostname,
                         owner=owner) as reg:
            wait_for(lambda: not owned(c, owner), 20, "our ghost to go")
            wait_for(lambda: reg.metric('wharf_registrator_reconcile_fixes_total{kind="deregister"}') >= 1, 10,
                     "the fix to be counted")
        now = c.agent.services()
        assert {sid: now.get(sid) for sid in foreign} == before
        last = wharf(*args, env=env)
        assert last.returncode == 0 and json.loads(last.stdout)["deregistered"] == []
    finally:
        for sid in foreign:
            c.agent.service.deregister(sid)


def test_sync_fails_cleanly_when_consul_or_docker_is_unreachable(docker_engine: Any, consul: Any,
                                                                 tmp_path: Path) -> None:
    down = wharf("registrator", "sync", "--once", "--docker-host", docker_engine.host,
                 env={"CONSUL_HTTP_ADDR": "127.0.0.1:1"})
    assert down.returncode == 1
    assert down.stderr.startswith("Error: cannot reach Consul at 127.0.0.1:1 (connection refused): ")
    no_docker = wharf("registrator", "sync", "--once", "--docker-host", f"unix://{tmp_path}/none.sock",
                      env={"CONSUL_HTTP_ADDR": consul.addr})
    assert no_docker.returncode == 1
    assert no_docker.stderr.strip() == (f"Error: cannot reach the Docker engine at unix://{tmp_path}/none.sock (no "
                                        "such socket): is dockerd running, and is its socket there? Check "
                                        "DOCKER_HOST or --docker-host")
    bad = wharf("registrator", "sync", "--once", "--ip", "not-an-ip")
    assert bad.returncode == 2 and "--ip" in bad.stderr


def test_the_acl_token_is_used_and_never_logged(consul_factory: Any, docker_engine: Any, docker: Any, tag: str,
                                                tmp_path: Path) -> None:
    agent = consul_factory(acl=True)
    assert agent.token
    with registrator(agent, docker_engine.host, tmp_path, "--resync", "0", env={"WHARF_LOG_LEVEL": "debug"}) as reg:
        _, name, port = web(docker, tag, {"SERVICE_NAME": "secured"})
        wait_for(lambda: f"{reg.hostname}:{name}:{port}" in agent.client().agent.services(), 20,
                 "the registration with the token")
    assert agent.token not in reg.output()


def test_no_ghost_and_no_gap_after_the_registrator_restarts(consul: Any, docker_engine: Any, docker: Any,
                                                             tag: str, tmp_path: Path) -> None:
    c = consul.client()
    hostname, owner = f"h{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:6]}"
    kept = [web(docker, tag)[0] for _ in range(2)]
    removed, stopped = web(docker, tag)[0], web(docker, tag)[0]
    with registrator(consul, docker_engine.host, tmp_path, "--resync", "0", hostname=hostname, owner=owner) as reg:
        wait_for(lambda: len(owned(c, owner)) >= 4 and consistent(c, docker, reg, tag), 30, "all four registered")
        assert reg.stop() == 0
        # while it is down: one container removed, one stopped, two started
        docker.api.remove_container(removed, force=True)
        docker.api.stop(stopped, timeout=0)
        started = [web(docker, tag)[0] for _ in range(2)]
        reg.start()
        wait_for(lambda: consistent(c, docker, reg, tag), 30, "no ghost and no gap")
        ids = {s["Meta"]["container_id"] for s in owned(c, owner).values()}
        assert ids >= set(kept) | set(started) and not ids & {removed, stopped}


def test_a_burst_of_containers_leaves_no_ghost_and_no_gap(consul: Any, docker_engine: Any, docker: Any,
                                                          tag: str, tmp_path: Path) -> None:
    """40 containers started, then stopped, as fast as the engine allows, with no periodic resync
    (the full 200 are in bench/registrator.py)."""
    from concurrent.futures import ThreadPoolExecutor

    c = consul.client()
    with registrator(consul, docker_engine.host, tmp_path, "--resync", "0") as reg:
        wait_for(lambda: reg.metric("wharf_daemon_up") == 1 if _up(reg) else False, 20, "the daemon")
        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda _: web(docker, tag, www=False)[0], range(40)))
        wait_for(lambda: {s["Meta"]["container_id"] for s in owned(c, reg.owner).values()} >= set(ids), 60,
                 "all 40 registered")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda cid: docker.api.remove_container(cid, force=True), ids))
        wait_for(lambda: not {s["Meta"]["container_id"] for s in owned(c, reg.owner).values()} & set(ids), 60,
                 "all 40 deregistered")
        assert consistent(c, docker, reg, tag)
        assert reg.metric("wharf_registrator_reconcile_fixes_total") == 0  # events alone did it


def _up(reg: Any) -> bool:
    try:
        reg.metric("wharf_daemon_up")
        return True
    except OSError:
        return False


def test_on_success_keeps_a_failed_containers_service_drained_and_a_survived_stop_signal_is_undone(
        consul: Any, docker_engine: Any, docker: Any, tag: str, tmp_path: Path) -> None:
    c = consul.client()
    with registrator(consul, docker_engine.host, tmp_path, "--resync", "0", "--deregister", "on-success",
                     "--drain-timeout", "2") as reg:
        failed, f_name, f_port = web(docker, tag, stops_on_term=True, term_exit=3)
        clean, c_name, c_port = web(docker, tag, stops_on_term=True)
        stubborn, s_name, s_port = web(docker, tag)  # httpd as PID 1: a TERM does not stop it
        ids = {cid: f"{reg.hostname}:{n}:{p}" for cid, n, p in
               ((failed, f_name, f_port), (clean, c_name, c_port), (stubborn, s_name, s_port))}
        wait_for(lambda: set(ids.values()) <= set(c.agent.services()), 30, "three registrations")

        docker.api.stop(failed, timeout=5)
        docker.api.stop(clean, timeout=5)
        assert docker.api.inspect_container(failed)["State"]["ExitCode"] == 3
        wait_for(lambda: ids[clean] not in c.agent.services(), 20, "exit 0 deregistered")
        maintenance = f"_service_maintenance:{ids[failed]}"
        assert ids[failed] in c.agent.services() and maintenance in c.agent.checks()  # kept, not passing
        docker.api.remove_container(failed)
        wait_for(lambda: ids[failed] not in c.agent.services(), 20, "the failed one gone with its container")

        docker.api.kill(stubborn, signal="SIGTERM")
        drained = f"_service_maintenance:{ids[stubborn]}"
        wait_for(lambda: drained in c.agent.checks(), 10, "the drain on the stop signal")
        wait_for(lambda: drained not in c.agent.checks(), 20, "the drain lifted: the container kept running")
        assert docker.api.inspect_container(stubborn)["State"]["Running"]
        assert ids[stubborn] in c.agent.services()
