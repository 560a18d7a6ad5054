"""marathon-lb's contract: its labels, its names, and the service ports of a Marathon app.

- Labels: `HAPROXY_{n}_<NAME>` for port index n (and the app-wide `HAPROXY_GROUP`), declared once in
  `LABELS` (name, parser, default, description). The renderer parses them with these parsers, the
  spec expansion refuses what they refuse (`label_problem`), and the README's table is this one
  (`python -m wharf.contracts.marathon_lb` prints it; a test compares them).
- Names: an app's frontend and backend are `route_name(app_id, service_port)` (`/shop/web` on 10000 ->
  `shop_web_10000`); its Consul service is `service_name(app_id)` (`/shop/web` -> `shop-web`).
- Blue/green deployment groups (marathon-lb's `zdd.py`): the apps whose `HAPROXY_DEPLOYMENT_GROUP`
  names one group serve one route, named after the group (`deployment_group`), on the port their
  `HAPROXY_{i}_PORT` labels share; each colour app takes `HAPROXY_DEPLOYMENT_ALT_PORT` or the
  group's port as its own Marathon service port in turn, since Marathon gives a port to one app.
- Service ports, as marathon-lb reads them: the port mappings' `servicePort` when the app has port
  mappings (container networking), else `portDefinitions[i].port` (else the legacy `ports`); a
  `HAPROXY_{i}_PORT` label overrides port i (`service_ports`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from wharf.contracts.words import is_name, is_path, is_vhost

__all__ = [
    "APP_GROUP_LABEL", "BALANCES", "DEFAULT_GROUP", "DEFAULT_RETRY_ON", "LABEL_DEFAULTS", "LABELS", "RETRY_ON",
    "DEPLOYMENT_ALT_PORT", "DEPLOYMENT_COLOUR", "DEPLOYMENT_GROUP", "DEPLOYMENT_STARTED_AT",
    "DEPLOYMENT_TARGET_INSTANCES", "Label", "app_name", "deployment_group", "label_problem", "label_service_ports",
    "label_table", "marathon_service_ports",
    "registered_service_port", "retry_on", "route_name", "service_name", "service_ports",
]

BALANCES = ("roundrobin", "static-rr", "leastconn", "first", "source", "uri", "random")
DEFAULT_GROUP = "external"  # marathon-lb's group for apps that name none
APP_GROUP_LABEL = "HAPROXY_GROUP"
DEPLOYMENT_GROUP = "HAPROXY_DEPLOYMENT_GROUP"
DEPLOYMENT_ALT_PORT = "HAPROXY_DEPLOYMENT_ALT_PORT"
DEPLOYMENT_COLOUR = "HAPROXY_DEPLOYMENT_COLOUR"
DEPLOYMENT_STARTED_AT = "HAPROXY_DEPLOYMENT_STARTED_AT"
DEPLOYMENT_TARGET_INSTANCES = "HAPROXY_DEPLOYMENT_TARGET_INSTANCES"


# --- label parsers: text in, an immutable value out, ValueError with the reason ------------------

def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ValueError("is not true or false")


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError("is not a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"is not in {low}-{high}")
        return value
    return parse


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        low = text.strip().lower()
        if low not in choices:
            raise ValueError(f"is not one of {', '.join(choices)}")
        return low
    return parse


def _vhosts(text: str) -> tuple[str, ...]:
    hosts = tuple(filter(None, map(str.strip, text.lower().split(","))))
    if not all(map(is_vhost, hosts)):
        raise ValueError("is not a list of host names")
    return hosts


def _path(text: str) -> str:
    if not is_path(text.strip()):
        raise ValueError("is not a URL path (/ then letters, digits, . _ ~ % - /)")
    return text.strip()


#: HAProxy 2.6's `retry-on` keywords: what a failed attempt may be retried on (`none`: nothing)
RETRY_ON = ("conn-failure", "empty-response", "junk-response", "response-timeout", "0rtt-rejected",
            "401", "403", "404", "408", "425", "500", "501", "502", "503", "504", "all-retryable-errors")
DEFAULT_RETRY_ON = "conn-failure empty-response"


def retry_on(text: str) -> str:
    """HAProxy `retry-on` keywords, space- or comma-separated, or `none`; normalised to one space."""
    words = tuple(filter(None, re.split(r"[\s,]+", text.strip().lower())))
    if words == ("none",):
        return "none"
    if not words or any(w not in RETRY_ON for w in words):
        raise ValueError(f"is not none or HAProxy retry-on keywords ({', '.join(RETRY_ON)})")
    return " ".join(dict.fromkeys(words))


def _group(text: str) -> str:
    if not is_name(text.strip()):
        raise ValueError("is not a group name")
    return text.strip()


# --- the label table -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Label:
    """One honoured marathon-lb label `HAPROXY_{n}_<name>`: its parser, its value when absent (None:
    worked out as the description says), what it does, and whether marathon-lb has it too (False: a
    label of wharf's own, in marathon-lb's naming)."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    description: str
    marathon_lb: bool = True


