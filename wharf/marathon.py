"""The one Marathon client: the REST calls wharf makes, as plain JSON, on `wharf.http`.

Why not the `marathon` package's models: they refuse fields they do not know (`check`, `tty`,
`resourceLimits`, ...) and their minimal encoding drops empty values, so an app definition could
not pass through as written. This client sends and returns plain JSON.

`MARATHON_URL` may list several masters: each call goes to the one that last answered and moves
on to the next on a connection error (see `wharf.http.HttpClient`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from wharf.errors import BadInput, HttpError
from wharf.http import CONNECT_RETRY, HttpClient
from wharf.retry import Retry

__all__ = ["MarathonClient", "MarathonError", "refusal"]

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


class MarathonError(HttpError):
    """Marathon refused a call: `status` and its JSON `body` (or text)."""


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


def healthy_counts(app: Mapping[str, Any]) -> tuple[int, int]:
    """(instances healthy, instances wanted) of a Marathon app: healthy means passing every health
    check, or running when the app has none."""
    wanted = int(app.get("instances", 1))
    healthy = app.get("tasksHealthy", 0) if app.get("healthChecks") else app.get("tasksRunning", 0)
    return int(healthy or 0), wanted


class MarathonClient(HttpClient):
    """The Marathon masters named by `urls` (credentials in their user-info, or `auth` for all)."""

    def __init__(self, urls: Sequence[str], timeout: float = 10.0, retry: Retry = CONNECT_RETRY,
                 auth: tuple[str, str] | None = None) -> None:
        if not urls:
            raise BadInput("MARATHON_URL: not set (or give --marathon-url)")
        super().__init__(urls, system="Marathon", timeout=timeout, retry=retry, auth=auth, headers=JSON,
                         error=MarathonError, describe=refusal)

    def apps(self, embed: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Every app; `embed` as Marathon's `embed` (`apps.tasks`, `apps.lastTaskFailure`, ...)."""
        return list(self.request("GET", "/v2/apps", params={"embed": list(embed)} if embed else None)["apps"])

    def app(self, app_id: str) -> dict[str, Any] | None:
        """The app, or None when Marathon has none of that id."""
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

    def scale(self, app_id: str, instances: int, force: bool = False) -> str:
        """`PUT /v2/apps/{id}` with only `{"instances": N}`; the deployment id."""
        return self.patch_app(app_id, {"instances": instances}, force=force)

    def delete_app(self, app_id: str, force: bool = False) -> str:
        data = self.request("DELETE", f"/v2/apps/{_path(app_id)}", params={"force": "true"} if force else None)
        return str(data["deploymentId"])

    def versions(self, app_id: str) -> list[str]:
        return list(self.request("GET", f"/v2/apps/{_path(app_id)}/versions")["versions"])

    def version(self, app_id: str, version: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/v2/apps/{_path(app_id)}/versions/{quote(version)}"))

    def tasks(self, app_id: str | None = None) -> list[dict[str, Any]]:
        """Every task, or those of one app."""
        path = f"/v2/apps/{_path(app_id)}/tasks" if app_id else "/v2/tasks"
        return list(self.request("GET", path)["tasks"])

    def kill_tasks(self, task_ids: Sequence[str], scale: bool = False) -> str | None:
        """Kill exactly these tasks (`POST /v2/tasks/delete`); with `scale`, lower their apps'
        instance counts by as many in the same call, and return that deployment's id."""
        params = {"scale": "true"} if scale else None
        data = self.request("POST", "/v2/tasks/delete", {"ids": list(task_ids)}, params=params)
        return str(data["deploymentId"]) if scale and isinstance(data, dict) and "deploymentId" in data else None

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
        return self.stream("/v2/events", {"event_type": list(types)} if types else None)
