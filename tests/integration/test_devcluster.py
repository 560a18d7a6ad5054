"""`wharf dev up/status/env/down` start and stop real ZooKeeper, HAProxy, nginx, Docker and Consul."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from devcluster.cluster import running
from devcluster.docker_engine import DockerEngine
from devcluster.haproxy import runtime_command
from devcluster.process import Proc, mounts_below
from devcluster.zookeeper import four_letter
from tests.conftest import wharf

pytestmark = pytest.mark.integration


def up(state_dir: Path, *flags: str) -> dict[str, Any]:
    result = wharf("dev", "up", "--json", *flags, env={"WHARF_STATE_DIR": str(state_dir)})
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def dev_env(state_dir: Path) -> dict[str, str]:
    result = wharf("dev", "env", env={"WHARF_STATE_DIR": str(state_dir)})
    assert result.returncode == 0, result.stderr
    pairs = [shlex.split(line.removeprefix("export "))[0] for line in result.stdout.splitlines()]
    return dict(pair.split("=", 1) for pair in pairs)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def bridges() -> set[str]:
    """The names of this machine's Linux bridges."""
    out = subprocess.run(["ip", "-j", "link", "show", "type", "bridge"], capture_output=True, text=True, check=True)
    return {link["ifname"] for link in json.loads(out.stdout or "[]")}


def procs_of(state_dir: Path) -> list[Proc]:
    state = json.loads((state_dir / "cluster.json").read_text())
    return [Proc(**p) for p in state["procs"].values()]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state_dir = tmp_path_factory.mktemp("cluster")
    up(state_dir)
    yield state_dir
    wharf("dev", "down", env={"WHARF_STATE_DIR": str(state_dir)})


def test_status_shows_four_healthy_services_with_addresses(cluster: Path) -> None:
    result = wharf("dev", "status", "--json", env={"WHARF_STATE_DIR": str(cluster)})
    assert result.returncode == 0, result.stdout
    status = json.loads(result.stdout)
    assert status["running"] is True
    services = status["services"]
    assert set(services) == {"zookeeper", "haproxy", "nginx", "docker", "registry", "consul", "mesos", "marathon",
                             "chronos", "prometheus-sd", "prometheus"}
    assert all(s["healthy"] and s["running"] and s["pid"] for s in services.values())
    assert services["zookeeper"]["address"].startswith("127.0.0.1:")
    assert services["haproxy"]["http"].startswith("127.0.0.1:")
    assert services["nginx"]["http"].startswith("http://127.0.0.1:")
    assert services["docker"]["host"] == f"unix://{cluster}/docker/docker.sock"
    assert services["prometheus"]["http"] == dev_env(cluster)["WHARF_PROMETHEUS_URL"]
    assert services["prometheus"]["http"].startswith("http://127.0.0.1:")


def test_status_table_for_people(cluster: Path) -> None:
    result = wharf("dev", "status", env={"WHARF_STATE_DIR": str(cluster), "COLUMNS": "200"})
    assert result.returncode == 0
    for name in ("zookeeper", "haproxy", "nginx", "docker", "registry", "consul", "mesos", "marathon", "chronos",
                 "prometheus-sd", "prometheus"):
        assert any(line.split()[:2] == [name, "healthy"] for line in result.stdout.splitlines())


def test_zookeeper_answers_ruok_and_kazoo_creates_an_ephemeral_node(cluster: Path) -> None:
    from kazoo.client import KazooClient

    hosts = dev_env(cluster)["WHARF_ZK"]
    host, port = hosts.split(":")
    assert four_letter(host, int(port), "ruok") == "imok"
    zk = KazooClient(hosts=hosts)
    zk.start(timeout=10)
    try:
        zk.create("/wharf-test/member", b"me", ephemeral=True, makepath=True)
        assert zk.get("/wharf-test/member")[0] == b"me"
        assert zk.get("/wharf-test/member")[1].ephemeralOwner == zk.client_id[0]
    finally:
        zk.stop()
        zk.close()


def test_haproxy_stats_socket_answers_show_info(cluster: Path) -> None:
    env = dev_env(cluster)
    info = runtime_command(env["WHARF_HAPROXY_SOCKET"], "show info")
    assert "Name: HAProxy" in info and "Version: 2." in info
    assert "master" in runtime_command(env["WHARF_HAPROXY_MASTER_SOCKET"], "show proc")