#: a label's parser, remembered by value: the same labels come back in every render, and each
#: parser is a pure function of the text to an immutable value (a bad value raises, never remembered)
_remembered = lru_cache(maxsize=65536)

LABELS: tuple[Label, ...] = (
    Label("GROUP", _remembered(_group), DEFAULT_GROUP,
          "the route's HAProxy group, for `--group` (also the app-wide `HAPROXY_GROUP`)"),
    Label("VHOST", _remembered(_vhosts), (),
          "virtual hosts, comma-separated (`*.` wildcards), routed by Host on the shared http frontend"),
    Label("PATH", _remembered(_path), None,
          "a path prefix, routed on the shared http frontend (with or without a vhost)"),
    Label("PORT", _remembered(_int_in(1, 65535)), None,
          "the service port the route's own frontend binds (and its name); absent: the app's service port"),
    Label("MODE", _remembered(_choice("http", "tcp")), None,
          "http or tcp; absent: http with a vhost or path, else tcp"),
    Label("BALANCE", _remembered(_choice(*BALANCES)), "roundrobin", "the backend's balance algorithm"),
    Label("STICKY", _remembered(_bool), False, "sticky sessions with an inserted (dynamic) cookie"),
    Label("REDIRECT_TO_HTTPS", _remembered(_bool), False, "redirect plain-HTTP requests to https"),
    Label("BACKEND_WEIGHT", _remembered(_int_in(-1000000, 1000000)), 0,
          "order of the vhost/path rules: higher first"),
    Label("ENABLED", _remembered(_bool), True, "false leaves the route out"),
    Label("RETRY_ON", _remembered(retry_on), None,
          "what an http backend retries on another server (HAProxy `retry-on` keywords, or `none`); "
          "absent: `wharf render --retry-on`, `conn-failure empty-response` unless told; an empty "
          "response is retried for idempotent methods only (wharf's own)", marathon_lb=False),
)
LABEL_DEFAULTS: Mapping[str, Any] = {label.name: label.default for label in LABELS}
_LABEL_BY_NAME = {label.name: label for label in LABELS}
_PORT_LABEL = re.compile(r"HAPROXY_(\d+)_([A-Z_]+)")


def label_problem(key: str, value: object) -> str | None:
    """Why the renderer would ignore the marathon-lb label `key` with `value` (`is not one of ...`),
    or None when it honours it or does not read that label. The spec expansion asks the same
    question before a push is accepted, so a label is never accepted there and dropped here."""
    match = _PORT_LABEL.fullmatch(key)
    label = _LABEL_BY_NAME["GROUP"] if key == APP_GROUP_LABEL else _LABEL_BY_NAME["PORT"] \
        if key == DEPLOYMENT_ALT_PORT else _LABEL_BY_NAME.get(match.group(2)) if match else None
    if label is None or not isinstance(value, str):
        return None
    try:
        label.parse(value)
    except ValueError as exc:
        return str(exc)
    return None


