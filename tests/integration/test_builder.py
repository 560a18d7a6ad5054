"""`wharf build` against the Marathon under test, the test Docker engine and a real registry: a push of
a code repository builds its image, pushes it, writes the tag back to the config repository, whose
hooks deploy it; the agents pull it from the registry; a rollback brings the image before back. A
build that fails, a registry that is down, a config repository that refuses the write each change
nothing. An image the registry lacks fails its task with Docker's message, which `wharf trace` and
`wharf apps status` show."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devcluster.cluster import running
from devcluster.docker_engine import DockerEngine
from devcluster.process import claim_ports, free_port
from devcluster.registry import Registry
from devcluster.webhook import Received
from tests.conftest import Endpoint, stand_in_only, wharf
from tests.integration.test_marathon_apps import api, git, marathon_url
from tests.integration.test_notify import hook as hook  # the fixture: a webhook receiver on loopback
from tests.polling import wait_for

pytestmark = [pytest.mark.integration,
              stand_in_only("MARATHON_URL", "MESOS_MASTER", why="the agents pull from a registry on this machine's "
                                                                 "loopback, which only local agents reach")]

SPEC = """\
# the front end: its image is written back by `wharf build` into values/dev.yaml
image: "{{ web.image }}"
cmd: "exec httpd -f -p $HOST:$PORT0 -h /www"
instances: 1
cpus: 0.05
mem: 16
ports: [{name: http}]
health: {http: /, grace: 20, interval: 1, timeout: 2, failures: 5}
container:
  docker:
    forcePullImage: true   # pull from the registry even though this engine built it
"""
VALUES = "# dev\nweb:\n  image: none/yet:0  # written by wharf build\n"
GOOD = "FROM wharf/busybox:latest\nCOPY index.html /www/index.html\n"
BROKEN = "FROM wharf/busybox:latest\nRUN echo broken && exit 3\n"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real registry (Debian's docker-registry) of this module's own, its log showing pushes and pulls."""
    ports = claim_ports({flag: None for flag in Registry.port_flags})
    with running(Registry(tmp_path_factory.mktemp("registry"), ports)) as service:
        assert isinstance(service, Registry)
        yield service


@dataclass
class Pipeline:
    """A code repository (work tree and bare, with the build hook) and a config repository (work tree
    and bare, with wharf's hooks) for one app, `/<group>/web`."""

    tmp: Path
    env: dict[str, str]
    group: str

    @property
    def app(self) -> str:
        return f"/{self.group}/web"

    @property
    def code(self) -> Path:
        return self.tmp / "code"

    @property
    def config(self) -> Path:
        return self.tmp / "config.git"

    def commit_code(self, page: str, dockerfile: str = GOOD) -> str:
        (self.code / "Dockerfile").write_text(dockerfile)
        (self.code / "index.html").write_text(page + "\n")
        git("add", "-A", cwd=self.code)
        git("commit", "-q", "-m", page, cwd=self.code)
        return git("rev-parse", "HEAD", cwd=self.code).stdout.strip()

    def push_code(self) -> subprocess.CompletedProcess:
        return git("push", "origin", "main", cwd=self.code, env=self.env, check=False)

    def config_head(self) -> str:
        return git("rev-parse", "refs/heads/main", cwd=self.config).stdout.strip()

    def build(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return wharf("build", str(self.code), "--app", self.app, "--config-repo", str(self.config), "--env", "dev",
                     *args, env={**self.env, **(env or {})})


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, marathon: Endpoint, docker_engine: DockerEngine,
             registry: Registry) -> Iterator[Pipeline]:
    tmp = tmp_path_factory.mktemp("build")
    env = {"MARATHON_URL": marathon_url(marathon), "DOCKER_HOST": docker_engine.host,
           "WHARF_REGISTRY": registry.address}
    p = Pipeline(tmp, env, f"b{uuid.uuid4().hex[:8]}")
    work, code_bare = tmp / "config", tmp / "code.git"
    for bare in (p.config, code_bare):
        git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp)
    for tree, bare in ((work, p.config), (p.code, code_bare)):
        git("init", "-q", "-b", "main", str(tree), cwd=tmp)
        git("remote", "add", "origin", str(bare), cwd=tree)
    (work / "apps" / p.group).mkdir(parents=True)
    (work / "apps" / p.group / "web.yaml").write_text(SPEC)
    (work / "values").mkdir()
    (work / "values" / "dev.yaml").write_text(VALUES)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "web, before its first build", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)  # before the hooks: nothing to deploy yet
    for args in (("apps", "hook", "install", str(p.config), "--env", "dev"),
                 ("build", "hook", "install", str(code_bare), "--config-repo", str(p.config), "--app", p.app,
                  "--env", "dev")):
        installed = wharf(*args, env=env)
        assert installed.returncode == 0, installed.stderr
    yield p
    for app_id in [a["id"] for a in api(marathon, "GET", "/v2/apps")["apps"] if a["id"].startswith(f"/{p.group}/")]:
        api(marathon, "DELETE", f"/v2/apps{app_id}", params={"force": "true"})


