"""The Marathon REST API (`/v2/apps`, `/v2/tasks`, `/v2/deployments`, `/v2/events`, `/v2/info`, `/ping`).

Tasks are killed as Marathon kills them: `POST /v2/tasks/delete` (`{"ids": [...]}`),
`DELETE /v2/apps/{id}/tasks[?host=]` and `DELETE /v2/apps/{id}/tasks/{taskId}`, each with `scale`
(lower the app's instances by the number killed, in one deployment), `wipe` (forget the tasks at
once) and `force`. Beside Marathon's API, `GET /_standin/kills[?appId=]` lists every kill the
stand-in made: `[{"taskId", "appId", "at", "reason"}]`, oldest first, `reason` one of Marathon's
KillReason names (`KillingTasksViaApi`, `DeploymentScaling`, `Upgrading`, `DeletingApp`,
`FailedHealthChecks`, `Orphaned`, `Unknown`).

Handlers validate with ``wharf.contracts.marathon_app``, stamp versions and service ports with
``apps``, and hand the change to :class:`~devcluster.marathon.scheduler.Marathon`, which runs the
deployment. Errors use
Marathon's bodies: 400 `Invalid JSON`, 422 `Object is not valid` with details, 404 and 409 with
a `message` (a locked app also lists the `deployments` holding it). Every answer that started a
deployment carries its id in `Marathon-Deployment-Id`, as Marathon's do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from devcluster.httpapi import Request, Response, Router, json_response, text_response
from devcluster.marathon import apps as appstore
from devcluster.marathon.answers import (
    DEPLOYMENT_HEADER,
    ApiError,
    deployment_result,
    flag,
    json_body,
    kill_mode,
    locked,
    path_app_id,
    refusal,
    task_ids,
)
from devcluster.marathon.apps import Instance
from devcluster.marathon.deploy import AppLocked
from devcluster.marathon.launch import instance_of
from devcluster.marathon.plan import diff_apps, format_version
from devcluster.marathon.scheduler import Marathon
from wharf.contracts.marathon_app import InvalidAppId, error_body, normalize_app, parse_app_id, validate_app

MARATHON_VERSION = "1.10.17"
FEATURES = ["task_killing"]  # `--enable_features`: TASK_KILLING reported while a task is being killed
STAGED = ("TASK_STAGING", "TASK_STARTING")


def _labels_match(labels: Mapping[str, str], selector: str) -> bool:
    """A small subset of Marathon's label selectors: `key`, `key==value`, `key!=value`, comma-joined."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if key not in labels or labels[key] == value:
                return False
        elif "==" in term:
            key, value = (s.strip() for s in term.split("==", 1))
            if labels.get(key) != value:
                return False
        elif term not in labels:
            return False
    return True


