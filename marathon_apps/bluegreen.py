"""Blue/green deploys (`strategy: bluegreen`): the new version as a second app beside the old, then the old drained.

marathon-lb's `zdd.py` model, its labels keeping their meaning: an app `/shop/web` runs as a colour
app, `/shop/web-blue` or `/shop/web-green`, labelled `HAPROXY_DEPLOYMENT_GROUP=/shop/web`, its colour,
`HAPROXY_DEPLOYMENT_ALT_PORT` and `HAPROXY_0_PORT` (the port both colours share; the renderer serves
a group's colours as one route). Marathon gives a service port to one app only, so the colours take
the shared port and the alternate port in turn as their own.

A deploy (`BlueGreen.run`) creates the next colour with every instance, waits until Marathon counts
them all healthy, Consul has them passing and every watched HAProxy has them UP, then drains the old
colour before killing it (`wharf.drain`) and deletes it. A new colour that does not get there within
the timeout is deleted, and the old one has served throughout, untouched. Each colour records the
definition it replaced (label `wharf.previous`), so `wharf apps rollback` is a blue/green deploy of it.

Deciding is pure (`colour_app`, `plan_change`); `BlueGreen` is the loop around Marathon, Consul and
HAProxy.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from marathon_apps.plan import AppChange, clean_live, diff_app
from marathon_apps.spec import PREVIOUS_LABEL, STRATEGY_LABEL
from wharf.contracts.marathon_app import normalize_app
from wharf.contracts.marathon_lb import (
    DEPLOYMENT_ALT_PORT,
    DEPLOYMENT_COLOUR,
    DEPLOYMENT_GROUP,
    DEPLOYMENT_STARTED_AT,
    DEPLOYMENT_TARGET_INSTANCES,
    deployment_group,
    marathon_service_ports,
    service_ports,
)

COLOURS = ("blue", "green")
#: labels a colour app carries that say nothing about the version it runs
STAMPS = (DEPLOYMENT_STARTED_AT, DEPLOYMENT_TARGET_INSTANCES, PREVIOUS_LABEL)


def is_bluegreen(definition: Mapping[str, Any]) -> bool:
    return (definition.get("labels") or {}).get(STRATEGY_LABEL) == "bluegreen"


def group_apps(live: Iterable[Mapping[str, Any]], group: str) -> list[dict[str, Any]]:
    """The live apps of blue/green group `group`, oldest first: an app still deployed the plain way
    under the group's own id, then the colours by their start."""
    found = [dict(a) for a in live if a.get("id") == group or deployment_group(a.get("labels") or {}) == group]
    return sorted(found, key=lambda a: (a.get("id") != group, (a.get("labels") or {}).get(DEPLOYMENT_STARTED_AT, "")))


def _set_service_port(app: dict[str, Any], port: int) -> None:
    """Make `port` the app's own Marathon service port for its first port."""
    container = app.get("container") or {}
    mappings = container.get("portMappings") or (container.get("docker") or {}).get("portMappings")
    if mappings:
        mappings[0]["servicePort"] = port
    elif app.get("portDefinitions"):
        app["portDefinitions"][0]["port"] = port
    else:
        app["portDefinitions"] = [{"port": port}]


