"""`wharf apps` against the Marathon under test, with real containers on the test Docker engine:
a push deploys in dependency order, a bad push is rejected, an unhealthy update is rolled back,
a plan after a deploy is empty, credentials and several masters work."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from devcluster.process import claim_ports
from tests.conftest import Endpoint, wharf
from tests.polling import wait_for

pytestmark = pytest.mark.integration

IMAGE = "wharf/busybox:latest"
SERVE = "mkdir -p www && echo ok > www/index.html && exec httpd -f -p $HOST:$PORT0 -h www"


def app_yaml(after: list[str] | None = None, instances: int = 1, cmd: str = SERVE, path: str = "/",
             extra: str = "") -> str:
    lines = [f"image: {IMAGE}", f"cmd: {json.dumps(cmd)}", f"instances: {instances}", "cpus: 0.05", "mem: 16",
             "ports: [{name: http}]",
             f"health: {{http: {path}, grace: 20, interval: 1, timeout: 2, failures: 5}}"]
    if after:
        lines.append(f"after: [{', '.join(after)}]")
    return "\n".join(lines) + "\n" + extra


def git(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    import os

    full = {**{k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_", "CONSUL_"))},
            "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com", **(env or {})}
    result = subprocess.run(["git", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


class ConfigRepo:
    """A work tree and a bare repository with wharf's hooks, whose apps live under one unique folder."""

    def __init__(self, tmp: Path, marathon_url: str) -> None:
        self.group = f"t{uuid.uuid4().hex[:8]}"
        self.work, self.bare = tmp / "work", tmp / "config.git"
        self.env = {"MARATHON_URL": marathon_url}
        git("init", "-q", "--bare", "-b", "main", str(self.bare), cwd=tmp)
        git("init", "-q", "-b", "main", str(self.work), cwd=tmp)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        result = wharf("apps", "hook", "install", str(self.bare), "--branch", "main")
        assert result.returncode == 0, result.stderr

    def app_id(self, name: str) -> str:
        return f"/{self.group}/{name}"

    def write(self, name: str, text: str) -> None:
        path = self.work / "apps" / self.group / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def push(self, message: str) -> subprocess.CompletedProcess:
        git("add", "-A", cwd=self.work)
        git("commit", "-q", "--allow-empty", "-m", message, cwd=self.work)
        return git("push", "-q", "origin", "main", cwd=self.work, env=self.env, check=False)

    def head(self) -> str:
        return git("rev-parse", "HEAD", cwd=self.work).stdout.strip()


class Events:
    """Marathon's event stream, recorded on a thread from before the test acts."""

    def __init__(self, marathon: Endpoint) -> None:
        self.seen: list[dict[str, Any]] = []
        self.response = requests.get(marathon.url + "/v2/events", stream=True, auth=marathon.auth, timeout=(10, None),
                                     headers={"Accept": "text/event-stream"})
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        wait_for(lambda: any(e["eventType"] == "event_stream_attached" for e in self.seen), 10, "the stream")

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines():
                if line.startswith(b"data:"):
                    self.seen.append(json.loads(line[5:]))
        except (requests.RequestException, AttributeError, ValueError):
            pass

    def close(self) -> None:
        self.response.close()


def marathon_url(marathon: Endpoint) -> str:
    if not marathon.auth:
        return marathon.url
    user, password = marathon.auth
    scheme, rest = marathon.url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


def api(marathon: Endpoint, method: str, path: str, **kwargs: Any) -> Any:
    response = requests.request(method, marathon.url + path, auth=marathon.auth, timeout=10, **kwargs)
    return response.json() if response.content else None


def live_apps(marathon: Endpoint, group: str) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in api(marathon, "GET", "/v2/apps")["apps"] if a["id"].startswith(f"/{group}/")}


@pytest.fixture
def repo(tmp_path: Path, marathon: Endpoint) -> Iterator[ConfigRepo]:
    config = ConfigRepo(tmp_path, marathon_url(marathon))
    yield config
    for app_id in live_apps(marathon, config.group):
        api(marathon, "DELETE", f"/v2/apps{app_id}", params={"force": "true"})


def deploy(repo: ConfigRepo, *args: str) -> subprocess.CompletedProcess:
    return wharf("apps", "deploy", str(repo.work), *args, env=repo.env)


