"""What a deploy tells the team: one `wharf.notify.Event` per app it changed, from its plan and outcome.

Pure. Each changed app's event carries the image it ran and the image it runs now (an image tag
says more to a person than Marathon's version timestamps), and the config commit that asked for it
(its `wharf.commit` label). Apps left unchanged send nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from marathon_apps.deploy import Outcome
from marathon_apps.plan import AppChange
from wharf.contracts.marathon_app import COMMIT_LABEL
from wharf.notify import Event


def image_of(app: Mapping[str, Any] | None) -> str | None:
    """The Docker image an app definition runs, if any."""
    image = (((app or {}).get("container") or {}).get("docker") or {}).get("image")
    return str(image) if image else None


def events_of(changes: Iterable[AppChange], outcome: Outcome, commit: str | None = None,
              kind: str = "deploy") -> list[Event]:
    """One event per app the deploy changed: `ok`, `rolled back`, `failed` or `not attempted`;
    `commit` is the config commit the deploy records (`--commit`) when a definition carries none."""
    out = []
    for change in changes:
        app = change.app_id
        if app in outcome.deployed:
            result, why = "ok", ""
        elif app in outcome.rolled_back:
            result, why = "rolled back", outcome.failed.get(app, "")
        elif app in outcome.failed:
            result, why = "failed", outcome.failed[app]
        elif app in outcome.not_attempted:
            result, why = "not attempted", "an app it depends on did not deploy"
        else:
            continue
        recorded = ((change.desired or {}).get("labels") or {}).get(COMMIT_LABEL) or commit
        versions = (image_of(change.live), image_of(change.desired))
        if change.kind == "delete":
            versions = (image_of(change.live), None)
        out.append(Event(kind, app, result, versions=versions, commits=(recorded, None),
                         message=f"{change.kind}: {why}" if why else change.kind))
    return out
