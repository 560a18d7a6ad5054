"""The framework's small HTTP API (JSON, loopback): served by every instance, answered by the leader.

    GET  /v1/leader            {"leader": URL or null, "self": URL, "leading": bool}
    GET  /v1/tasks             {"tasks": [record, ...]}          (?state=RUNNING to filter)
    POST /v1/tasks             a submission -> 201 {"group": G, "ids": [...]}, 400 {"error": why}
                               (stored whole, in one ZooKeeper transaction, or not at all)
    GET  /v1/tasks/<id>        one record, with its history
    POST /v1/tasks/<id>/kill   202 {"id": ..., "state": ...}

A follower answers 307 with the leader's URL (clients re-send there); 503 while no leader is known.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from framework.offers import fits_some_agent
from framework.store import TooLarge
from framework.tasks import InvalidTask, parse_submission
from wharf.log import fields

if TYPE_CHECKING:
    from framework.leader import FrameworkDaemon

log = logging.getLogger("wharf.framework.api")
MAX_BODY = 1024 * 1024


class ApiServer:
    """A threaded HTTP server on 127.0.0.1 in front of one `FrameworkDaemon`."""

    def __init__(self, daemon: FrameworkDaemon, host: str = "127.0.0.1", port: int = 0) -> None:
        self.daemon, self.host, self.port = daemon, host, port
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        if self._server is not None:
            return
        daemon = self.daemon

        class Handler(_Handler):
            owner = daemon

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, name="framework api", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Handler(BaseHTTPRequestHandler):
    owner: FrameworkDaemon
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self._route("POST")

    def _route(self, method: str) -> None:
        try:
            status, body = self._answer(method)
        except Exception as exc:  # noqa: BLE001 - a request must get an answer
            log.warning("API request failed", extra=fields(path=self.path, error=f"{type(exc).__name__}: {exc}"))
            status, body = 503, {"error": f"{type(exc).__name__}: {exc}"}
        if isinstance(body, str):  # a redirect
            self.send_response(307)
            self.send_header("Location", body + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise InvalidTask("the body is larger than 1 MB")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            return json.loads(raw)
        except ValueError:
            raise InvalidTask("the body is not JSON") from None

    def _answer(self, method: str) -> tuple[int, Any]:
        daemon = self.owner
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        if method == "GET" and path == "/v1/leader":
            return 200, {"leader": daemon.leader_url(), "self": daemon.api.url, "leading": daemon.leading}
        if not daemon.leading:
            if method == "POST":
                self._body()  # read it, so the connection stays usable
            leader = daemon.leader_url()
            if leader and leader != daemon.api.url:
                return 307, leader
            return 503, {"error": "no leader is elected yet"}
        if method == "GET" or path.endswith("/kill"):
            daemon.recall()  # tasks that finished before this leader took over are listed as before
        if path == "/v1/tasks" and method == "GET":
            wanted = set(parse_qs(parts.query).get("state", []))
            tasks = daemon.snapshot(lambda core: [r.to_json() for r in core.tasks.values()
                                                  if not wanted or r.state in wanted])
            return 200, {"tasks": tasks}
        if path == "/v1/tasks" and method == "POST":
            return self._submit()
        found = re.fullmatch(r"/v1/tasks/([^/]+)(/kill)?", path)
        if found:
            task_id, kill = found.group(1), found.group(2)
            if method == "POST" and kill:
                self._body()
                try:
                    daemon.kill(task_id)
                except KeyError:
                    return 404, {"error": f"no task {task_id}"}
            elif method != "GET" or kill:
                return 405, {"error": f"{method} {path} is not supported"}
            record = daemon.snapshot(lambda core: core.tasks.get(task_id))
            if record is None:
                return 404, {"error": f"no task {task_id}"}
            return (202 if kill else 200), record.to_json()
        return 404, {"error": f"no route {method} {path}"}

    def _submit(self) -> tuple[int, Any]:
        daemon = self.owner
        try:
            submission = parse_submission(self._body())
        except InvalidTask as exc:
            return 400, {"error": str(exc)}
        agents = daemon.agents()
        if not fits_some_agent(submission, agents):
            biggest = max(agents, key=lambda a: (a["cpus"], a["mem"]), default={})
            return 400, {"error": f"no agent can hold cpus={submission.cpus:g} mem={submission.mem:g} "
                                  f"disk={submission.disk:g} ports={len(submission.ports)}; the largest of "
                                  f"{len(agents)} agents has cpus={biggest.get('cpus', 0):g} "
                                  f"mem={biggest.get('mem', 0):g} disk={biggest.get('disk', 0):g} "
                                  f"ports={biggest.get('ports', 0):g}"}
        group = uuid.uuid4().hex[:8]
        specs = submission.tasks(group)
        try:
            daemon.submit(specs)
        except TooLarge as exc:
            return 400, {"error": str(exc)}
        return 201, {"group": group, "ids": [s.id for s in specs]}