def test_push_deploys_a_b_c_each_after_the_one_before_is_healthy(repo: ConfigRepo, marathon: Endpoint) -> None:
    repo.write("a", app_yaml())
    repo.write("b", app_yaml(after=["a"]))
    repo.write("c", app_yaml(after=["b"]))
    repo.write("d", app_yaml())  # independent: deploys alongside a
    events = Events(marathon)
    try:
        pushed = repo.push("three apps")
    finally:
        events.close()
    assert pushed.returncode == 0, pushed.stderr
    a, b, c, d = (repo.app_id(n) for n in "abcd")
    assert f"remote: {c}: deployed" in pushed.stderr  # the deploy's output reached the pusher

    apps = live_apps(marathon, repo.group)
    assert set(apps) == {a, b, c, d}
    wait_for(lambda: all(x["tasksHealthy"] == 1 for x in live_apps(marathon, repo.group).values()), 30,
             "all four healthy")
    assert {x["labels"]["wharf.commit"] for x in apps.values()} == {repo.head()}

    def first(predicate: Any) -> int:
        return next(i for i, e in enumerate(events.seen) if predicate(e))

    def healthy(app_id: str) -> int:
        return first(lambda e: e["eventType"] == "health_status_changed_event" and e["appId"] == app_id
                     and e["alive"])

    def started(app_id: str) -> int:
        return first(lambda e: e["eventType"] == "deployment_info" and app_id in e["plan"]["affectedApps"])

    assert healthy(a) < started(b), "b's deployment started before a's task was healthy"
    assert healthy(b) < started(c), "c's deployment started before b's task was healthy"
    assert started(a) < started(b) < started(c)
    a_done = first(lambda e: e["eventType"] == "deployment_success" and a in e["plan"]["affectedApps"])
    assert started(d) < a_done, "d waited for a although it does not depend on it"

    status = wharf("apps", "status", "--json", env=repo.env)
    rows = {r["app"]: r for r in json.loads(status.stdout)}
    assert rows[b]["commit"] == repo.head() and rows[b]["healthy"] == rows[b]["instances"] == 1

    # a second push that changes only c leaves a and b (and their commit) alone
    first_commit = repo.head()
    repo.write("c", app_yaml(after=["b"], extra="env: {COLOUR: blue}\n"))
    again = repo.push("recolour c")
    assert again.returncode == 0, again.stderr
    after = live_apps(marathon, repo.group)
    assert after[a]["version"] == apps[a]["version"] and after[b]["version"] == apps[b]["version"]
    assert after[a]["labels"]["wharf.commit"] == first_commit
    assert after[c]["labels"]["wharf.commit"] == repo.head() and after[c]["env"] == {"COLOUR": "blue"}


BAD_SPECS = [
    ("unknown field", "a", app_yaml() + "colour: blue\n", "apps/{g}/a.yaml:8: colour: is not a known property"),
    ("wrong type", "a", app_yaml().replace("instances: 1", "instances: two"),
     "apps/{g}/a.yaml:3: instances: must be an integer"),
    ("jinja error", "a", app_yaml() + "labels: {tier: '{{ tier }}'}\n",
     "apps/{g}/a.yaml:8: undefined value: 'tier' is undefined"),
    ("cycle", "b", app_yaml(after=["c"]), "dependency cycle"),
    ("missing dependency", "b", app_yaml(after=["nope"]), "after: depends on /{g}/nope, which is not an app"),
    ("invalid vhost", "a", app_yaml() + "lb: {vhost: bad_host!.example}\n",
     "apps/{g}/a.yaml:8: lb.vhost: 'bad_host!.example' is not a list of host names"),
    ("invalid balance", "a", app_yaml() + "lb: {vhost: a.example, balance: fastest}\n",
     "apps/{g}/a.yaml:8: lb.balance: 'fastest' is not one of roundrobin"),
    ("invalid id", "Bad_Name", app_yaml(),
     "apps/{g}/Bad_Name.yaml:1: the file's path '{g}/Bad_Name' is not a valid Marathon app id"),
]