class MarathonApi:
    """The HTTP layer over one :class:`Marathon`; ``address()`` gives this server's host:port."""

    def __init__(self, marathon: Marathon, address: Callable[[], str]) -> None:
        self.marathon = marathon
        self.address = address

    def router(self) -> Router:
        r = Router()
        routes: list[tuple[str, str, Callable[[Request], Response]]] = [
            ("GET", r"/ping", lambda _: text_response("pong\n")),
            ("GET", r"/v2/info", self.info),
            ("GET", r"/v2/leader", lambda _: json_response({"leader": self.address()})),
            ("GET", r"/v2/apps/?", self.list_apps),
            ("POST", r"/v2/apps/?", self.create_app),
            ("PUT", r"/v2/apps/?", self.put_apps),
            ("GET", r"/v2/apps/(?P<id>.+)/tasks/?", self.app_tasks),
            ("POST", r"/v2/apps/(?P<id>.+)/restart/?", self.restart_app),
            ("GET", r"/v2/apps/(?P<id>.+)/versions/(?P<version>[^/]+)", self.app_version),
            ("GET", r"/v2/apps/(?P<id>.+)/versions/?", self.app_versions),
            ("DELETE", r"/v2/apps/(?P<id>.+)/tasks/(?P<task>[^/]+)", self.kill_task),
            ("DELETE", r"/v2/apps/(?P<id>.+)/tasks/?", self.kill_app_tasks),
            ("GET", r"/v2/apps/(?P<id>.+)", self.get_app),
            ("PUT", r"/v2/apps/(?P<id>.+)", self.put_app),
            ("PATCH", r"/v2/apps/(?P<id>.+)", self.put_app),
            ("DELETE", r"/v2/apps/(?P<id>.+)", self.delete_app),
            ("GET", r"/v2/tasks/?", self.list_tasks),
            ("POST", r"/v2/tasks/delete/?", self.delete_tasks),
            ("GET", r"/v2/deployments/?", self.list_deployments),
            ("DELETE", r"/v2/deployments/(?P<id>[^/]+)", self.delete_deployment),
            ("GET", r"/v2/events/?", self.events),
            ("GET", r"/_standin/kills/?", self.kill_log),
        ]
        for method, pattern, handler in routes:
            r.add(method, pattern, self._guard(handler))
        return r

    @staticmethod
    def _guard(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def run(request: Request) -> Response:
            try:
                return handler(request)
            except ApiError as err:
                return json_response(err.body, err.status)

        return run

    # --- views -------------------------------------------------------------------------------

    def _app_json(self, app: dict[str, Any], embed: set[str]) -> dict[str, Any]:
        m = self.marathon
        tasks = m.tasks_of(app["id"])
        checks = len(app.get("healthChecks") or [])
        out = dict(app)
        out.update(tasksStaged=sum(1 for t in tasks if t.state in STAGED),
                   tasksRunning=sum(1 for t in tasks if t.running),
                   tasksHealthy=sum(1 for t in tasks if checks and t.healthy(checks)),
                   tasksUnhealthy=sum(1 for t in tasks if t.unhealthy()),
                   deployments=[{"id": d} for d in m.deployments_of(app["id"])])
        if embed & {"tasks", "failures"}:
            out["tasks"] = [t.to_json(format_version) for t in tasks]
        if embed & {"lastTaskFailure", "failures"} and app["id"] in m.last_failure:
            out["lastTaskFailure"] = m.last_failure[app["id"]]
        return out

    @staticmethod
    def _embeds(request: Request) -> set[str]:
        return {e.split(".", 1)[-1] for e in request.query.get("embed", [])}

    def _stored(self, app_id: str) -> dict[str, Any]:
        with self.marathon.lock:
            app = self.marathon.apps.get(app_id)
        if app is None:
            raise refusal(404, f"App '{app_id}' does not exist")
        return app

    def info(self, _: Request) -> Response:
        m = self.marathon
        return json_response({
            "name": "marathon", "version": MARATHON_VERSION, "buildref": "wharf-devcluster", "elected": True,
            "leader": self.address(), "frameworkId": m.framework_id,
            "marathon_config": {"master": m.master, "framework_name": m.name, "failover_timeout": m.failover_timeout,
                                "features": FEATURES, "ha": False, "hostname": self.address().split(":")[0],
                                "mesos_role": "*", "mesos_user": "root"},
            "http_config": {"http_port": int(self.address().rsplit(":", 1)[1])},
            "zookeeper_config": {}, "event_subscriber": None})

    def list_apps(self, request: Request) -> Response:
        embed = self._embeds(request)
        with self.marathon.lock:
            stored = sorted(self.marathon.apps.values(), key=lambda a: a["id"])
        wanted_id, cmd, label = request.arg("id"), request.arg("cmd"), request.arg("label")
        chosen = [a for a in stored if (not wanted_id or wanted_id in a["id"])
                  and (not cmd or cmd in (a.get("cmd") or "")) and (not label or _labels_match(a["labels"], label))]
        return json_response({"apps": [self._app_json(a, embed) for a in chosen]})

    def get_app(self, request: Request) -> Response:
        app_id = path_app_id(request)
        embed = self._embeds(request) | {"tasks", "lastTaskFailure"}  # a single app always shows both
        return json_response({"app": self._app_json(self._stored(app_id), embed)})

    def app_tasks(self, request: Request) -> Response:
        app_id = path_app_id(request)
        self._stored(app_id)
        return json_response({"tasks": [t.to_json(format_version) for t in self.marathon.tasks_of(app_id)]})

    def list_tasks(self, request: Request) -> Response:
        status = request.arg("status")
        with self.marathon.lock:
            tasks = sorted(self.marathon.instances.values(), key=lambda t: (t.app_id, t.staged_at))
        if status == "running":
            tasks = [t for t in tasks if t.running]
        elif status == "staging":
            tasks = [t for t in tasks if t.state in STAGED]
        return json_response({"tasks": [t.to_json(format_version) for t in tasks]})

    def app_versions(self, request: Request) -> Response:
        app_id = path_app_id(request)
        with self.marathon.lock:
            versions = self.marathon.versions.get(app_id)
        if not versions:
            raise refusal(404, f"App '{app_id}' does not exist")
        return json_response({"versions": sorted(versions, reverse=True)})

    def app_version(self, request: Request) -> Response:
        app_id = path_app_id(request)
        with self.marathon.lock:
            app = self.marathon.versions.get(app_id, {}).get(request.params["version"])
        if app is None:
            raise refusal(404, f"App '{app_id}' does not exist in version {request.params['version']}")
        return json_response(app)

    def list_deployments(self, _: Request) -> Response:
        with self.marathon.lock:
            plans = [d.json() for d in self.marathon.deployments.values()]
        return json_response(plans)

    def events(self, request: Request) -> Response:
        types = [t for t in request.query.get("event_type", []) if t]
        stream = self.marathon.events.stream("127.0.0.1", types)
        return Response(200, content_type="text/event-stream", headers=(("Cache-Control", "no-cache"),),
                        stream=stream)

    # --- changes -----------------------------------------------------------------------------

    def _prepare(self, given: Any, previous: dict[str, Any] | None, version: str,
                 restart: bool = False, also_taken: Iterable[int] = ()) -> dict[str, Any]:
        """Validate ``given``, normalize it, give it service ports and a version.

        ``also_taken``: service ports of the other apps of the same request, not stored yet.
        """
        violations = validate_app(given)
        if violations:
            raise ApiError(422, error_body(violations))
        app = normalize_app(given)
        with self.marathon.lock:
            taken = [p for a in self.marathon.apps.values() if a["id"] != app["id"]
                     for p in appstore.service_ports(a)] + list(also_taken)
        appstore.assign_service_ports(app, taken, previous)
        changed = restart or previous is None or bool(diff_apps({"a": previous}, {"a": app}).restarted)
        appstore.stamp(app, version, previous, changed)
        return app

    def _deploy(self, target: dict[str, dict[str, Any] | None], version: str, force: bool,
                force_restart: tuple[str, ...] = ()) -> str:
        try:
            dep_id = self.marathon.deploy(target, version, force=force, force_restart=force_restart)
        except AppLocked as err:
            raise locked(err.deployments) from None
        return dep_id or self.marathon.new_version().replace(":", "")  # an id for a change with no steps

    def create_app(self, request: Request) -> Response:
        given = json_body(request)
        if isinstance(given, dict) and isinstance(given.get("id"), str):
            try:
                existing = parse_app_id(given["id"])
            except InvalidAppId:
                existing = None
            with self.marathon.lock:
                if existing in self.marathon.apps:
                    raise refusal(409, f"An app with id [{existing}] already exists.")
        app = self._prepare(given, None, self.marathon.new_version())
        dep_id = self._deploy({app["id"]: app}, app["version"], force=False)
        self.marathon.events.publish("api_post_event", clientIp="127.0.0.1", uri=f"/v2/apps{app['id']}",
                                     appDefinition=app)
        body = self._app_json(app, {"tasks"})
        body["deployments"] = [{"id": dep_id}]
        return json_response(body, 201, {"Location": f"http://{self.address()}/v2/apps{app['id']}",
                                         DEPLOYMENT_HEADER: dep_id})

    def put_app(self, request: Request) -> Response:
        app_id = path_app_id(request)
        given = json_body(request)
        if not isinstance(given, dict):
            raise ApiError(422, error_body(validate_app(given)))
        with self.marathon.lock:
            previous = self.marathon.apps.get(app_id)
            versions = dict(self.marathon.versions.get(app_id, {}))
        if request.method == "PATCH" and previous is None:
            raise refusal(404, f"App '{app_id}' does not exist")
        version = self.marathon.new_version()
        if set(given) == {"version"} and previous is not None:
            if given["version"] not in versions:
                raise refusal(404, f"App '{app_id}' does not exist in version {given['version']}")
            merged = appstore.strip_read_only(versions[given["version"]])
        elif previous is not None:
            merged = appstore.merge_update(previous, given)
        else:
            merged = appstore.strip_read_only(given)
        merged["id"] = app_id
        app = self._prepare(merged, previous, version)
        dep_id = self._deploy({app_id: app}, version, force=flag(request, "force"))
        self.marathon.events.publish("api_post_event", clientIp="127.0.0.1", uri=f"/v2/apps{app_id}",
                                     appDefinition=app)
        return deployment_result(dep_id, version, 200 if previous else 201)

    def put_apps(self, request: Request) -> Response:
        """Create or update several apps in one deployment (so their dependencies order it)."""
        given = json_body(request)
        if not isinstance(given, list) or not all(isinstance(a, dict) for a in given):
            raise ApiError(422, {"message": "Object is not valid",
                                 "details": [{"path": "/", "errors": ["error.expected.jsarray of apps"]}]})
        version = self.marathon.new_version()
        target: dict[str, dict[str, Any] | None] = {}
        for item in given:
            try:
                app_id = parse_app_id(item.get("id", ""))
            except InvalidAppId:
                raise ApiError(422, error_body(validate_app(item))) from None
            with self.marathon.lock:
                previous = self.marathon.apps.get(app_id)
            merged = appstore.merge_update(previous, item) if previous else appstore.strip_read_only(item)
            merged["id"] = app_id
            also_taken = [p for other in target.values() if other for p in appstore.service_ports(other)]
            target[app_id] = self._prepare(merged, previous, version, also_taken=also_taken)
        dep_id = self._deploy(target, version, force=flag(request, "force"))
        return deployment_result(dep_id, version)

    def delete_app(self, request: Request) -> Response:
        app_id = path_app_id(request)
        self._stored(app_id)
        version = self.marathon.new_version()
        dep_id = self._deploy({app_id: None}, version, force=flag(request, "force"))
        return deployment_result(dep_id, version)

    def restart_app(self, request: Request) -> Response:
        app_id = path_app_id(request)
        previous = self._stored(app_id)
        version = self.marathon.new_version()
        app = self._prepare(appstore.strip_read_only(previous), previous, version, restart=True)
        dep_id = self._deploy({app_id: app}, version, force=flag(request, "force"), force_restart=(app_id,))
        return deployment_result(dep_id, version)

    # --- kills -------------------------------------------------------------------------------

    def _kill_and_scale(self, tasks: list[Instance], force: bool) -> Response:
        try:
            dep_id, version = self.marathon.kill_and_scale([t.task_id for t in tasks], force=force)
        except AppLocked as err:
            raise locked(err.deployments) from None
        return deployment_result(dep_id or version.replace(":", ""), version)

    def _kill(self, tasks: list[Instance], wipe: bool) -> list[dict[str, Any]]:
        """Kill these tasks; returns them as they were when the kill was asked for."""
        shown = [t.to_json(format_version) for t in tasks]
        self.marathon.kill_tasks([t.task_id for t in tasks], wipe=wipe)
        return shown

    def _killed(self, request: Request, tasks: list[Instance], scale: bool, wipe: bool) -> Response:
        """A kill's answer: a deployment with `scale`, else the tasks as they were."""
        if scale:
            return self._kill_and_scale(tasks, flag(request, "force"))
        return json_response({"tasks": self._kill(tasks, wipe)})

    def delete_tasks(self, request: Request) -> Response:
        """`POST /v2/tasks/delete`: ids of no live task, or of a task whose app is gone, are passed over."""
        scale, wipe = kill_mode(request)
        ids = set(task_ids(json_body(request)))
        with self.marathon.lock:
            tasks = [t for t in self.marathon.instances.values() if t.task_id in ids and t.app_id in self.marathon.apps]
        tasks.sort(key=lambda t: (t.app_id, t.staged_at))
        return self._killed(request, tasks, scale, wipe)

    def kill_app_tasks(self, request: Request) -> Response:
        """`DELETE /v2/apps/{id}/tasks`: every task of the app, or those on agent `host` (`*`: any)."""
        app_id = path_app_id(request)
        scale, wipe = kill_mode(request)
        self._stored(app_id)
        host = request.arg("host")
        tasks = [t for t in self.marathon.tasks_of(app_id) if host is None or host in ("*", t.host)]
        return self._killed(request, tasks, scale, wipe)

    def kill_task(self, request: Request) -> Response:
        """`DELETE /v2/apps/{id}/tasks/{taskId}`: the task of that instance; with `scale` a deployment even if none."""
        app_id = path_app_id(request)
        scale, wipe = kill_mode(request)
        self._stored(app_id)
        instance = instance_of(request.params["task"])
        tasks = [t for t in self.marathon.tasks_of(app_id) if t.instance_id == instance]
        if scale:
            return self._kill_and_scale(tasks, flag(request, "force"))
        if not tasks:
            raise refusal(404, f"Task '{request.params['task']}' does not exist")
        return json_response({"task": self._kill(tasks, wipe)[0]})

    def kill_log(self, request: Request) -> Response:
        """`GET /_standin/kills[?appId=/x]`: what the stand-in killed, oldest first (not part of Marathon's API)."""
        app_id = request.arg("appId")
        return json_response(self.marathon.kills("/" + app_id.strip("/") if app_id else None))

    def delete_deployment(self, request: Request) -> Response:
        dep_id = request.params["id"]
        force = flag(request, "force")
        result = self.marathon.cancel(dep_id, rollback=not force)
        if result is None:
            raise refusal(404, f"DeploymentPlan {dep_id} does not exist")
        if force:
            return Response(202)
        new_id, version = result
        return deployment_result(new_id or version, version)