def test_nginx_answers_http(cluster: Path) -> None:
    with urllib.request.urlopen(f"http://{dev_env(cluster)['WHARF_NGINX_HTTP']}/", timeout=5) as resp:
        assert resp.status == 200 and resp.read() == b"wharf dev nginx\n"


def test_docker_runs_the_base_image_and_streams_its_events(cluster: Path) -> None:
    import docker

    client = docker.DockerClient(base_url=dev_env(cluster)["DOCKER_HOST"])
    try:
        since = int(time.time()) - 1
        # `until` ends the stream (and the loop below) after a minute even if an event never comes
        events = client.events(decode=True, filters={"type": "container"}, since=since, until=since + 61)
        out = client.containers.run("wharf/busybox:latest", ["echo", "hello from wharf"],
                                    network_mode="host", remove=True, name="wharf-events-test")
        assert out == b"hello from wharf\n"
        seen = []
        for event in events:
            if event.get("Actor", {}).get("Attributes", {}).get("name") == "wharf-events-test":
                seen.append(event["status"])
            if "destroy" in seen:
                break
        events.close()
        assert seen[:2] == ["create", "start"] and "die" in seen
    finally:
        client.close()


def _consul_get(addr: str, path: str, token: str | None = None, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(f"http://{addr}{path}", method=method,
                                     headers={"X-Consul-Token": token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_consul_is_the_real_agent_and_a_restart_empties_it_on_the_same_port(cluster: Path) -> None:
    import consul

    status = json.loads(wharf("dev", "status", "--json", env={"WHARF_STATE_DIR": str(cluster)}).stdout)
    addr = dev_env(cluster)["CONSUL_HTTP_ADDR"]
    assert status["services"]["consul"]["healthy"] and status["services"]["consul"]["http"] == f"http://{addr}"
    code, agent = _consul_get(addr, "/v1/agent/self")
    assert code == 200 and agent["Config"]["Version"] == "1.8.7"
    host, port = addr.split(":")
    client = consul.Consul(host=host, port=int(port))
    assert client.kv.put("wharf/restart-test", "before")
    client.agent.service.register("restart-test", port=1234)
    assert client.kv.get("wharf/restart-test")[1]["Value"] == b"before"
    result = wharf("dev", "restart", "consul", env={"WHARF_STATE_DIR": str(cluster)})
    assert result.returncode == 0, result.stderr
    assert dev_env(cluster)["CONSUL_HTTP_ADDR"] == addr
    assert client.kv.get("wharf/restart-test")[1] is None
    assert "restart-test" not in client.agent.services()


def test_acl_mode_refuses_requests_without_the_token_which_no_command_line_shows(tmp_path: Path) -> None:
    state_dir = tmp_path / "acl"
    result = wharf("dev", "up", "--consul-acl", env={"WHARF_STATE_DIR": str(state_dir)})
    assert result.returncode == 0, result.stderr
    try:
        env = dev_env(state_dir)
        addr, token = env["CONSUL_HTTP_ADDR"], env["CONSUL_HTTP_TOKEN"]
        assert len(token) >= 32
        assert _consul_get(addr, "/v1/kv/anything", method="PUT")[0] == 403
        assert _consul_get(addr, "/v1/kv/anything", token, method="PUT")[0] == 200
        assert _consul_get(addr, "/v1/agent/self")[0] == 403
        assert _consul_get(addr, "/v1/agent/self", token)[0] == 200
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                assert token.encode() not in cmdline.read_bytes(), f"token on the command line of {cmdline}"
            except OSError:
                continue  # the process ended
    finally:
        wharf("dev", "down", "--purge", env={"WHARF_STATE_DIR": str(state_dir)})


def test_chronos_runs_a_job_on_the_mesos_stand_in_found_through_zookeeper(cluster: Path) -> None:
    import time
    from datetime import UTC, datetime, timedelta

    import requests

    env = dev_env(cluster)
    assert env["MESOS_MASTER"] == f"zk://{env['WHARF_ZK']}/mesos"
    start = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    job = {"name": "devcluster-hello", "command": "echo hello", "schedule": f"R1/{start}/PT1M",
           "owner": "ops@example.com"}
    chronos = env["CHRONOS_URL"]
    assert requests.post(f"{chronos}/v1/scheduler/iso8601", json=job, timeout=10).status_code == 204
    deadline = time.monotonic() + 60
    while True:
        (listed,) = [j for j in requests.get(f"{chronos}/v1/scheduler/jobs", timeout=10).json()
                     if j["name"] == "devcluster-hello"]
        if listed["successCount"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert listed["successCount"] == 1 and listed["errorCount"] == 0
    mesos = json.loads(wharf("dev", "status", "--json", env={"WHARF_STATE_DIR": str(cluster)}).stdout)
    state = requests.get(mesos["services"]["mesos"]["http"] + "/master/state", timeout=10).json()
    assert "chronos" in [f["name"] for f in state["frameworks"]] and len(state["slaves"]) == 3


def test_marathon_runs_a_healthy_container_app_with_its_labels_on_docker(cluster: Path) -> None:
    import docker
    import jsonschema
    import requests
    from marathon import MarathonApp, MarathonClient
    from marathon.models.app import MarathonHealthCheck

    from tests.polling import wait_for
    from tests.upstream import optional

    env = dev_env(cluster)
    client = MarathonClient(env["MARATHON_URL"])
    app = MarathonApp(
        cmd="mkdir -p www && echo hello > www/index.html && exec httpd -f -p $HOST:$PORT0 -h www",
        container={"type": "DOCKER", "docker": {"image": "wharf/busybox:latest", "network": "HOST"}},
        instances=1, cpus=0.1, mem=32, labels={"HAPROXY_GROUP": "external"},
        health_checks=[MarathonHealthCheck(protocol="HTTP", path="/", port_index=0, grace_period_seconds=30,
                                           interval_seconds=1, timeout_seconds=1, max_consecutive_failures=3)],
    )
    schema = optional("marathon", "docs", "docs", "rest-api", "public", "api", "v2", "schema", "AppDefinition.json")
    if schema is not None:  # the app the client sends is one Marathon's schema accepts
        jsonschema.Draft4Validator(json.loads(schema.read_text())).validate(
            {"id": "/devcluster-web", **json.loads(app.to_json())})
    client.create_app("devcluster-web", app)
    try:
        healthy = wait_for(lambda: client.get_app("devcluster-web").tasks_healthy == 1, timeout=60,
                           what="the app to be healthy")
        assert healthy
        (task,) = client.list_tasks("devcluster-web")
        assert requests.get(f"http://{task.host}:{task.ports[0]}/", timeout=5).text == "hello\n"
        engine = docker.DockerClient(base_url=env["DOCKER_HOST"])
        try:
            (container,) = [c for c in engine.containers.list()
                            if c.labels.get("HAPROXY_GROUP") == "external"]
            assert any(v == "MARATHON_APP_ID=/devcluster-web" for v in container.attrs["Config"]["Env"])
        finally:
            engine.close()
    finally:
        client.delete_app("devcluster-web", force=True)


def test_second_up_reports_the_running_cluster(cluster: Path) -> None:
    before = procs_of(cluster)
    status = up(cluster)
    assert status["already_running"] is True and status["running"] is True
    assert procs_of(cluster) == before


def ip_lines(*args: str) -> set[str]:
    return set(subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout.splitlines())


@pytest.fixture
def downed(tmp_path: Path) -> Iterator[Path]:
    """A state dir whose cluster is taken down after the test, whatever happened in it."""
    yield tmp_path
    wharf("dev", "down", env={"WHARF_STATE_DIR": str(tmp_path)})


def not_on_bridges(lines: set[str]) -> set[str]:
    """Routes but those of wharf bridges (other stand-ins on this machine make and remove theirs)."""
    return {line for line in lines if not re.search(r"\bdev wh[0-9a-f]{13}\b", line)}


def test_down_leaves_no_process_mount_bridge_or_route_and_a_second_down_is_harmless(downed: Path) -> None:
    tmp_path = downed
    routes_before = ip_lines("-4", "route", "show", "table", "all")
    status = up(tmp_path)
    procs = procs_of(tmp_path)
    assert len(procs) == 11 and all(p.alive() for p in procs)
    assert mounts_below(tmp_path)  # dockerd mounts its data root and netns
    network = get_json(status["services"]["mesos"]["http"] + "/master/state")["flags"]["docker_network"]
    engine = docker.DockerClient(base_url=status["services"]["docker"]["host"])
    try:
        attrs = engine.networks.get(network).attrs  # BRIDGE tasks' network, made at `up`
    finally:
        engine.close()
    device, subnet = attrs["Options"]["com.docker.network.bridge.name"], attrs["IPAM"]["Config"][0]["Subnet"]
    assert device in bridges() and any(line.startswith(subnet + " ") for line in ip_lines("-4", "route"))
    result = wharf("dev", "down", env={"WHARF_STATE_DIR": str(tmp_path)})
    assert result.returncode == 0
    assert ("stopped prometheus, prometheus-sd, chronos, marathon, mesos, consul, registry, docker, nginx, "
            "haproxy, zookeeper") in result.stdout
    assert not any(p.alive() for p in procs)
    assert mounts_below(tmp_path) == []
    # no bridge, no route of ours; every route there was before is still there
    routes_after = ip_lines("-4", "route", "show", "table", "all")
    assert device not in bridges() and not any(subnet in line or device in line for line in routes_after)
    assert not_on_bridges(routes_before) <= routes_after
    with running(DockerEngine(tmp_path / "docker", {})) as restarted:  # nor does the engine bring it back
        assert isinstance(restarted, DockerEngine)
        engine = restarted.client()
        try:
            assert {n.name for n in engine.networks.list()} == {"host", "none"}
        finally:
            engine.close()
        assert device not in bridges()
    again = wharf("dev", "down", env={"WHARF_STATE_DIR": str(tmp_path)})
    assert again.returncode == 0 and "no dev cluster was running" in again.stdout
    status = wharf("dev", "status", "--json", env={"WHARF_STATE_DIR": str(tmp_path)})
    assert status.returncode == 1 and json.loads(status.stdout)["running"] is False
    assert (tmp_path / "zookeeper" / "data").is_dir()  # kept for the next `up`
    (tmp_path / "unrelated.txt").write_text("not the cluster's")
    purged = wharf("dev", "down", "--purge", env={"WHARF_STATE_DIR": str(tmp_path)})
    assert purged.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["unrelated.txt"]


@pytest.mark.parametrize(("flag", "service"), [("--zk-port", "zookeeper"), ("--consul-port", "consul")])
def test_taken_port_is_bad_input_and_starts_nothing(tmp_path: Path, flag: str, service: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = wharf("dev", "up", flag, str(port), env={"WHARF_STATE_DIR": str(tmp_path / "s")})
    assert result.returncode == 2
    assert result.stderr.strip() == f"Error: {flag}: 127.0.0.1:{port} is already in use"
    assert not (tmp_path / "s" / "cluster.json").exists()
    assert not (tmp_path / "s" / service).exists()


@pytest.mark.parametrize(("setup", "expected"), [
    ({"file": "marathon_url: http://m:8080\nzk_hosts: z:2181\n"}, "unknown setting 'zk_hosts'"),
    ({"MARATHON_URL": "marathon.local:8080"}, "MARATHON_URL: 'marathon.local:8080' is not"),
])
def test_bad_settings_are_bad_input_and_start_nothing(tmp_path: Path, setup: dict[str, str],
                                                     expected: str) -> None:
    env = {"WHARF_STATE_DIR": str(tmp_path / "s")}
    if "file" in setup:
        (tmp_path / "wharf.yaml").write_text(setup["file"])
    else:
        env.update(setup)
    result = wharf("dev", "up", env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0]
    assert not (tmp_path / "s").exists()


def test_restart_one_service_keeps_its_port_and_clients_reconnect(cluster: Path) -> None:
    from kazoo.client import KazooClient
    from kazoo.protocol.states import KazooState

    env = {"WHARF_STATE_DIR": str(cluster)}
    hosts = dev_env(cluster)["WHARF_ZK"]
    zk = KazooClient(hosts=hosts, connection_retry={"max_tries": -1, "max_delay": 0.5})
    zk.start(timeout=10)
    states: list[str] = []
    zk.add_listener(states.append)
    try:
        zk.create("/restart-test", b"kept on disk")
        old_pid = json.loads(wharf("dev", "status", "--json", env=env).stdout)["services"]["zookeeper"]["pid"]
        result = wharf("dev", "restart", "zookeeper", "--json", env=env)
        assert result.returncode == 0, result.stderr
        row = json.loads(result.stdout)["services"]["zookeeper"]
        assert row["healthy"] and row["pid"] != old_pid and row["address"] == hosts
        assert zk.retry(zk.get, "/restart-test")[0] == b"kept on disk"
        assert KazooState.SUSPENDED in states
    finally:
        zk.stop()
        zk.close()


def test_restart_of_an_unknown_service_is_bad_input(cluster: Path) -> None:
    result = wharf("dev", "restart", "postgres", env={"WHARF_STATE_DIR": str(cluster)})
    assert result.returncode == 2
    assert "postgres: not a dev cluster service" in result.stderr