@pytest.mark.parametrize(("case", "name", "text", "message"), BAD_SPECS, ids=[c[0] for c in BAD_SPECS])
def test_a_bad_push_is_rejected_naming_file_field_and_reason(repo: ConfigRepo, marathon: Endpoint, case: str,
                                                             name: str, text: str, message: str) -> None:
    repo.write("c", app_yaml(after=["b"]) if case == "cycle" else app_yaml())
    repo.write(name, text)
    before = api(marathon, "GET", "/v2/apps")["apps"]
    pushed = repo.push(case)
    assert pushed.returncode != 0, "the push was accepted"
    assert "pre-receive hook declined" in pushed.stderr
    assert message.format(g=repo.group) in pushed.stderr, pushed.stderr
    assert api(marathon, "GET", "/v2/apps")["apps"] == before, "Marathon changed"
    assert git("ls-remote", str(repo.bare), cwd=repo.work).stdout == "", "the bare repository took the push"


def test_an_update_that_never_gets_healthy_is_rolled_back(repo: ConfigRepo, marathon: Endpoint) -> None:
    repo.write("api", app_yaml(instances=2))
    first = deploy(repo)
    assert first.returncode == 0, first.stdout + first.stderr
    app_id = repo.app_id("api")
    good = live_apps(marathon, repo.group)[app_id]

    repo.write("api", app_yaml(instances=3, path="/missing"))  # answers 404: never healthy
    repo.write("web", app_yaml(after=["api"]))  # new, and waits for api
    failed = deploy(repo, "--timeout", "12")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"deploy failed: {app_id}: not deployed and healthy within 12s" in failed.stderr
    assert f"rolled back: {app_id}; not attempted: {repo.app_id('web')}" in failed.stdout
    assert repo.app_id("web") not in live_apps(marathon, repo.group)

    def back() -> dict[str, Any] | None:
        now = live_apps(marathon, repo.group)[app_id]
        return now if now["tasksHealthy"] == 2 and not now["deployments"] and now["tasksRunning"] == 2 else None

    now = wait_for(back, 60, "the previous version to run again")
    assert now["instances"] == 2 and now["healthChecks"][0]["path"] == "/"
    tasks = api(marathon, "GET", f"/v2/apps{app_id}/tasks")["tasks"]
    assert len(tasks) == 2 and all(t["state"] == "TASK_RUNNING" for t in tasks)
    assert now["versionInfo"]["lastConfigChangeAt"] != good["versionInfo"]["lastConfigChangeAt"]  # redeployed


def test_plan_after_deploy_is_empty_and_one_changed_field_shows_alone(repo: ConfigRepo, marathon: Endpoint) -> None:
    repo.write("api", app_yaml())
    repo.write("web", app_yaml(after=["api"], extra="lb: {vhost: web.local, group: external}\n"))
    assert deploy(repo).returncode == 0
    plan = json.loads(wharf("apps", "plan", str(repo.work), "--json", env=repo.env).stdout)
    assert {c["action"] for c in plan["changes"]} == {"unchanged"}
    again = deploy(repo, "--json")
    assert json.loads(again.stdout)["deployed"] == []  # re-running after success sends nothing

    repo.write("web", app_yaml(after=["api"], extra="lb: {vhost: shop.local, group: external}\n"))
    plan = json.loads(wharf("apps", "plan", str(repo.work), "--json", env=repo.env).stdout)
    changes = {c["app"]: c for c in plan["changes"]}
    assert changes[repo.app_id("api")]["action"] == "unchanged"
    assert changes[repo.app_id("web")]["action"] == "update"
    assert changes[repo.app_id("web")]["fields"] == [
        {"field": "labels.HAPROXY_0_VHOST", "old": "web.local", "new": "shop.local"}]

    repo.write("web", app_yaml(after=["api"], instances=2, extra="lb: {vhost: web.local, group: external}\n"))
    plan = json.loads(wharf("apps", "plan", str(repo.work), "--json", env=repo.env).stdout)
    web = next(c for c in plan["changes"] if c["app"] == repo.app_id("web"))
    assert web["action"] == "scale" and web["fields"] == [{"field": "instances", "old": 1, "new": 2}]
    before = live_apps(marathon, repo.group)[repo.app_id("web")]
    assert deploy(repo).returncode == 0
    scaled = live_apps(marathon, repo.group)[repo.app_id("web")]
    assert scaled["instances"] == 2 and scaled["tasksHealthy"] == 2
    assert scaled["versionInfo"]["lastConfigChangeAt"] == before["versionInfo"]["lastConfigChangeAt"]  # no restart

    # --prune deletes what this repository owned and dropped, and nothing else
    manual = f"/{repo.group}/manual"
    api(marathon, "POST", "/v2/apps", json={"id": manual, "cmd": "sleep 600", "cpus": 0.01, "mem": 8, "instances": 0})
    (repo.work / "apps" / repo.group / "web.yaml").unlink()
    kept = json.loads(wharf("apps", "plan", str(repo.work), "--json", env=repo.env).stdout)
    assert {c["action"] for c in kept["changes"]} == {"unchanged"}  # without --prune nothing goes
    pruned = deploy(repo, "--prune", "--json")
    assert json.loads(pruned.stdout)["deployed"] == [repo.app_id("web")], pruned.stdout
    assert set(live_apps(marathon, repo.group)) == {repo.app_id("api"), manual}


