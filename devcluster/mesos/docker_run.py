"""What a Mesos agent's Docker containerizer asks of ``docker run``, as Docker SDK keyword arguments.

Pure. The containerizer runs ``docker run`` with the task's resources, environment, sandbox,
volumes and network, then ``--key=value`` for each ``DockerInfo.parameters`` entry, so a parameter
wins over what the agent set. Here the same options become ``containers.create`` arguments; an
option ``docker run`` does not know fails the task as Docker's CLI fails it (``unknown flag``), one
it knows that the stand-in does not map is refused by name. BRIDGE tasks join the dev cluster's
bridge network and publish each port mapping's host port on their agent's address.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devcluster.mesos.model import Launch
from devcluster.mesos.protocol import ContainerSpec, PortMappingSpec
from devcluster.mesos.resources import Range, ranges_contain

DOCKER_SANDBOX = "/mnt/mesos/sandbox"  # where Mesos mounts the sandbox in a Docker container
MIN_MEMORY_MB = 32  # the containerizer never gives a container less (Mesos's MIN_MEMORY)
MIN_CPU_SHARES = 2


class LaunchError(RuntimeError):
    """Why the container cannot be run; the task fails with it (REASON_CONTAINER_LAUNCH_FAILED)."""


# `docker run` (Docker 20.10) long options: the ones not mapped below are refused by name
DOCKER_RUN_FLAGS = frozenset("""
add-host attach blkio-weight blkio-weight-device cap-add cap-drop cgroup-parent cgroupns cidfile cpu-count
cpu-percent cpu-period cpu-quota cpu-rt-period cpu-rt-runtime cpu-shares cpus cpuset-cpus cpuset-mems detach
detach-keys device device-cgroup-rule device-read-bps device-read-iops device-write-bps device-write-iops
disable-content-trust dns dns-opt dns-option dns-search domainname entrypoint env env-file expose gpus group-add
health-cmd health-interval health-retries health-start-period health-timeout help hostname init interactive
io-maxbandwidth io-maxiops ip ip6 ipc isolation kernel-memory label label-file link link-local-ip log-driver
log-opt mac-address memory memory-reservation memory-swap memory-swappiness mount name net net-alias network
network-alias no-healthcheck oom-kill-disable oom-score-adj pid pids-limit platform privileged publish
publish-all pull quiet read-only restart rm runtime security-opt shm-size sig-proxy stop-signal stop-timeout
storage-opt sysctl tmpfs tty ulimit user userns uts volume volume-driver volumes-from workdir
""".split())

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.IGNORECASE)
_TRUE, _FALSE = {"1", "t", "T", "TRUE", "true", "True"}, {"0", "f", "F", "FALSE", "false", "False"}


def _bad(flag: str, value: str, why: str) -> LaunchError:
    return LaunchError(f'invalid argument "{value}" for "--{flag}" flag: {why}')


def size(flag: str, value: str) -> int:
    """``64m`` -> bytes, as Docker's CLI reads sizes (binary units; ``-1`` for memory-swap)."""
    if flag == "memory-swap" and value == "-1":
        return -1
    match = _SIZE.match(value.strip())
    if match is None:
        raise _bad(flag, value, f"invalid size: '{value}'")
    return int(float(match.group(1)) * 1024 ** " kmgtp".index(match.group(2).lower() or " "))


def text(flag: str, value: str) -> str:
    return value


