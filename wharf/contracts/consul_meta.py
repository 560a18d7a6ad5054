"""The Meta keys of a Consul registration, as DESIGN.md's contract names them.

The registrator writes them and the renderer reads them (Consul allows letters, digits, `-` and `_`
in Meta keys). Every task registration carries `OWNER` and `CONTAINER_ID`; a Marathon task's also
carries the Marathon keys below, and every `HAPROXY_*` label of its app as it is.

Each wharf daemon serving metrics registers that endpoint too (`wharf.announce`): service
`wharf-<daemon>`, tagged `METRICS_TAG`, with Meta `DAEMON`; no `OWNER` (the registrators never
touch it) and no Marathon keys (the renderer and `wharf trace` leave it alone).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "CONTAINER_ID", "DAEMON", "HAPROXY_PREFIX", "MAINTENANCE_PREFIX", "MARATHON_APP_ID", "MESOS_TASK_ID", "METRICS_TAG",
    "OWNER", "PORT_INDEX", "SERVICE_PORT", "haproxy_labels",
]

OWNER = "wharf_owner"  # the registrator that wrote the registration
CONTAINER_ID = "container_id"  # the Docker container's id
MARATHON_APP_ID = "marathon_app_id"  # `/shop/web`
MESOS_TASK_ID = "mesos_task_id"
PORT_INDEX = "port_index"  # the task's port index, `0` for PORT0
SERVICE_PORT = "service_port"  # the app's service port at that index
HAPROXY_PREFIX = "HAPROXY_"  # marathon-lb's labels, carried as they are
MAINTENANCE_PREFIX = "_service_maintenance:"  # Consul's own id of a service's maintenance check, then the service id
METRICS_TAG = "wharf-metrics"  # the tag of a wharf daemon's own metrics endpoint, for Prometheus to find
DAEMON = "wharf_daemon"  # which daemon serves that endpoint: `registrator`, `render`, `autoscale`, ...


def haproxy_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """The labels carried into the Meta as they are: every `HAPROXY_*` one."""
    return {k: v for k, v in labels.items() if k.startswith(HAPROXY_PREFIX)}