def colour_app(definition: Mapping[str, Any], colour: str, own_port: int,
               previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The colour app of a blue/green `definition` (its id the group's): `/group-colour`, on
    `own_port` as its Marathon service port, routed on the shared one; `previous` is recorded."""
    app = copy.deepcopy(dict(definition))
    group = str(app["id"])
    shared = service_ports(definition)[0]
    labels = dict(app.get("labels") or {})
    labels.update({DEPLOYMENT_GROUP: group, DEPLOYMENT_COLOUR: colour, "HAPROXY_0_PORT": str(shared),
                   DEPLOYMENT_TARGET_INSTANCES: str(app.get("instances", 1))})
    if previous is not None:
        labels[PREVIOUS_LABEL] = json.dumps(recorded(previous), sort_keys=True, separators=(",", ":"))
    app["id"] = f"{group}-{colour}"
    app["labels"] = labels
    _set_service_port(app, own_port)
    return app


def recorded(app: Mapping[str, Any]) -> dict[str, Any]:
    """The definition a colour replaced, as the group's (what a rollback deploys again)."""
    out = clean_live(app)
    labels = {k: v for k, v in (out.get("labels") or {}).items()
              if k not in STAMPS and k not in (DEPLOYMENT_GROUP, DEPLOYMENT_COLOUR)}
    out["labels"] = labels
    group = deployment_group(app.get("labels") or {})
    if group:
        out["id"] = group
        shared = service_ports(app).get(0)
        if shared:
            _set_service_port(out, shared)
    return out


def colour_of(app: Mapping[str, Any]) -> str | None:
    return (app.get("labels") or {}).get(DEPLOYMENT_COLOUR)


def next_colour(definition: Mapping[str, Any], active: Mapping[str, Any] | None) -> tuple[str, int]:
    """The colour and own service port of the next deploy: the other colour than the active one, on
    the port the active one does not hold (the shared port when nothing holds it)."""
    shared = service_ports(definition)[0]
    alt = int((definition.get("labels") or {})[DEPLOYMENT_ALT_PORT])
    if active is None:
        return COLOURS[0], shared
    colour = COLOURS[1] if colour_of(active) == COLOURS[0] else COLOURS[0]
    held = marathon_service_ports(active).get(0)
    return colour, alt if held == shared else shared


def plan_change(definition: Mapping[str, Any], live: Iterable[Mapping[str, Any]]) -> AppChange:
    """What a deploy does to blue/green app `definition` (its id the group's) given Marathon's apps:
    nothing, a scale of the active colour in place, or a new colour (kind `bluegreen`)."""
    group = str(definition["id"])
    running = group_apps(live, group)
    active = running[-1] if running else None
    if active is None:
        colour, port = next_colour(definition, None)
        return AppChange("bluegreen", group, desired=colour_app(definition, colour, port), strategy="bluegreen")
    if colour_of(active):
        same = colour_app(definition, str(colour_of(active)), marathon_service_ports(active).get(0) or 0)
        fields = [f for f in diff_app(normalize_app(same), active)
                  if not any(f.path == f"labels.{stamp}" for stamp in STAMPS)]
        if not fields:
            return AppChange("unchanged", group, live=active, strategy="bluegreen")
        if all(f.path == "instances" for f in fields):
            return AppChange("scale", str(active["id"]), tuple(fields), same, active, strategy="bluegreen")
    else:
        fields = diff_app(normalize_app(dict(definition)), active)
    colour, port = next_colour(definition, active)
    return AppChange("bluegreen", group, tuple(fields), colour_app(definition, colour, port, previous=active),
                     active, strategy="bluegreen")


def rollback_change(live: Iterable[Mapping[str, Any]], group: str) -> AppChange | None:
    """A blue/green deploy of the definition the active colour of `group` replaced; None when
    `group` is no blue/green group. Raises ValueError when the active colour recorded none."""
    running = group_apps(live, group)
    if not running or not colour_of(running[-1]):
        return None
    active = running[-1]
    text = (active.get("labels") or {}).get(PREVIOUS_LABEL)
    if not text:
        raise ValueError(f"{active['id']} records no version before it (it was the group's first deploy)")
    previous = json.loads(text)
    previous.setdefault("labels", {})[STRATEGY_LABEL] = "bluegreen"
    previous["labels"].setdefault(DEPLOYMENT_ALT_PORT, (active.get("labels") or {}).get(DEPLOYMENT_ALT_PORT))
    colour, port = next_colour(previous, active)
    return AppChange("bluegreen", group, desired=colour_app(previous, colour, port, previous=active), live=active,
                     strategy="bluegreen")


def stamped(app: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """`app` with the moment its deploy starts (marathon-lb orders a group's colours by it)."""
    out = dict(app)
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")
    out["labels"] = {**(app.get("labels") or {}), DEPLOYMENT_STARTED_AT: when}
    return out
