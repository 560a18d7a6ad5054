"""How the Mesos stand-in's agents run a Docker task (pure): parameters, BRIDGE port mappings,
the images they may pull, and the dev cluster's bridge subnet."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path
from typing import Any

import pytest

from devcluster import bridge
from devcluster.marathon.launch import RemainingOffer, fit, pick_ports, task_env, task_info
from devcluster.mesos.docker_run import LaunchError, create_kwargs, docker_options
from devcluster.mesos.images import on_loopback, registry_of
from devcluster.mesos.model import Launch
from devcluster.mesos.offers import make_agents
from devcluster.mesos.protocol import parse_task
from wharf.contracts.marathon_app import normalize_app

AGENT = make_agents("m", [(31000, 31099)])[0]


def launch(network: str = "BRIDGE", mappings: list[dict[str, Any]] | None = None,
           parameters: dict[str, str] | list[tuple[str, str]] | None = None, ports: tuple[int, ...] = (31005,),
           mem: float = 64) -> Launch:
    params = parameters.items() if isinstance(parameters, dict) else parameters or []
    docker: dict[str, Any] = {"image": "wharf/busybox:latest", "network": network,
                              "parameters": [{"key": k, "value": v} for k, v in params]}
    if mappings is not None:
        docker["port_mappings"] = mappings
    resources = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                 {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}]
    if ports:
        resources.append({"name": "ports", "type": "RANGES",
                          "ranges": {"range": [{"begin": p, "end": p} for p in ports]}})
    info = {"name": "t", "task_id": {"value": "t"}, "agent_id": {"value": AGENT.id}, "resources": resources,
            "command": {"value": "httpd -f -p 8080", "environment": {"variables": [{"name": "A", "value": "1"}]}},
            "labels": {"labels": [{"key": "SERVICE_NAME", "value": "web"}]},
            "container": {"type": "DOCKER", "docker": docker}}
    return Launch("fw", parse_task(info), AGENT, "c1")


def kwargs(the_launch: Launch, network: str | None = "wharf-agents-x") -> dict[str, Any]:
    return create_kwargs(the_launch, Path("/sandbox"), "mesos-c1", {"SERVICE_NAME": "web", "owner": "me"}, network)


def test_bridge_tasks_join_the_network_and_publish_host_ports_on_the_agent_address() -> None:
    got = kwargs(launch(mappings=[{"host_port": 31005, "container_port": 8080, "protocol": "tcp"}]))
    assert got["network"] == "wharf-agents-x" and "network_mode" not in got
    assert got["ports"] == {"8080/tcp": (AGENT.hostname, 31005)}
    assert AGENT.hostname == "127.0.0.2"
    assert got["mem_limit"] == "64m" and got["environment"]["A"] == "1"


@pytest.mark.parametrize(("the_launch", "network", "message"), [
    (launch(mappings=[{"host_port": 31006, "container_port": 80}]), "n", "Port [31006] not included in resources"),
    (launch("HOST", mappings=[{"host_port": 31005, "container_port": 80}]), "n",
     "Port mappings are only supported for bridge and user-defined networks"),
    (launch(mappings=[{"host_port": 31005, "container_port": 80, "protocol": "sctp"}]), "n", "Invalid proto: sctp"),
    (launch("USER"), "n", "network USER is not available"),
    (launch(), None, "BRIDGE networking needs the dev cluster's bridge network"),
])
def test_what_the_containerizer_refuses_fails_the_launch(the_launch: Launch, network: str | None,
                                                        message: str) -> None:
    with pytest.raises(LaunchError, match=message.replace("[", r"\[").replace("]", r"\]")):
        kwargs(the_launch, network)


def test_parameters_become_docker_run_options_and_win_over_the_agents() -> None:
    got = kwargs(launch("HOST", parameters=[
        ("memory-swap", "64m"), ("label", "team=shop"), ("label", "SERVICE_NAME=spoofed"), ("env", "A=2"),
        ("env", "B=x=y"), ("ulimit", "nofile=1024:2048"), ("read-only", "true"), ("cap-add", "NET_ADMIN"),
        ("cap-add", "SYS_TIME"), ("add-host", "db:127.0.0.9"), ("log-driver", "json-file"),
        ("log-opt", "max-size=1m"), ("cpus", "0.25"), ("memory", "128m"), ("tmpfs", "/run:size=1m"),
        ("user", "nobody"), ("workdir", "/srv")]))
    assert got["memswap_limit"] == 64 * 2**20 and got["mem_limit"] == 128 * 2**20
    assert got["labels"] == {"team": "shop", "SERVICE_NAME": "web", "owner": "me"}  # the agent's labels stay
    assert got["environment"]["A"] == "2" and got["environment"]["B"] == "x=y"
    assert got["ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert got["read_only"] is True and got["cap_add"] == ["NET_ADMIN", "SYS_TIME"]
    assert got["extra_hosts"] == {"db": "127.0.0.9"} and got["nano_cpus"] == 250_000_000
    assert got["log_config"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert got["tmpfs"] == {"/run": "size=1m"} and got["network_mode"] == "host"
    assert got["user"] == "nobody" and got["working_dir"] == "/srv"  # over the agent's sandbox


@pytest.mark.parametrize(("parameters", "message"), [
    ([("no-such-flag", "1")], "unknown flag: --no-such-flag"),
    ([("m", "64m")], "unknown flag: --m"),
    ([("memory-swap", "lots")], "invalid argument \"lots\" for \"--memory-swap\" flag: invalid size: 'lots'"),
    ([("read-only", "yes")], 'invalid argument "yes" for "--read-only" flag: strconv.ParseBool'),
    ([("pids-limit", "x")], 'invalid argument "x" for "--pids-limit" flag: strconv.ParseInt'),
    ([("ulimit", "nofile=many")], "invalid ulimit argument: nofile=many"),
    ([("publish", "80:80")], "docker run option --publish is not supported by the wharf dev-cluster stand-in"),
    ([("name", "other")], "docker run option --name is not supported"),
])
def test_a_parameter_docker_run_would_refuse_fails_with_its_message(parameters: list[tuple[str, str]],
                                                                     message: str) -> None:
    with pytest.raises(LaunchError) as caught:
        docker_options(tuple(parameters))
    assert message in str(caught.value)


def test_env_without_a_value_comes_from_the_agents_environment() -> None:
    agent_env = {"HOME": "/home/app"}
    assert docker_options((("env", "HOME"), ("env", "NOPE")), agent_env) == {"environment": agent_env}
    assert docker_options((("memory-swap", "-1"),)) == {"memswap_limit": -1}


def test_only_loopback_registries_are_pulled_from() -> None:
    assert registry_of("wharf/busybox:latest") == "docker.io" and registry_of("busybox") == "docker.io"
    assert registry_of("127.0.0.1:5000/team/app:1") == "127.0.0.1:5000"
    assert registry_of("localhost/app") == "localhost" and registry_of("registry.local/app") == "registry.local"
    assert on_loopback("127.0.0.1:5000") and on_loopback("127.9.9.9") and on_loopback("localhost:5000")
    assert on_loopback("[::1]:5000") and not on_loopback("docker.io") and not on_loopback("10.0.0.1:5000")


def test_the_bridge_subnet_is_private_and_clear_of_every_route() -> None:
    used = [ipaddress.IPv4Network(n) for n in ("0.0.0.0/0", "10.0.0.0/9", "10.128.0.0/10", "192.0.2.0/24")]
    for seed in range(50):
        subnet = bridge.pick_subnet(used, random.Random(seed))
        assert subnet.prefixlen == 24 and subnet.is_private and subnet.subnet_of(bridge.POOL)
        assert not any(subnet.overlaps(n) for n in used[1:])
    with pytest.raises(RuntimeError, match="no free /24"):
        bridge.pick_subnet([bridge.POOL], random.Random(1))


def test_bridge_names_fit_linux_and_share_the_engines_prefix() -> None:
    network, device = bridge.names("unix:///state/docker/docker.sock", "/state/mesos/work")
    assert network.startswith("wharf-agents-") and len(device) <= 15
    assert device.startswith(bridge.device_prefix("unix:///state/docker/docker.sock"))
    assert bridge.names("unix:///other/docker.sock", "/state/mesos/work")[1] != device


# --- the Marathon stand-in's side: BRIDGE apps -------------------------------------------------

def bridged_app(*mappings: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out = normalize_app({"id": "/shop/web", "cmd": "x", "cpus": 0.1, "mem": 64, "networks": [
        {"mode": "container/bridge"}], "container": {"type": "DOCKER", "docker": {"image": "busybox"},
                                                    "portMappings": list(mappings)}, **fields})
    out["version"] = "2026-01-01T00:00:00.000Z"
    return out


OFFER = {"id": {"value": "o1"}, "agent_id": {"value": "S0"}, "hostname": "127.0.0.2",
         "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
                       {"name": "mem", "type": "SCALAR", "scalar": {"value": 512}},
                       {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31009}]}}]}


def test_marathon_maps_bridge_ports_from_host_to_container_port() -> None:
    app = bridged_app({"containerPort": 8080, "name": "http"}, {"containerPort": 0, "protocol": "udp,tcp"},
                      {"containerPort": 9000, "hostPort": 31007})
    offer = RemainingOffer.from_mesos(OFFER)
    got = fit(app, offer, [])
    assert got is not None and got.host_ports == (31000, 31001, 31007)  # a fixed hostPort is that very port
    info = task_info(app, offer, got, "t1")
    docker = info["container"]["docker"]
    assert docker["network"] == "BRIDGE"
    assert docker["port_mappings"] == [
        {"host_port": 31000, "container_port": 8080, "protocol": "tcp"},
        {"host_port": 31001, "container_port": 31001, "protocol": "udp"},  # containerPort 0: the host port
        {"host_port": 31001, "container_port": 31001, "protocol": "tcp"},
        {"host_port": 31007, "container_port": 9000, "protocol": "tcp"}]
    env = task_env(app, "127.0.0.2", got.host_ports)
    assert env["PORT0"] == env["PORT_HTTP"] == env["PORT_8080"] == "31000" and env["PORT_9000"] == "31007"
    assert env["HOST"] == "127.0.0.2" and "PORT_0" not in env
    assert pick_ports(app, [(31000, 31006)]) is None  # 31007 is not offered


def test_marathon_sends_container_networks_as_user() -> None:
    app = normalize_app({"id": "/a", "cmd": "x", "networks": [{"mode": "container", "name": "dcos"}],
                         "container": {"type": "DOCKER", "docker": {"image": "busybox"}}})
    offer = RemainingOffer.from_mesos(OFFER)
    got = fit(app, offer, [])
    assert got is not None
    container = task_info(app, offer, got, "t1")["container"]
    assert container["docker"]["network"] == "USER" and container["network_infos"] == [{"name": "dcos"}]


def test_forwarding_is_turned_off_on_the_bridge_or_the_machine_must_not_forward(tmp_path: Path) -> None:
    (tmp_path / "conf" / "wh1").mkdir(parents=True)
    (tmp_path / "conf" / "wh1" / "forwarding").write_text("1\n")
    (tmp_path / "ip_forward").write_text("1\n")
    bridge.keep_on_machine("wh1", tmp_path)
    assert (tmp_path / "conf" / "wh1" / "forwarding").read_text() == "0\n"
    with pytest.raises(OSError):
        bridge.keep_on_machine("gone", tmp_path)  # cannot be set, and the machine forwards
    (tmp_path / "ip_forward").write_text("0\n")
    bridge.keep_on_machine("gone", tmp_path)  # nothing is forwarded anyway
