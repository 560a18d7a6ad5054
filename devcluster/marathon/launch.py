"""What Marathon decides when an offer comes: does an app's instance fit, and the TaskInfo to launch.

Pure: a :class:`RemainingOffer` (a v1 offer read into a value), an app (normalized, as the server
stores it) and where the app already runs go in; a :class:`Fit` (resources, host ports) or None, and a
v1 ``TaskInfo`` dict, come out.

Marathon's rules kept here: host ports come from the offer's port ranges (a port mapping's
non-zero hostPort, or a port definition's with `requirePorts`, must be that very port; anything
else takes the lowest free one); BRIDGE tasks get `DockerInfo.port_mappings` from host port to
containerPort; the task's environment holds `HOST`, `PORT0..n`, `PORT`, `PORTS`, `PORT_<NAME>`,
`PORT_<containerPort>` (or declared port), the `MARATHON_APP_*` variables and the app's `env`
(which wins); the app's labels become TaskInfo labels. Instance ids
follow the RAML `InstanceId` pattern: `<path with _>.instance-<uuid>`, task ids add `._app.1`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from devcluster.marathon.constraints import Placement, meets
from devcluster.mesos.resources import subtract_ranges

Range = tuple[int, int]


@dataclass(frozen=True)
class RemainingOffer:
    """What is left of one offer: the agent, its scalars and its port ranges."""

    id: str
    agent_id: str
    hostname: str
    cpus: float = 0.0
    mem: float = 0.0
    disk: float = 0.0
    ports: tuple[Range, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def from_mesos(cls, offer: Mapping[str, Any]) -> RemainingOffer:
        """Read a v1 ``Offer`` (plain or addict dict); unreserved resources only."""
        scalars: dict[str, float] = {}
        ports: list[Range] = []
        for res in offer.get("resources") or []:
            if res.get("reservations") or res.get("reservation"):
                continue
            if res.get("type", "SCALAR") == "SCALAR":
                scalars[res["name"]] = scalars.get(res["name"], 0.0) + float(res["scalar"]["value"])
            elif res["name"] == "ports":
                ports.extend((int(r["begin"]), int(r["end"])) for r in res["ranges"]["range"])
        attributes = {}
        for attr in offer.get("attributes") or []:
            if attr.get("type") == "TEXT":
                attributes[attr["name"]] = attr["text"]["value"]
            elif attr.get("type") == "SCALAR":
                attributes[attr["name"]] = str(attr["scalar"]["value"])
        return cls(offer["id"]["value"], offer["agent_id"]["value"], offer["hostname"],
                   scalars.get("cpus", 0.0), scalars.get("mem", 0.0), scalars.get("disk", 0.0),
                   tuple(sorted(ports)), attributes)

    @property
    def placement(self) -> Placement:
        return Placement(self.agent_id, self.hostname, self.attributes)

    def minus(self, fit: Fit) -> RemainingOffer:
        """The offer once ``fit`` is taken out of it."""
        left = subtract_ranges(self.ports, [(p, p) for p in fit.host_ports])
        return RemainingOffer(self.id, self.agent_id, self.hostname, round(self.cpus - fit.cpus, 3),
                              round(self.mem - fit.mem, 3), round(self.disk - fit.disk, 3), left, self.attributes)


@dataclass(frozen=True)
class Fit:
    """What one instance takes from an offer."""

    cpus: float
    mem: float
    disk: float
    host_ports: tuple[int, ...]


def port_definitions(app: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ports an instance needs: portDefinitions (host networking) or container portMappings
    with a host port, each with the port it asks for (`port`) and the one it names (`requested`)."""
    if app.get("portDefinitions") is not None:
        return [{**d, "requested": d.get("port", 0)} for d in app["portDefinitions"]]
    mappings = (app.get("container") or {}).get("portMappings") or []
    return [{"port": m.get("hostPort", 0), "name": m.get("name"), "requested": m.get("containerPort", 0),
             "mapping": m} for m in mappings if "hostPort" in m]


def pick_ports(app: Mapping[str, Any], available: Sequence[Range]) -> tuple[int, ...] | None:
    """Host ports for one instance from ``available``, or None when the offer lacks them.

    A port mapping's non-zero hostPort is always that very port; a port definition's only with
    `requirePorts`, as in Marathon.
    """
    free = list(available)
    chosen: list[int] = []
    mapped = app.get("portDefinitions") is None
    require = bool(app.get("requirePorts")) or mapped
    for definition in port_definitions(app):
        wanted = int(definition.get("port") or 0)
        if require and wanted:
            if not any(b <= wanted <= e for b, e in free):
                return None
            port = wanted
        else:
            if not free:
                return None
            port = free[0][0]
        chosen.append(port)
        free = list(subtract_ranges(free, [(port, port)]))
    return tuple(chosen)


