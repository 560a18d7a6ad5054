"""A thin Marathon REST client for the calls wharf makes, on `requests`.

Why not the `marathon` package's models: they refuse fields they do not know (`check`, `tty`,
`resourceLimits`, ...) and their minimal encoding drops empty values, so an app definition could
not pass through as written. This client sends and returns plain JSON.

`MARATHON_URL` may list several masters: each call goes to the one that last answered and moves
on to the next on a connection error. Credentials (`http://user:password@host:port`) are split
off the URL and sent as basic auth; they never appear in a message or a log line.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests

from wharf.errors import BadInput, Failure, reaching
from wharf.log import fields
from wharf.retry import Retry

log = logging.getLogger("wharf.apps.marathon")


@dataclass(frozen=True)
class Master:
    """One Marathon master: its URL without credentials, and the credentials."""

    url: str
    auth: tuple[str, str] | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> Master:
        parts = urlsplit(text.strip())
        auth = (unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
        host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return cls(urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth)


class MarathonError(Failure):
    """Marathon refused a call: `status` and its JSON `body` (or text)."""

    def __init__(self, message: str, status: int, body: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, body


def _path(app_id: str) -> str:
    return quote(app_id.strip("/"), safe="/")


def refusal(body: Any) -> str:
    """Marathon's error body as one line: its message and each detail's path and errors."""
    if not isinstance(body, dict):
        return str(body)[:300]
    parts = [str(body.get("message") or "")]
    for detail in body.get("details") or []:
        errors = detail.get("errors") or []
        parts.append(f"{detail.get('path')}: {'; '.join(str(e) for e in errors)}")
    if body.get("deployments"):
        parts.append("deployments " + ", ".join(str(d.get("id")) for d in body["deployments"]))
    return " ".join(p for p in parts if p)


#: connection errors (every master down) are retried for a while; answers are not
CONNECT_RETRY = Retry(delay=0.2, max_delay=2.0, deadline=20.0, retry_on=(requests.ConnectionError, requests.Timeout))


class Marathon:
    """The Marathon masters named by `urls`."""

    def __init__(self, urls: Sequence[str], timeout: float = 10.0, retry: Retry = CONNECT_RETRY) -> None:
        if not urls:
            raise BadInput("MARATHON_URL: not set (or give --marathon-url)")
        self.masters = [Master.parse(u) for u in urls]
        self.timeout = timeout
        self.retry = retry
        self._current = 0
        self._local = threading.local()

    @property
    def shown(self) -> str:
        """The masters' URLs, without credentials, for messages."""
        return ", ".join(m.url for m in self.masters)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _send(self, method: str, path: str, body: Any, params: Mapping[str, Any] | None,
              stream: bool) -> requests.Response:
        """One try over every master, starting with the one that answered last."""
        last: Exception | None = None
        start = self._current
        for n in range(len(self.masters)):
            index = (start + n) % len(self.masters)
            master = self.masters[index]
            try:
                response = self._session().request(
                    method, master.url + path, params=params, auth=master.auth, stream=stream,
                    data=None if body is None else json.dumps(body),
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                    timeout=(self.timeout, None if stream else self.timeout))
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc
                log.debug("master unreachable", extra=fields(master=master.url, error=type(exc).__name__))
                continue
            self._current = index
            return response
        assert last is not None
        raise last  # every master failed: the last one's error says why

    def request(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None,
                ok: Sequence[int] = ()) -> Any:
        """Call Marathon and return the JSON answer; statuses in `ok` and below 400 are answers,
        others raise MarathonError. Connection errors are retried (every master) until the deadline."""
        with reaching("Marathon", self.shown, self.retry.deadline):
            response = self.retry(self._send, method, path, body, params, False)
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = response.text
        if response.status_code >= 400 and response.status_code not in ok:
            if response.status_code == 401:
                raise MarathonError(f"{method} {path}: Marathon refused the credentials (401)", 401, data)
            raise MarathonError(f"{method} {path}: Marathon answered {response.status_code}: {refusal(data)}",
                                response.status_code, data)
        return data

    # --- the calls -----------------------------------------------------------------------------

    def apps(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v2/apps")["apps"])

    def app(self, app_id: str) -> dict[str, Any] | None:
        data = self.request("GET", f"/v2/apps/{_path(app_id)}", ok=(404,))
        return None if not isinstance(data, dict) or "app" not in data else data["app"]

    def put_app(self, app_id: str, body: Mapping[str, Any], force: bool = False) -> str:
        """Create or replace an app (`partialUpdate=false`: fields left out are removed); the
        deployment id."""
        params = {"partialUpdate": "false", **({"force": "true"} if force else {})}
        data = self.request("PUT", f"/v2/apps/{_path(app_id)}", dict(body), params=params)
        return str(data.get("deploymentId") or data.get("deployments", [{}])[0].get("id"))

    def patch_app(self, app_id: str, body: Mapping[str, Any], force: bool = False) -> str:
        """Change some fields of an app (a scale, a rollback to a version); the deployment id."""
        params = {"force": "true"} if force else None
        data = self.request("PUT", f"/v2/apps/{_path(app_id)}", dict(body), params=params)
        return str(data["deploymentId"])

    def delete_app(self, app_id: str, force: bool = False) -> str:
        data = self.request("DELETE", f"/v2/apps/{_path(app_id)}", params={"force": "true"} if force else None)
        return str(data["deploymentId"])

    def versions(self, app_id: str) -> list[str]:
        return list(self.request("GET", f"/v2/apps/{_path(app_id)}/versions")["versions"])

    def version(self, app_id: str, version: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v2/apps/{_path(app_id)}/versions/{quote(version)}"))

    def deployments(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/v2/deployments"))

    def cancel_deployment(self, deployment_id: str) -> str | None:
        """Cancel a deployment and roll its apps back (Marathon's `DELETE /v2/deployments/{id}`);
        the rollback's deployment id, or None when the deployment had already ended."""
        data = self.request("DELETE", f"/v2/deployments/{quote(deployment_id)}", ok=(404,))
        if not isinstance(data, dict) or "deploymentId" not in data:
            return None
        return str(data["deploymentId"])

    def events(self, types: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
        """Marathon's event stream (`/v2/events`, server-sent events), one dict per event; ends when
        the stream does. Raises on connection errors or a refused stream."""
        with reaching("Marathon", self.shown):
            response = self._send("GET", "/v2/events", None, {"event_type": list(types)} if types else None, True)
        if response.status_code != 200:
            raise MarathonError(f"GET /v2/events: Marathon answered {response.status_code}", response.status_code,
                                None)
        data: list[str] = []
        try:
            for raw in response.iter_lines(decode_unicode=False):
                line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                if line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    try:
                        yield json.loads("\n".join(data))
                    except ValueError:
                        log.debug("undecodable event", extra=fields(data="\n".join(data)[:200]))
                    data = []
        finally:
            response.close()