def app_now(marathon: Endpoint, app_id: str) -> dict[str, Any]:
    return dict(api(marathon, "GET", f"/v2/apps{app_id}", params={"embed": "app.tasks"})["app"])


def healthy_with(marathon: Endpoint, app_id: str, image: str) -> dict[str, Any] | None:
    app = app_now(marathon, app_id)
    ok = (app["container"]["docker"]["image"] == image and not app.get("deployments")
          and app["tasksHealthy"] == app["instances"] == len(app.get("tasks") or []))
    return app if ok else None


def page(app: dict[str, Any]) -> str:
    task = app["tasks"][0]
    return requests.get(f"http://{task['host']}:{task['ports'][0]}/", timeout=5).text.strip()


def pulled(registry: Registry, docker_engine: DockerEngine, image: str) -> bool:
    """Whether the registry's log shows `image` pulled after it was pushed: Docker 20.10 asks for the
    tag's manifest (HEAD .../manifests/<tag>), then fetches it by digest (GET .../manifests/sha256:...)."""
    repository, tag = image.split("/", 1)[1].rsplit(":", 1)
    digest = docker_engine.client().images.get(image).attrs["RepoDigests"][0].split("@")[1]
    log = registry.log_path.read_text()
    pushed = log.find(f'"PUT /v2/{repository}/manifests/{tag} HTTP/1.1" 201')
    asked = log.find(f'"HEAD /v2/{repository}/manifests/{tag} HTTP/1.1" 200', pushed)
    return -1 < pushed < asked < log.find(f'"GET /v2/{repository}/manifests/{digest} HTTP/1.1" 200', asked)


def seconds(output: str) -> dict[str, float]:
    """Each step's seconds from the build's progress lines (`remote: build: ... (2.1s)`)."""
    return {m[1]: float(m[2]) for m in re.finditer(r"remote: (build|push|write-back): .*\((\d+\.\d+)s\)", output)}


