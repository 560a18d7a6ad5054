"""The CLI's side of the API: find the leader (`--api`, or the election in ZooKeeper) and call it."""

from __future__ import annotations

import logging
from typing import Any

import requests

from framework.store import DEFAULT_ROOT
from wharf.errors import BadInput, Failure, HttpError, Unreachable
from wharf.http import HttpClient
from wharf.retry import Retry

_QUIET = logging.getLogger("wharf.framework.zk")
_QUIET.setLevel(logging.CRITICAL)


def leader_from_zk(zk_hosts: str, root: str = DEFAULT_ROOT, timeout: float = 10.0) -> str:
    """The elected leader's API URL, read from the election's contenders."""
    from kazoo.client import KazooClient
    from kazoo.exceptions import NoNodeError

    zk = KazooClient(hosts=zk_hosts, timeout=timeout, logger=_QUIET)  # its retries are not news: the error is
    try:
        zk.start(timeout=timeout)
    except Exception:
        zk.close()
        raise Unreachable("ZooKeeper", zk_hosts, f"no answer within {timeout:g} s") from None
    try:
        contenders = zk.Election(f"{root.rstrip('/')}/election").contenders()
    except NoNodeError:
        contenders = []
    finally:
        zk.stop()
        zk.close()
    if not contenders:
        raise Failure(f"no `wharf framework run` is running (no contender under {root}/election in {zk_hosts})")
    return str(contenders[0])


#: a call is tried once: a submit is not idempotent, and the CLI reports at once
ONCE = Retry(max_tries=1, retry_on=(requests.ConnectionError, requests.Timeout))


def _as_dict(data: Any) -> Any:
    """An answer that is not JSON becomes `{"error": its text}`, as the API words its errors."""
    return data if isinstance(data, dict | list) else {"error": str(data or "").strip()}


class Client:
    """Calls to one instance's API (requests follows a follower's redirect to the leader)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.http = HttpClient(self.url, system="the framework's API", timeout=timeout, retry=ONCE)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return _as_dict(self.http.request(method, path, body))
        except HttpError as exc:
            data = _as_dict(exc.body)
            if exc.status == 400:
                raise BadInput(f"submit rejected: {data.get('error')}") from None
            if exc.status == 404:
                raise BadInput(str(data.get("error"))) from None
            raise Failure(f"framework API {self.url}{path}: {exc.status} {data.get('error', '')}".strip()) from None

    def submit(self, submission: dict[str, Any]) -> dict[str, Any]:
        return dict(self.call("POST", "/v1/tasks", submission))

    def tasks(self, state: str | None = None) -> list[dict[str, Any]]:
        return list(self.call("GET", "/v1/tasks" + (f"?state={state}" if state else ""))["tasks"])

    def task(self, task_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/v1/tasks/{task_id}"))

    def kill(self, task_id: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/v1/tasks/{task_id}/kill", {}))
