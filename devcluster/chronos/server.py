"""The Chronos stand-in's HTTP API, `/v1/scheduler/*` (and Chronos 2's `/scheduler/*`), and its wiring.

Endpoints and status codes follow Chronos 3's resources (mesos/chronos `scheduler/api/*.scala`):

| call | answer |
|---|---|
| `POST`/`PUT /iso8601`, `POST`/`PUT /dependency` | 204; a job of that name is replaced |
| `GET /jobs` | the jobs as Chronos renders them (`jobs.to_json`) |
| `PUT /job/<name>` | 204: a run starts now (manual start; `?arguments=` is not supported) |
| `DELETE /job/<name>` | 204 (refused while a job depends on it alone, see `jobs.without_job`) |
| `PUT`/`POST /job/success/<name>` | 200 `marked job <name> as successful: true`; dependents run |
| `DELETE /task/kill/<name>` | 204: queued runs dropped, running tasks killed |
| `GET /graph/csv` | `node,...` and `link,...` lines, text/plain |

Errors: a body that is not JSON, a job that does not validate or a start more than a year in the
past is 400 with the reason; so is an unknown job name, as in Chronos (it answers 400 "Job 'x' not
found", not 404). A manual start of a disabled job is 400 too (disabled jobs never run here); one
of a job that is not `concurrent` and already queued or running is accepted and dropped, as Chronos
drops it. Chronos 3 has no `GET /job/<name>`; neither has the stand-in.
Chronos itself accepts a dependent job whose parents are not all registered and then silently drops
it; the stand-in refuses it with 400 naming the missing parents.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from devcluster.chronos import jobs as J
from devcluster.chronos.runner import ChronosFramework, Clock, utc_now
from devcluster.chronos.state import ChronosState, RunnerError
from devcluster.httpapi import HTTPError, Request, Response, Router, RunningServer, json_response, serve, text_response
from wharf.contracts import chronos_schedule as sched

log = logging.getLogger("wharf.devcluster.chronos")

PREFIX = r"(?:/v1)?/scheduler"
NAME = r"(?P<name>[^/]+)"


class ChronosStandin:
    """Chronos on 127.0.0.1: the HTTP API plus, with `master`, a framework that runs the jobs on Mesos.

    Without a master the jobs are kept and listed but never run. `clock` is injectable (tests).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, master: str | None = None,
                 clock: Clock = utc_now, framework_name: str = "chronos") -> None:
        self.host, self.port = host, port
        self.clock = clock
        self.state = ChronosState()
        self.lock = threading.Lock()
        self.framework = (ChronosFramework(self.state, self.lock, master, clock=clock, name=framework_name)
                          if master else None)
        self._server: RunningServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ChronosStandin:
        self._server = serve(self.router(), self.host, self.port, logger=logging.getLogger(log.name + ".http"))
        self.port = self._server.port
        if self.framework is not None:
            self.framework.start()
        log.info("Chronos stand-in on %s (master %s)", self.url, self.framework.master if self.framework else "none")
        return self

    def stop(self) -> None:
        """Stop the framework (Mesos kills its tasks), then the HTTP server."""
        if self.framework is not None:
            self.framework.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> ChronosStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- routes ------------------------------------------------------------------------------

    def router(self) -> Router:
        router = Router()
        for method in ("POST", "PUT"):
            router.add(method, PREFIX + "/iso8601", lambda r: self.put_job(r, "iso8601"))
            router.add(method, PREFIX + "/dependency", lambda r: self.put_job(r, "dependency"))
            router.add(method, PREFIX + "/job/success/" + NAME, self.mark_success)
        router.add("GET", PREFIX + "/jobs", self.list_jobs)
        router.add("PUT", PREFIX + "/job/" + NAME, self.trigger)
        router.add("DELETE", PREFIX + "/job/" + NAME, self.delete)
        router.add("DELETE", PREFIX + "/task/kill/" + NAME, self.kill)
        router.add("GET", PREFIX + "/graph/csv", self.graph_csv)
        return router

    def _locked(self, action: Callable[[], Any]) -> Any:
        """Run `action` under the scheduler's lock, answering a refused request with 400."""
        try:
            with self.lock:
                return action()
        except (RunnerError, J.JobError, sched.ScheduleError) as error:
            raise HTTPError(400, str(error)) from None

    def _poke(self) -> None:
        if self.framework is not None:
            self.framework.poke()

    def put_job(self, request: Request, kind: str) -> Response:
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as error:
            raise HTTPError(400, f"the body is not valid JSON: {error}") from None
        now = self.clock()

        def store() -> None:
            job = J.parse_job(data, kind, now=now)
            if kind == "dependency":
                J.check_dependencies(self.state.jobs, job)
            elif job.name not in self.state.jobs:  # Chronos checks the start of new jobs only
                sched.check_start(J.job_schedule(job, now), now)
            self.state.put(job)

        self._locked(store)
        self._poke()
        return Response(204)

    def list_jobs(self, request: Request) -> Response:
        with self.lock:
            jobs = [J.to_json(job) for _, job in sorted(self.state.jobs.items())]
        return json_response(jobs)

    def trigger(self, request: Request) -> Response:
        name = request.params["name"]
        if request.arg("arguments"):
            raise HTTPError(400, "manual starts with ?arguments= are not supported by this stand-in")
        self._locked(lambda: self.state.trigger(name, self.clock()))
        self._poke()
        return Response(204)

    def delete(self, request: Request) -> Response:
        task_ids = self._locked(lambda: self.state.delete(request.params["name"]))
        if self.framework is not None:
            self.framework.kill(task_ids)
        return Response(204)

    def kill(self, request: Request) -> Response:
        task_ids = self._locked(lambda: self.state.kill(request.params["name"]))
        if self.framework is not None:
            self.framework.kill(task_ids)
        return Response(204)

    def mark_success(self, request: Request) -> Response:
        name = request.params["name"]
        self._locked(lambda: self.state.success(name, self.clock()))
        self._poke()
        return text_response(f"marked job {name} as successful: true")

    def graph_csv(self, request: Request) -> Response:
        with self.lock:
            states, running = self.state.graph_states()
            body = J.graph_csv(self.state.jobs, states, running)
        return text_response(body)
