"""The HTTP face of the Mesos stand-in: the v1 scheduler API, the read-only operator endpoints, and
the operator's ``/master/teardown``.

``POST /api/v1/scheduler`` answers SUBSCRIBE with a chunked RecordIO stream and every other
call with ``202 Accepted``, checking content type, body and ``Mesos-Stream-Id`` as Mesos does.
``POST /master/teardown`` with the form body ``frameworkId=ID`` removes a framework as Mesos does:
its tasks are killed, its stream closed, and a later SUBSCRIBE with its id is refused.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from devcluster.httpapi import HTTPError, Request, Response, Router, json_response, text_response
from devcluster.mesos import views
from devcluster.mesos.master import Master
from devcluster.mesos.model import VERSION, Effects, Framework, FrameworkRemoved
from devcluster.mesos.protocol import BadCall, Call, event, parse_call, record

if TYPE_CHECKING:
    from devcluster.mesos.standin import MesosStandin

log = logging.getLogger("wharf.devcluster.mesos")

Handler = Callable[[Master, Framework, dict[str, Any], float], Effects]
NOT_IMPLEMENTED = {"SHUTDOWN", "MESSAGE", "UPDATE_FRAMEWORK", "ACKNOWLEDGE_OPERATION_STATUS", "RECONCILE_OPERATIONS"}
NO_OPS = {"ACCEPT_INVERSE_OFFERS", "DECLINE_INVERSE_OFFERS", "REQUEST"}  # nothing to act on: no inverse offers
HANDLERS: dict[str, Handler] = {
    "ACCEPT": lambda m, f, b, now: m.accept(f, b, now),
    "DECLINE": lambda m, f, b, now: m.decline(f, b, now),
    "REVIVE": lambda m, f, b, now: m.revive(f),
    "SUPPRESS": lambda m, f, b, now: m.suppress(f),
    "KILL": lambda m, f, b, now: m.kill(f, b, now),
    "ACKNOWLEDGE": lambda m, f, b, now: m.acknowledge(f, b, now),
    "RECONCILE": lambda m, f, b, now: m.reconcile(f, b, now),
    "TEARDOWN": lambda m, f, b, now: m.teardown(f, now),
}


def _content_type(request: Request) -> str:
    return (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()


def build_router(standin: MesosStandin) -> Router:
    """The stand-in's routes: the v1 scheduler API, then the operator endpoints."""
    router = Router()
    router.add("POST", "/api/v1/scheduler", _scheduler_endpoint(standin))
    for method, pattern, handler in _operator_endpoints(standin):
        router.add(method, pattern, handler)
    return router


def _scheduler_endpoint(standin: MesosStandin) -> Callable[[Request], Response]:
    """``POST /api/v1/scheduler``: SUBSCRIBE answers with the event stream, every other call 202."""

    def scheduler(request: Request) -> Response:
        response, what = answer(request)
        log.debug("scheduler call %s -> %d", what, response.status)
        return response

    def answer(request: Request) -> tuple[Response, str]:
        kind = _content_type(request)
        if kind == "application/x-protobuf":
            return text_response("This stand-in speaks JSON only: use 'Content-Type: application/json'", 415), "?"
        if kind != "application/json":
            return text_response("Expecting 'Content-Type' of application/json or application/x-protobuf", 415), "?"
        what = "?"
        try:
            call = parse_call(request.body)
            what = f"{call.type} framework={call.framework_id}"
            if call.type == "SUBSCRIBE":
                return subscribe(call, request.headers.get("Accept") or ""), what
            if call.type in NOT_IMPLEMENTED:
                raise BadCall(f"Call type {call.type} is not implemented by the wharf dev-cluster stand-in", 501)
            standin.call(call, request.headers.get("Mesos-Stream-Id"),
                         None if call.type in NO_OPS else HANDLERS[call.type])
        except BadCall as err:
            return text_response(err.message, err.status), f"{what} ({err.message})"
        return Response(202, content_type="text/plain"), what

    def subscribe(call: Call, accept: str) -> Response:
        if "protobuf" in accept:
            raise BadCall("This stand-in streams JSON only: use 'Accept: application/json'", 406)
        try:
            stream = standin.subscribe(call)
        except FrameworkRemoved as err:  # Mesos answers on a new stream with one ERROR event, then closes it
            return Response(200, headers=(("Mesos-Stream-Id", str(uuid.uuid4())),),
                            stream=iter([record(event("ERROR", {"message": str(err)}))]))
        return Response(200, headers=(("Mesos-Stream-Id", stream.id),), stream=standin.events(stream))

    return scheduler


def _operator_endpoints(standin: MesosStandin) -> list[tuple[str, str, Callable[[Request], Response]]]:
    """(method, path pattern, handler) of the operator's endpoints, in routing order."""

    def teardown(request: Request) -> Response:
        """The operator endpoint: the same removal as a TEARDOWN call, by id; Mesos's answers."""
        values = parse_qs(request.body.decode("utf-8", "replace")).get("frameworkId")
        if not values:
            return text_response("Missing 'frameworkId' query parameter in the request body", 400)
        try:
            standin.teardown(values[0])
        except BadCall as err:
            return text_response(err.message, err.status)
        return Response(200, content_type="text/plain")

    def state(request: Request) -> Response:
        return json_response(standin.view(lambda m: views.state_json(m, standin.flags())))

    def frameworks(request: Request) -> Response:
        full = standin.view(lambda m: views.state_json(m, {}))
        return json_response({k: full[k] for k in ("frameworks", "completed_frameworks", "unregistered_frameworks")})

    def slaves(request: Request) -> Response:
        return json_response({"slaves": standin.view(lambda m: views.state_json(m, {}))["slaves"]})

    def metrics(request: Request) -> Response:
        return json_response(standin.view(lambda m: views.metrics_json(m, time.time())))

    def redirect(request: Request) -> Response:
        return Response(307, content_type="text/plain",
                        headers=(("Location", f"//{standin.host}:{standin.port}"),))

    def version(request: Request) -> Response:
        return json_response({"version": VERSION, "build_user": "wharf", "build_date": "", "build_time": 0})

    return [
        ("POST", r"(/master)?/teardown", teardown),
        ("GET", r"(/master)?/state(\.json)?", state),
        ("GET", r"(/master)?/frameworks(\.json)?", frameworks),
        ("GET", r"(/master)?/(slaves|agents)(\.json)?", slaves),
        ("GET", r"/metrics/snapshot", metrics),
        ("GET", r"(/master)?/redirect", redirect),
        ("GET", "/health", lambda request: Response(200, content_type="text/plain")),
        ("GET", "/version", version),
    ]


def ready_guard(standin: MesosStandin, router: Router) -> Callable[[Request], Response]:
    """Answer 503 (pymesos retries on it) until the stand-in has finished starting."""

    def app(request: Request) -> Response:
        if not standin.ready:
            raise HTTPError(503, "the Mesos stand-in is starting")
        return router(request)

    return app

