"""How the Marathon stand-in reads a request and words a refusal, as Marathon does: the JSON body,
flags, app and task ids, and the error answers (`ApiError`)."""

from __future__ import annotations

import json
from typing import Any

from devcluster.httpapi import Request, Response, json_response
from devcluster.marathon.launch import TASK_ID
from wharf.contracts.marathon_app import InvalidAppId, parse_app_id

DEPLOYMENT_HEADER = "Marathon-Deployment-Id"  # on every answer that started a deployment (RestResource)


class ApiError(Exception):
    """Answer with ``body`` (JSON) and ``status``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status, self.body = status, body


def deployment_result(dep_id: str, version: str, status: int = 200) -> Response:
    """What Marathon answers a change with: the deployment's id and version, the id again in a header."""
    return json_response({"deploymentId": dep_id, "version": version}, status, {DEPLOYMENT_HEADER: dep_id})


def refusal(status: int, text: str) -> ApiError:
    return ApiError(status, {"message": text})


def locked(deployments: list[str]) -> ApiError:
    return ApiError(409, {
        "message": "App is locked by one or more deployments. Override with the option '?force=true'. "
                   "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
        "deployments": [{"id": d} for d in deployments]})


def json_body(request: Request) -> Any:
    try:
        return json.loads(request.body or b"null")
    except ValueError as err:
        raise ApiError(400, {"message": "Invalid JSON", "details": [{"path": "/", "errors": [str(err)]}]}) from None


def flag(request: Request, name: str) -> bool:
    return request.has(name) and (request.arg(name) or "true").lower() in ("true", "1")


def kill_mode(request: Request) -> tuple[bool, bool]:
    """(scale, wipe) of a kill request, refused together as Marathon refuses them."""
    scale, wipe = flag(request, "scale"), flag(request, "wipe")
    if scale and wipe:
        raise refusal(400, "You cannot use scale and wipe at the same time.")
    return scale, wipe


def task_ids(given: Any) -> list[str]:
    """The `ids` of a `DeleteTasks` body; errors as Marathon's JSON reader words them."""
    ids = given.get("ids") if isinstance(given, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        error = "error.path.missing" if ids is None else "error.expected.jsarray"
        raise ApiError(400, {"message": "Invalid JSON", "details": [{"path": "/ids", "errors": [error]}]})
    for task_id in ids:
        if not TASK_ID.fullmatch(task_id):
            raise refusal(400, f"Invalid task id '{task_id}'. "
                                f"[taskId {task_id} no valid identifier (of class java.lang.String)]")
    return ids


def path_app_id(request: Request) -> str:
    try:
        return parse_app_id(request.params["id"])
    except InvalidAppId as err:
        raise ApiError(400, {"message": f"Invalid app id: {err}"}) from None