def fit(app: Mapping[str, Any], offer: RemainingOffer, running: Sequence[Placement]) -> Fit | None:
    """Whether one instance of ``app`` fits ``offer`` (resources, ports, constraints)."""
    cpus, mem, disk = float(app.get("cpus", 1)), float(app.get("mem", 128)), float(app.get("disk", 0))
    if cpus > offer.cpus + 1e-9 or mem > offer.mem + 1e-9 or disk > offer.disk + 1e-9:
        return None
    if not meets(app.get("constraints") or [], offer.placement, running):
        return None
    ports = pick_ports(app, offer.ports)
    if ports is None:
        return None
    return Fit(cpus, mem, disk, ports)


# --- ids -----------------------------------------------------------------------------------------

def new_instance_id(app_id: str) -> str:
    """`/web/api` -> `web_api.instance-<uuid>` (RAML `InstanceId`)."""
    return f"{app_id.strip('/').replace('/', '_')}.instance-{uuid.uuid4()}"


def task_id_for(instance_id: str) -> str:
    return f"{instance_id}._app.1"


def instance_of(task_id: str) -> str:
    return re.sub(r"\._app\.\d+$", "", task_id)


# The loosest form of task id Marathon parses (its legacy `app.uuid`); anything else it refuses.
TASK_ID = re.compile(r"(.+)[._]([^_.]+)")


def app_id_of(task_id: str) -> str | None:
    """The app a task id names (`web_api.instance-<uuid>._app.1` -> `/web/api`), None if it names none."""
    match = re.fullmatch(r"(.+)\.(instance|marathon)-.+", instance_of(task_id)) or TASK_ID.fullmatch(task_id)
    return "/" + match.group(1).replace("_", "/") if match else None


# --- the TaskInfo --------------------------------------------------------------------------------

def _env_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name).upper()


def task_env(app: Mapping[str, Any], host: str, ports: Sequence[int]) -> dict[str, str]:
    """The environment Marathon gives a task (Mesos adds the MESOS_* variables)."""
    env: dict[str, str] = {"HOST": host}
    for i, port in enumerate(ports):
        env[f"PORT{i}"] = str(port)
    if ports:
        env["PORT"] = str(ports[0])
        env["PORTS"] = ",".join(str(p) for p in ports)
    for definition, port in zip(port_definitions(app), ports, strict=False):
        if definition.get("requested"):  # the container port (or declared port) it stands for
            env[f"PORT_{definition['requested']}"] = str(port)
        if definition.get("name"):
            env[f"PORT_{_env_name(definition['name'])}"] = str(port)
    docker = (app.get("container") or {}).get("docker") or {}
    labels = app.get("labels") or {}
    env.update({
        "MARATHON_APP_ID": app["id"],
        "MARATHON_APP_VERSION": app.get("version", ""),
        "MARATHON_APP_DOCKER_IMAGE": docker.get("image", ""),
        "MARATHON_APP_RESOURCE_CPUS": str(float(app.get("cpus", 1))),
        "MARATHON_APP_RESOURCE_MEM": str(float(app.get("mem", 128))),
        "MARATHON_APP_RESOURCE_DISK": str(float(app.get("disk", 0))),
        "MARATHON_APP_RESOURCE_GPUS": str(int(app.get("gpus", 0))),
        "MARATHON_APP_LABELS": " ".join(_env_name(k) for k in labels),
    })
    if not docker.get("image"):
        env.pop("MARATHON_APP_DOCKER_IMAGE")
    for key, value in labels.items():
        env[f"MARATHON_APP_LABEL_{_env_name(key)}"] = str(value)
    for key, value in (app.get("env") or {}).items():
        if isinstance(value, str):  # secret references ({"secret": ...}) are not supported
            env[key] = value
    return env