def _default_text(value: Any) -> str:
    if value is None or value == ():
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def label_table() -> str:
    """The README's table of the honoured labels, one row per entry of `LABELS`."""
    rows = ["| label | default | what it does |", "|---|---|---|"]
    rows += [f"| `HAPROXY_{{n}}_{label.name}` | {_default_text(label.default)} | {label.description} |"
             for label in LABELS]
    return "\n".join(rows)


# --- names ---------------------------------------------------------------------------------------

def app_name(app_id: str) -> str:
    """marathon-lb's name of an app: the id without its leading `/`, `/` as `_` (`/shop/web` -> `shop_web`)."""
    return app_id.lstrip("/").replace("/", "_")


def deployment_group(labels: Mapping[str, Any]) -> str | None:
    """The app id of the blue/green group an app's (or a task's Meta's) `HAPROXY_DEPLOYMENT_GROUP`
    names, with the leading `/` marathon-lb adds when it is missing; None when there is none."""
    group = str(labels.get(DEPLOYMENT_GROUP) or "").strip()
    return None if not group else group if group.startswith("/") else "/" + group


def route_name(app_id: str, service_port: int) -> str:
    """marathon-lb's frontend/backend name: `/shop/web` on 10000 -> `shop_web_10000`."""
    return f"{app_name(app_id)}_{service_port}"


def service_name(app_id: str) -> str:
    """The Consul service name of a Marathon app's task: `/shop/web` -> `shop-web`."""
    return app_id.strip("/").replace("/", "-")


# --- service ports -------------------------------------------------------------------------------

def _positive(value: Any) -> int | None:
    try:
        port = int(value or 0)
    except (TypeError, ValueError):
        return None
    return port if port > 0 else None


def marathon_service_ports(app: Mapping[str, Any]) -> dict[int, int]:
    """Port index -> the service port Marathon gave the app (given ones only): the port mappings'
    `servicePort` when it has port mappings (under `container` as in Marathon 1.5+, or under
    `container.docker` before), else `portDefinitions[i].port`, else the legacy `ports`."""
    container = app.get("container") or {}
    mappings = (container.get("docker") or {}).get("portMappings") or container.get("portMappings") or []
    if any(isinstance(m, Mapping) and _positive(m.get("servicePort")) for m in mappings):
        given = [m.get("servicePort") if isinstance(m, Mapping) else None for m in mappings]
    elif app.get("portDefinitions"):
        given = [d.get("port") if isinstance(d, Mapping) else None for d in app["portDefinitions"]]
    else:
        given = list(app.get("ports") or [])
    return {i: port for i, value in enumerate(given) if (port := _positive(value))}


def label_service_ports(labels: Mapping[str, Any]) -> dict[int, int]:
    """Port index -> the service port a `HAPROXY_{i}_PORT` label sets (a bad value is ignored, as
    the renderer ignores it)."""
    found = {}
    parse = _LABEL_BY_NAME["PORT"].parse
    for key, value in labels.items():
        match = _PORT_LABEL.fullmatch(str(key))
        if match and match.group(2) == "PORT":
            try:
                found[int(match.group(1))] = parse(str(value))
            except ValueError:
                continue
    return found


def service_ports(app: Mapping[str, Any]) -> dict[int, int]:
    """marathon-lb's service ports of an app, by port index: Marathon's, each overridden by the
    app's `HAPROXY_{i}_PORT` label (which also names the route)."""
    ports = {**marathon_service_ports(app), **label_service_ports(app.get("labels") or {})}
    return dict(sorted(ports.items()))


def registered_service_port(index: int, marathon: Mapping[int, int], labels: Mapping[str, Any]) -> int | None:
    """The `service_port` Meta of a task's port `index`: the service port Marathon gave it, else the
    `HAPROXY_{index}_PORT` label's. The label itself travels in the Meta too, and the renderer
    applies it over this one as marathon-lb does, so the route's name is the same either way."""
    return marathon.get(index) or label_service_ports(labels).get(index)


if __name__ == "__main__":
    print(label_table())