def test_a_code_push_runs_the_new_image_and_rollback_brings_back_the_old(pipeline: Pipeline, marathon: Endpoint,
                                                                         registry: Registry,
                                                                         docker_engine: DockerEngine) -> None:
    first = pipeline.commit_code("v1")
    pushed = pipeline.push_code()
    assert pushed.returncode == 0, pushed.stderr
    old = f"{registry.address}/{pipeline.group}/web:{first[:7]}"
    assert wait_for(lambda: healthy_with(marathon, pipeline.app, old), 60, "v1 healthy"), pushed.stderr

    second = pipeline.commit_code("v2")
    new = f"{registry.address}/{pipeline.group}/web:{second[:7]}"
    config_before = pipeline.config_head()
    started = time.monotonic()
    pushed = pipeline.push_code()
    took = time.monotonic() - started
    assert pushed.returncode == 0, pushed.stderr
    app = wait_for(lambda: healthy_with(marathon, pipeline.app, new), 60, "v2 healthy")
    healthy_after = time.monotonic() - started
    assert page(app) == "v2"
    log = git("log", "-1", "--format=%H|%P|%an <%ae>|%s|%b", cwd=pipeline.config).stdout.strip().split("|")
    assert log[1:4] == [config_before, "wharf <wharf@localhost>", f"{pipeline.app}: image → {new}"], log
    assert second in log[4]
    assert git("show", "main:values/dev.yaml", cwd=pipeline.config).stdout == VALUES.replace("none/yet:0", new)
    assert app["labels"]["wharf.commit"] == log[0]
    assert pulled(registry, docker_engine, new)  # the agent pulled it (forcePullImage), not just the engine's copy
    steps = seconds(pushed.stderr)
    assert set(steps) == {"build", "push", "write-back"}, pushed.stderr
    print(f"\ncode push to v2 healthy in Marathon: git push returned after {took:.1f}s, healthy seen at "
          f"{healthy_after:.1f}s; steps {steps}")

    rolled = wharf("apps", "rollback", pipeline.app, env=pipeline.env)
    assert rolled.returncode == 0, rolled.stderr
    back = wait_for(lambda: healthy_with(marathon, pipeline.app, old), 60, "v1 again")
    assert page(back) == "v1"


def snapshot(pipeline: Pipeline, marathon: Endpoint) -> tuple[str, dict[str, str]]:
    """The config repository's head, and each app of the group's version in Marathon."""
    apps = {a["id"]: a["version"] for a in api(marathon, "GET", "/v2/apps")["apps"]
            if a["id"].startswith(f"/{pipeline.group}/")}
    return pipeline.config_head(), apps


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def test_a_build_that_fails_changes_nothing_and_tells_the_team(pipeline: Pipeline, marathon: Endpoint,
                                                                 hook: tuple[str, Received]) -> None:
    before = snapshot(pipeline, marathon)
    pipeline.commit_code("broken", BROKEN)
    pushed = pipeline.push_code()
    said = "Error: build failed: The command '/bin/sh -c echo broken && exit 3' returned a non-zero code: 3"
    assert f"remote: {said}" in pushed.stderr, pushed.stderr
    built = pipeline.build("--json", env={"WHARF_NOTIFY_WEBHOOK": hook[0]})
    assert built.returncode == 1 and errors(built) == [said], built.stderr
    report = json.loads(built.stdout)
    assert [(s["step"], s["ok"]) for s in report["steps"]] == [("build", False)] and report["config_commit"] is None
    assert snapshot(pipeline, marathon) == before
    (told,) = [body["wharf"] for _, _, body in hook[1].items]
    assert (told["kind"], told["app"], told["result"]) == ("build", pipeline.app, "failed")
    assert told["message"] == said.removeprefix("Error: ") and told["commits"]["code"] == report["code_commit"]


def test_a_registry_that_is_down_changes_nothing(pipeline: Pipeline, marathon: Endpoint) -> None:
    before = snapshot(pipeline, marathon)
    pipeline.commit_code("v3")
    port = free_port()
    built = pipeline.build("--registry", f"127.0.0.1:{port}")
    assert built.returncode == 1, built.stderr
    assert errors(built) == [f'Error: push failed: cannot reach the registry at 127.0.0.1:{port}: Get '
                             f'"http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection '
                             "refused; is it running there? Check WHARF_REGISTRY or --registry"], built.stderr
    assert snapshot(pipeline, marathon) == before


def test_a_config_repository_that_refuses_the_write_changes_nothing(pipeline: Pipeline, marathon: Endpoint) -> None:
    before = snapshot(pipeline, marathon)
    pipeline.commit_code("v4")
    hook = pipeline.config / "hooks" / "pre-receive"
    wharfs = hook.read_text()
    hook.write_text("#!/bin/sh\necho 'config frozen until Monday' >&2\nexit 1\n")
    try:
        built = pipeline.build()
    finally:
        hook.write_text(wharfs)
    assert built.returncode == 1, built.stderr
    assert errors(built) == [f"Error: write-back failed: {pipeline.config} refused the push, [remote rejected] "
                             "(pre-receive hook declined): config frozen until Monday"], built.stderr
    assert snapshot(pipeline, marathon) == before