def _scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def _command(app: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    variables = [{"name": k, "value": v} for k, v in env.items()]
    command: dict[str, Any] = {"environment": {"variables": variables}}
    if app.get("cmd"):
        command.update(shell=True, value=app["cmd"])
    elif app.get("args"):
        command.update(shell=False, arguments=list(app["args"]))
    else:
        command["shell"] = False
    uris = [{"value": a["uri"], "extract": a.get("extract", True), "executable": a.get("executable", False),
             "cache": a.get("cache", False)} for a in app.get("fetch") or []]
    if uris:
        command["uris"] = uris
    return command


NETWORKS = {"host": "HOST", "container/bridge": "BRIDGE", "container": "USER"}


def port_mappings(app: Mapping[str, Any], host_ports: Sequence[int]) -> list[dict[str, Any]]:
    """`DockerInfo.port_mappings` for the host ports an instance got: a containerPort of 0 takes
    its host port's number, and `udp,tcp` becomes one mapping per protocol, as Marathon does."""
    out = []
    for definition, host in zip(port_definitions(app), host_ports, strict=False):
        mapping = definition.get("mapping")
        if mapping is None:
            continue
        container_port = int(mapping.get("containerPort") or 0) or host
        for protocol in str(mapping.get("protocol") or "tcp").split(","):
            out.append({"host_port": host, "container_port": container_port, "protocol": protocol})
    return out


def _container(app: Mapping[str, Any], host_ports: Sequence[int]) -> dict[str, Any] | None:
    container = app.get("container")
    if not container or container.get("type", "DOCKER") != "DOCKER":
        return None
    docker = container.get("docker") or {}
    networks = app.get("networks") or [{"mode": "host"}]
    network = NETWORKS.get(str(networks[0].get("mode")), "HOST")
    info: dict[str, Any] = {"image": docker["image"], "network": network,
                            "privileged": bool(docker.get("privileged", False)),
                            "force_pull_image": bool(docker.get("forcePullImage", False))}
    if network == "BRIDGE" and port_mappings(app, host_ports):
        info["port_mappings"] = port_mappings(app, host_ports)
    params = [{"key": p["key"], "value": p["value"]} for p in docker.get("parameters") or []]
    if params:
        info["parameters"] = params
    volumes = [{"container_path": v["containerPath"], "host_path": v["hostPath"],
                "mode": v.get("mode", "RW")} for v in container.get("volumes") or [] if "hostPath" in v]
    out: dict[str, Any] = {"type": "DOCKER", "docker": info, "volumes": volumes}
    if network == "USER":
        out["network_infos"] = [{"name": n["name"]} for n in networks if n.get("name")]
    return out


def task_info(app: Mapping[str, Any], offer: RemainingOffer, got: Fit, task_id: str) -> dict[str, Any]:
    """The v1 ``TaskInfo`` launching one instance of ``app`` with what ``got`` took from ``offer``."""
    resources = [_scalar("cpus", got.cpus), _scalar("mem", got.mem)]
    if got.disk:
        resources.append(_scalar("disk", got.disk))
    if got.host_ports:
        resources.append({"name": "ports", "type": "RANGES",
                          "ranges": {"range": [{"begin": p, "end": p} for p in got.host_ports]}})
    env = task_env(app, offer.hostname, got.host_ports)
    info: dict[str, Any] = {
        "name": app["id"].strip("/").replace("/", "."),
        "task_id": {"value": task_id},
        "agent_id": {"value": offer.agent_id},
        "resources": resources,
        "command": _command(app, env),
        "labels": {"labels": [{"key": k, "value": str(v)} for k, v in (app.get("labels") or {}).items()]},
    }
    container = _container(app, got.host_ports)
    if container is not None:
        info["container"] = container
        if app.get("args") and not app.get("cmd"):
            info["command"]["shell"] = False
    grace = app.get("taskKillGracePeriodSeconds")
    if grace is not None:
        info["kill_policy"] = {"grace_period": {"nanoseconds": int(float(grace) * 1e9)}}
    return info


def place(apps: Iterable[tuple[Mapping[str, Any], Sequence[Placement]]], offer: RemainingOffer,
          wanted: Mapping[str, int]) -> list[tuple[str, Fit, RemainingOffer]]:
    """Pack as many wanted instances as fit into one offer: (app id, fit, offer before it) in order."""
    out: list[tuple[str, Fit, RemainingOffer]] = []
    for app, running in apps:
        placed = list(running)
        for _ in range(max(0, wanted.get(app["id"], 0))):
            got = fit(app, offer, placed)
            if got is None:
                break
            out.append((app["id"], got, offer))
            placed.append(offer.placement)
            offer = offer.minus(got)
    return out

