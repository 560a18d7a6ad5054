"""The dev cluster's own Docker bridge network, where BRIDGE tasks run as a Mesos agent runs them.

A Mesos agent's Docker containerizer runs a BRIDGE task on a Docker bridge and publishes each
port mapping's host port. Here the bridge is a network of the dev cluster's own, made by the Mesos
stand-in when it starts and removed when it stops, on a private /24 that no route of this machine
covers. The engine runs with iptables off, so nothing is masqueraded, and IPv4 forwarding is off
for packets coming in on the bridge, so nothing a container sends is routed off the machine; host
ports are published on an agent's loopback address by Docker's userland proxy, and clients only
ever talk to loopback. The Linux bridge is named ``wh<engine digest><owner digest>``: whatever an
engine stopped under a live network left behind can be found by the engine's prefix and deleted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import random
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wharf.log import fields

log = logging.getLogger("wharf.devcluster.bridge")

OWNER_LABEL = "wharf.devcluster.network.owner"
POOL = ipaddress.IPv4Network("10.0.0.0/8")  # private (RFC 1918); one /24 is picked from it
PREFIX_LEN = 24
ATTEMPTS = 20
SYSCTL = Path("/proc/sys/net/ipv4")


@dataclass(frozen=True)
class Bridge:
    """One network: the Docker network's name, its Linux bridge and its subnet."""

    name: str
    device: str
    subnet: str


def _digest(text: str, n: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def device_prefix(docker_host: str) -> str:
    """What every bridge made on the engine at ``docker_host`` starts with."""
    return "wh" + _digest(docker_host, 6)


def names(docker_host: str, owner: str) -> tuple[str, str]:
    """(Docker network name, Linux bridge name of at most 15 characters) for one owner."""
    return f"wharf-agents-{_digest(owner, 10)}", device_prefix(docker_host) + _digest(owner, 7)


def pick_subnet(used: Iterable[ipaddress.IPv4Network], rng: random.Random,
                pool: ipaddress.IPv4Network = POOL, prefix: int = PREFIX_LEN) -> ipaddress.IPv4Network:
    """A random /``prefix`` of ``pool`` that overlaps none of ``used`` (the default route aside)."""
    taken = [n for n in used if n.prefixlen > 0]
    count = 2 ** (prefix - pool.prefixlen)
    for _ in range(200):
        index = rng.randrange(count)
        subnet = ipaddress.IPv4Network((int(pool.network_address) + index * 2 ** (32 - prefix), prefix))
        if not any(subnet.overlaps(n) for n in taken):
            return subnet
    raise RuntimeError(f"no free /{prefix} in {pool}: the machine's routes cover it")


def routes_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination in this machine's routing tables (``ip -4 route show table all``)."""
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True,
                         check=True).stdout
    found = []
    for route in json.loads(out or "[]"):
        dst = str(route.get("dst", ""))
        if dst and dst != "default":
            try:
                found.append(ipaddress.IPv4Network(dst, strict=False))
            except ValueError:
                continue
    return found


def create(client: Any, docker_host: str, owner: str, rng: random.Random | None = None) -> Bridge:
    """Make ``owner``'s bridge network (removing any it left before) on a subnet no route covers."""
    import docker.errors
    import docker.types

    remove(client, owner)
    rng = rng or random.Random()
    name, device = names(docker_host, owner)
    used = routes_in_use() + [ipaddress.IPv4Network(c["Subnet"]) for n in client.api.networks()
                              for c in (n.get("IPAM") or {}).get("Config") or [] if "." in c.get("Subnet", "")]
    last: Exception | None = None
    for _ in range(ATTEMPTS):
        subnet = pick_subnet(used, rng)
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(subnet))])
        try:
            client.networks.create(name, driver="bridge", ipam=ipam, labels={OWNER_LABEL: owner}, options={
                "com.docker.network.bridge.name": device,
                "com.docker.network.bridge.enable_ip_masquerade": "false"})
        except docker.errors.APIError as err:  # another network took it meanwhile: try another
            last = err
            used.append(subnet)
            continue
        try:
            keep_on_machine(device)
        except OSError:
            remove(client, owner)
            raise
        log.info("bridge network created", extra=fields(network=name, device=device, subnet=str(subnet)))
        return Bridge(name, device, str(subnet))
    raise RuntimeError(f"could not create the bridge network {name}: {last}")


def keep_on_machine(device: str, sysctl: Path = SYSCTL) -> None:
    """Turn IPv4 forwarding off for packets coming in on ``device`` (the kernel decides by the
    incoming interface): whatever a container sends off its subnet is dropped, never routed out.
    Raises OSError when that cannot be set and the machine forwards."""
    try:
        (sysctl / "conf" / device / "forwarding").write_text("0\n")
    except OSError:
        if (sysctl / "ip_forward").read_text().strip() != "0":
            raise


def remove(client: Any, owner: str) -> int:
    """Remove ``owner``'s bridge networks (their containers first); returns how many went."""
    gone = 0
    for network in client.networks.list(filters={"label": f"{OWNER_LABEL}={owner}"}):
        network.reload()
        for container in network.containers:
            container.remove(force=True)
        network.remove()
        gone += 1
        log.info("bridge network removed", extra=fields(network=network.name))
    return gone


def delete_devices(prefix: str) -> list[str]:
    """Delete the Linux bridges named ``prefix…`` (left by an engine stopped under its networks)."""
    out = subprocess.run(["ip", "-j", "link", "show", "type", "bridge"], capture_output=True, text=True,
                         check=False).stdout
    deleted = []
    for link in json.loads(out or "[]"):
        device = str(link.get("ifname", ""))
        if device.startswith(prefix):
            subprocess.run(["ip", "link", "delete", device], capture_output=True, check=False)
            deleted.append(device)
    return deleted