def test_an_image_the_registry_lacks_fails_its_task_with_dockers_message(pipeline: Pipeline, marathon: Endpoint,
                                                                         registry: Registry) -> None:
    app_id, image = f"/{pipeline.group}/nope", f"{registry.address}/nope:missing"
    api(marathon, "POST", "/v2/apps", json={"id": app_id, "cmd": "sleep 60", "cpus": 0.05, "mem": 16, "instances": 1,
                                            "container": {"type": "DOCKER", "docker": {"image": image}}})
    failure = wait_for(lambda: api(marathon, "GET", f"/v2/apps{app_id}")["app"].get("lastTaskFailure"), 60,
                       "the task to fail")
    assert failure["state"] == "TASK_FAILED" and f"Failed to run 'docker pull {image}'" in failure["message"]
    traced = wharf("trace", app_id, "--json", env=pipeline.env)
    links = {link["name"]: link for link in json.loads(traced.stdout)["links"]}
    assert links["marathon"]["state"] == "broken"
    assert f"Failed to run 'docker pull {image}'" in links["marathon"]["summary"], links["marathon"]
    assert "manifest unknown" in links["marathon"]["evidence"]["last_task_failure"]["message"]
    status = wharf("apps", "status", "--json", env=pipeline.env)
    row = next(r for r in json.loads(status.stdout) if r["app"] == app_id)
    assert (row["healthy"], row["instances"]) == (0, 1)
    assert f"Failed to run 'docker pull {image}'" in row["last_task_failure"]["message"]
    table = wharf("apps", "status", env={**pipeline.env, "COLUMNS": "400"})
    assert "last failure: Failed to" in table.stdout, table.stdout


def test_kv_keeps_the_image_once_the_config_holds_it_and_a_consul_down_changes_nothing(
        pipeline: Pipeline, marathon: Endpoint, consul: Any) -> None:
    prefix = f"wharf-test/{pipeline.group}"
    on_consul = {"CONSUL_HTTP_ADDR": consul.addr, "CONSUL_HTTP_TOKEN": consul.token or ""}
    code = pipeline.commit_code("v5")
    built = pipeline.build("--kv", f"/{prefix}/", "--json", env=on_consul)
    assert built.returncode == 0, built.stderr
    report, key = json.loads(built.stdout), f"{prefix}/images/{pipeline.group}/web"
    assert report["kv_key"] == key and [s["step"] for s in report["steps"]] == ["build", "push", "write-back", "kv"]
    _, held = consul.client().kv.get(key)
    registry = pipeline.env["WHARF_REGISTRY"]
    assert held["Value"].decode() == report["image"] == f"{registry}/{pipeline.group}/web:{code[:7]}"
    assert report["image"] in git("show", "main:values/dev.yaml", cwd=pipeline.config).stdout

    before = snapshot(pipeline, marathon)
    pipeline.commit_code("v6")
    port = free_port()
    down = pipeline.build("--kv", prefix, "--json", env={**on_consul, "CONSUL_HTTP_ADDR": f"127.0.0.1:{port}"})
    assert down.returncode == 1 and errors(down)[0].startswith("Error: kv failed: "), down.stderr
    steps = [(s["step"], s["ok"]) for s in json.loads(down.stdout)["steps"]]
    assert f"127.0.0.1:{port}" in errors(down)[0] and steps == [("kv", False)], down.stdout  # nothing built
    empty = pipeline.build("--kv", "/", env=on_consul)
    assert empty.returncode == 2 and errors(empty) == [
        "Error: --kv: must not be empty (the prefix the image's key goes under)"], empty.stderr
    assert snapshot(pipeline, marathon) == before
    _, still = consul.client().kv.get(key)
    assert still["Value"].decode() == report["image"]
    consul.client().kv.delete(prefix, recurse=True)