class AuthProxy(BaseHTTPRequestHandler):
    """Marathon behind basic auth with no event stream: wharf must send the credentials and poll."""

    target = ""
    credentials = ""
    seen_auth: list[bool] = []

    def _forward(self) -> None:
        expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
        ok = self.headers.get("Authorization") == expected
        type(self).seen_auth.append(ok)
        if not ok:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="marathon"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/v2/events"):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        answer = requests.request(self.command, self.target + self.path, data=body, timeout=30,
                                  headers={"Content-Type": "application/json"})
        self.send_response(answer.status_code)
        self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _forward

    def log_message(self, *args: Any) -> None:
        pass


def test_credentials_and_several_masters_work_and_are_never_shown(repo: ConfigRepo, marathon: Endpoint) -> None:
    if marathon.auth:
        pytest.skip("MARATHON_URL has its own credentials; this test puts a proxy with its own in front")
    AuthProxy.target, AuthProxy.credentials, AuthProxy.seen_auth = marathon.url, "deployer:s3cret-pw", []
    server = ThreadingHTTPServer(("127.0.0.1", 0), AuthProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dead = claim_ports({"--dead": None})["--dead"]  # nothing listens there: the first master is down
    urls = f"http://deployer:s3cret-pw@127.0.0.1:{dead},http://deployer:s3cret-pw@127.0.0.1:{server.server_port}"
    try:
        repo.write("api", app_yaml())
        result = wharf("--log-level", "debug", "apps", "deploy", str(repo.work), "--timeout", "60",
                       env={"MARATHON_URL": urls})
        assert result.returncode == 0, result.stdout + result.stderr
        assert repo.app_id("api") in result.stdout and "deployed" in result.stdout
        assert "s3cret-pw" not in result.stdout + result.stderr
        assert AuthProxy.seen_auth and all(AuthProxy.seen_auth)
        status = wharf("apps", "status", env={"MARATHON_URL": urls})
        assert repo.app_id("api") in status.stdout and "1/1" in status.stdout

        wrong = urls.replace("s3cret-pw", "wrong-pw")
        refused = wharf("apps", "status", env={"MARATHON_URL": wrong})
        assert refused.returncode == 1 and "refused the credentials (401)" in refused.stderr
        assert "wrong-pw" not in refused.stdout + refused.stderr
    finally:
        server.shutdown()
        server.server_close()


# --- the Consul KV trigger -----------------------------------------------------------------------

def consul_env(consul: Any) -> dict[str, str]:
    return {"CONSUL_HTTP_ADDR": consul.addr, **({"CONSUL_HTTP_TOKEN": consul.token} if consul.token else {})}


def test_sync_kv_writes_only_changed_keys_in_one_transaction(repo: ConfigRepo, consul: Any) -> None:
    prefix = f"wharf-test/{repo.group}"
    env = {**repo.env, **consul_env(consul)}
    kv = consul.client().kv
    repo.write("api", app_yaml())
    repo.write("web", app_yaml(after=["api"]))
    first = json.loads(wharf("apps", "sync-kv", str(repo.work), "--prefix", prefix, "--commit", "c1", "--json",
                             env=env).stdout)
    assert first["changed"] == [f"{prefix}/.wharf/commit", f"{prefix}/{repo.group}/api", f"{prefix}/{repo.group}/web"]
    _, web_before = kv.get(f"{prefix}/{repo.group}/web")
    assert json.loads(web_before["Value"])["dependencies"] == [repo.app_id("api")]

    again = json.loads(wharf("apps", "sync-kv", str(repo.work), "--prefix", prefix, "--commit", "c1", "--json",
                             env=env).stdout)
    assert again["changed"] == []

    repo.write("api", app_yaml(instances=2))
    (repo.work / "apps" / repo.group / "web.yaml").unlink()
    third = json.loads(wharf("apps", "sync-kv", str(repo.work), "--prefix", prefix, "--json", env=env).stdout)
    assert third["changed"] == [f"{prefix}/{repo.group}/api", f"{prefix}/{repo.group}/web"]
    assert kv.get(f"{prefix}/{repo.group}/web")[1] is None
    assert kv.get(f"{prefix}/.wharf/commit")[1]["Value"] == b"c1"  # no --commit: the last one stays

    down = wharf("apps", "sync-kv", str(repo.work), "--prefix", prefix,
                 env={**env, "CONSUL_HTTP_ADDR": f"127.0.0.1:{claim_ports({'--x': None})['--x']}"})
    assert down.returncode == 1 and "Error: cannot reach Consul at http://127.0.0.1:" in down.stderr
    kv.delete(prefix, recurse=True)


def metric(port: int, name: str) -> float:
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_watch_kv_deploys_a_change_once_and_the_last_of_ten_quick_writes(
        repo: ConfigRepo, marathon: Endpoint, consul: Any) -> None:
    import os
    import signal
    import sys

    prefix = f"wharf-test/{repo.group}"
    env = {**repo.env, **consul_env(consul)}
    kv = consul.client().kv
    app_id, key = repo.app_id("api"), f"{prefix}/{repo.group}/api"
    repo.write("api", app_yaml())
    assert wharf("apps", "sync-kv", str(repo.work), "--prefix", prefix, env=env).returncode == 0
    port = claim_ports({"--metrics": None})["--metrics"]
    full_env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_", "CONSUL_"))}, **env}
    watcher = subprocess.Popen([sys.executable, "-m", "wharf", "apps", "watch-kv", "--prefix", prefix, "--wait", "1",
                                "--timeout", "60", "--metrics-port", str(port)], env=full_env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def settled(**env_wanted: str) -> dict[str, Any] | None:
            app = live_apps(marathon, repo.group).get(app_id)
            if app and not app["deployments"] and app["tasksHealthy"] == app["instances"] \
                    and all(app["env"].get(k) == v for k, v in env_wanted.items()):
                return app
            return None

        wait_for(settled, 60, "the watcher's first deploy")
        versions = len(api(marathon, "GET", f"/v2/apps{app_id}/versions")["versions"])

        def cycles_pass(n: int) -> None:
            start = metric(port, 'wharf_daemon_cycles_total{daemon="apps-watch-kv",outcome="ok"}')
            wait_for(lambda: metric(port, 'wharf_daemon_cycles_total{daemon="apps-watch-kv",outcome="ok"}')
                     >= start + n, 30, f"{n} more watch cycles")

        repo.write("api", app_yaml(extra="env: {STEP: one}\n"))
        assert wharf("apps", "sync-kv", str(repo.work), "--prefix", prefix, env=env).returncode == 0
        wait_for(lambda: settled(STEP="one"), 60, "the change to be deployed")
        cycles_pass(3)  # wake-ups at an index already handled, timed-out blocking queries
        assert len(api(marathon, "GET", f"/v2/apps{app_id}/versions")["versions"]) == versions + 1

        _, entry = kv.get(key)
        definition = json.loads(entry["Value"])
        for i in range(10):
            definition["env"] = {"STEP": "one", "COUNT": str(i)}
            assert kv.put(key, json.dumps(definition))
        final = wait_for(lambda: settled(COUNT="9"), 90, "the last of ten writes to be deployed")
        cycles_pass(3)
        assert settled(COUNT="9") and final["env"] == {"STEP": "one", "COUNT": "9"}
        later = len(api(marathon, "GET", f"/v2/apps{app_id}/versions")["versions"])
        assert versions + 2 <= later <= versions + 11
        assert final["labels"]["wharf.commit"].startswith("kv@")
    finally:
        watcher.send_signal(signal.SIGTERM)
        out, _ = watcher.communicate(timeout=30)
        kv.delete(prefix, recurse=True)
    assert watcher.returncode == 0, out
    assert "stopped" in out