def integer(flag: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _bad(flag, value, f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def boolean(flag: str, value: str) -> bool:
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise _bad(flag, value, f'strconv.ParseBool: parsing "{value}": invalid syntax')


def _pair(flag: str, value: str, sep: str = "=") -> tuple[str, str]:
    key, found, rest = value.partition(sep)
    if not key or not found:
        raise _bad(flag, value, f"bad format for {flag}: {value}")
    return key, rest


def _ulimit(flag: str, value: str) -> dict[str, Any]:
    name, limits = _pair(flag, value)
    soft, _, hard = limits.partition(":")
    try:
        return {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}
    except ValueError:
        raise _bad(flag, value, f"invalid ulimit argument: {value}") from None


def _cpus(flag: str, value: str) -> int:
    try:
        return int(float(value) * 1e9)
    except ValueError:
        raise _bad(flag, value, "failed to parse as a rational number") from None


Single = Callable[[str, str], Any]
#: options that set one value: key -> (create keyword, reader)
SINGLE: dict[str, tuple[str, Single]] = {
    "memory": ("mem_limit", size), "memory-swap": ("memswap_limit", size),
    "memory-reservation": ("mem_reservation", size), "shm-size": ("shm_size", size),
    "kernel-memory": ("kernel_memory", size), "memory-swappiness": ("mem_swappiness", integer),
    "cpu-shares": ("cpu_shares", integer), "cpu-period": ("cpu_period", integer),
    "cpu-quota": ("cpu_quota", integer), "cpus": ("nano_cpus", _cpus), "cpuset-cpus": ("cpuset_cpus", text),
    "cpuset-mems": ("cpuset_mems", text), "pids-limit": ("pids_limit", integer),
    "oom-score-adj": ("oom_score_adj", integer), "oom-kill-disable": ("oom_kill_disable", boolean),
    "blkio-weight": ("blkio_weight", integer), "read-only": ("read_only", boolean), "init": ("init", boolean),
    "privileged": ("privileged", boolean), "tty": ("tty", boolean), "interactive": ("stdin_open", boolean),
    "hostname": ("hostname", text), "domainname": ("domainname", text), "user": ("user", text),
    "workdir": ("working_dir", text), "stop-signal": ("stop_signal", text), "ipc": ("ipc_mode", text),
    "pid": ("pid_mode", text), "uts": ("uts_mode", text), "userns": ("userns_mode", text),
    "cgroup-parent": ("cgroup_parent", text), "cgroupns": ("cgroupns", text), "runtime": ("runtime", text),
    "mac-address": ("mac_address", text), "isolation": ("isolation", text), "volume-driver": ("volume_driver", text),
}
#: options that may repeat, each adding one item to a list
LISTS: dict[str, str] = {
    "cap-add": "cap_add", "cap-drop": "cap_drop", "dns": "dns", "dns-search": "dns_search", "dns-opt": "dns_opt",
    "dns-option": "dns_opt", "security-opt": "security_opt", "group-add": "group_add", "device": "devices",
    "device-cgroup-rule": "device_cgroup_rules", "volumes-from": "volumes_from",
}
#: options that may repeat, each adding KEY=VALUE (add-host: HOST:IP) to a mapping
MAPS: dict[str, tuple[str, str]] = {
    "sysctl": ("sysctls", "="), "storage-opt": ("storage_opt", "="), "add-host": ("extra_hosts", ":"),
}


def docker_options(parameters: tuple[tuple[str, str], ...], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``DockerInfo.parameters`` as ``containers.create`` keywords; LaunchError as ``docker run`` fails.

    ``env`` is the agent's own environment, read by ``--env NAME`` without a value as Docker's CLI does.
    """
    out: dict[str, Any] = {}
    agent_env = os.environ if env is None else env
    for key, value in parameters:
        if key not in DOCKER_RUN_FLAGS:
            raise LaunchError(f"unknown flag: --{key}")
        if key in SINGLE:
            keyword, read = SINGLE[key]
            out[keyword] = read(key, value)
        elif key in LISTS:
            out.setdefault(LISTS[key], []).append(value)
        elif key in MAPS:
            keyword, sep = MAPS[key]
            name, item = _pair(key, value, sep)
            out.setdefault(keyword, {})[name] = item
        elif key == "env":
            name, found, item = value.partition("=")
            if found or name in agent_env:
                out.setdefault("environment", {})[name] = item if found else agent_env[name]
        elif key == "label":
            name, _, item = value.partition("=")
            out.setdefault("labels", {})[name] = item
        elif key == "ulimit":
            out.setdefault("ulimits", []).append(_ulimit(key, value))
        elif key == "log-driver":
            out.setdefault("log_config", {"Type": "", "Config": {}})["Type"] = value
        elif key == "log-opt":
            name, item = _pair(key, value)
            out.setdefault("log_config", {"Type": "", "Config": {}})["Config"][name] = item
        elif key == "tmpfs":
            path, _, options = value.partition(":")
            out.setdefault("tmpfs", {})[path] = options
        else:
            raise LaunchError(f"docker run option --{key} is not supported by the wharf dev-cluster stand-in's agents")
    return out


def published_ports(spec: ContainerSpec, port_ranges: tuple[Range, ...], host_ip: str) -> dict[str, tuple[str, int]]:
    """``-p HOST_IP:HOST_PORT:CONTAINER_PORT/PROTO`` for each port mapping, checked as the containerizer does."""
    if spec.port_mappings and spec.network in ("HOST", "NONE"):
        raise LaunchError("Port mappings are only supported for bridge and user-defined networks")
    out: dict[str, tuple[str, int]] = {}
    for mapping in spec.port_mappings:
        if not ranges_contain(port_ranges, [(mapping.host_port, mapping.host_port)]):
            raise LaunchError(f"Port [{mapping.host_port}] not included in resources")
        if mapping.protocol not in ("tcp", "udp"):
            raise LaunchError(f"Invalid proto: {mapping.protocol}")
        out[_container_port(mapping)] = (host_ip, mapping.host_port)
    return out


def _container_port(mapping: PortMappingSpec) -> str:
    return f"{mapping.container_port}/{mapping.protocol}"


def task_environment(launch: Launch, sandbox: str) -> dict[str, str]:
    """The command's environment plus the variables Mesos gives every task."""
    env = dict(launch.task.command.environment) if launch.task.command else {}
    env.update({
        "MESOS_TASK_ID": launch.task.task_id,
        "MESOS_FRAMEWORK_ID": launch.framework_id,
        "MESOS_AGENT_ID": launch.agent.id,
        "MESOS_SLAVE_ID": launch.agent.id,
        "MESOS_SANDBOX": sandbox,
        "MESOS_CONTAINER_NAME": f"mesos-{launch.container_id}",
    })
    return env


def docker_command(launch: Launch) -> tuple[list[str] | None, list[str] | None]:
    """(entrypoint, command) as Mesos's Docker containerizer builds them from CommandInfo."""
    command = launch.task.command
    if command is None:
        return None, None
    if command.shell:
        return (["/bin/sh", "-c"], [command.value]) if command.value else (None, None)
    argv = ([command.value] if command.value else []) + list(command.arguments)
    return None, argv or None


def create_kwargs(launch: Launch, sandbox: Path, name: str, labels: Mapping[str, str],
                  bridge: str | None) -> dict[str, Any]:
    """Every ``containers.create`` keyword for the task's container (image and name included)."""
    spec = launch.task.container
    assert spec is not None and spec.image is not None
    if spec.network == "BRIDGE" and bridge is None:
        raise LaunchError("BRIDGE networking needs the dev cluster's bridge network, which this stand-in has not "
                          "(it was started without a Docker engine)")
    if spec.network not in ("HOST", "BRIDGE", "NONE"):
        raise LaunchError(f"network {spec.network} is not available on the dev cluster's agents "
                          "(they have no user-defined networks); use HOST or BRIDGE")
    binds = {str(sandbox): {"bind": DOCKER_SANDBOX, "mode": "rw"}}
    for volume in spec.volumes:
        host = Path(volume.host_path)
        binds[str(host if host.is_absolute() else sandbox / host)] = {
            "bind": volume.container_path, "mode": "ro" if volume.read_only else "rw"}
    entrypoint, command = docker_command(launch)
    resources = launch.task.resources
    cpus, mem = resources.scalar("cpus"), resources.scalar("mem")
    kwargs: dict[str, Any] = {
        "image": spec.image, "name": name, "command": command, "entrypoint": entrypoint, "detach": True,
        "environment": task_environment(launch, DOCKER_SANDBOX), "working_dir": DOCKER_SANDBOX,
        "labels": dict(labels), "volumes": binds, "privileged": spec.privileged,
        "cpu_shares": max(MIN_CPU_SHARES, int(cpus * 1024)) if cpus else None,
        "mem_limit": f"{max(MIN_MEMORY_MB, int(mem))}m" if mem else None,
    }
    if spec.network == "BRIDGE":
        kwargs["network"] = bridge
        kwargs["ports"] = published_ports(spec, resources.ranges.get("ports", ()), launch.agent.hostname)
    else:
        published_ports(spec, (), launch.agent.hostname)  # refuses mappings on HOST/NONE
        kwargs["network_mode"] = spec.network.lower()
    options = docker_options(spec.parameters)
    # merged: an --env parameter wins over the task's variables; the agent's own labels stay
    kwargs["environment"] = {**kwargs["environment"], **options.pop("environment", {})}
    kwargs["labels"] = {**options.pop("labels", {}), **kwargs["labels"]}
    kwargs.update(options)
    return kwargs
