"""Slots: a membership-only change goes through the Runtime API, anything else is a reload.

Every backend has a fixed number of server slots (`slot1..slotN`): filled ones are written as
`server` lines with the instance's address, spare ones as a disabled `server-template` range. A
server keeps its slot while it lives, so scaling up or down, or a health flip, only changes slot
contents, which `set server` can apply to a running HAProxy. A new backend, a changed label, or a
backend outgrowing its slots changes the structure and needs a reload.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from consul_templates.routes import Route
from consul_templates.snapshot import ServiceInstance
from wharf.haproxy import ServerState

MIN_SLOTS = 4
#: where an empty slot points, so the written file and the running HAProxy agree
SPARE_ADDRESS, SPARE_PORT = "127.0.0.1", 1

Layout = Mapping[str, tuple[ServiceInstance | None, ...]]


def slot_count(servers: int, previous: int = 0) -> int:
    """Slots for a backend: the previous count while the servers fit, else room to double."""
    if previous and servers <= previous:
        return previous
    size = MIN_SLOTS
    while size < 2 * servers:
        size *= 2
    return size


def assign(routes: Iterable[Route], previous: Layout | None = None) -> dict[str, tuple[ServiceInstance | None, ...]]:
    """Each route's servers in slots, keeping every server that was in a slot before where it was."""
    previous = previous or {}
    layout: dict[str, tuple[ServiceInstance | None, ...]] = {}
    for route in routes:
        before = previous.get(route.name, ())
        size = slot_count(len(route.servers), len(before))
        if not before:  # a fresh layout: the sorted servers, then the spare slots
            layout[route.name] = (*route.servers, *(None,) * (size - len(route.servers)))
            continue
        if size == len(before) and tuple(filter(None, before)) == route.servers:
            layout[route.name] = before  # the same servers in the same slots
            continue
        slots: list[ServiceInstance | None] = [None] * size
        wanted = {s.key: s for s in route.servers}
        for i, old in enumerate(before[:size]):
            if old is not None and old.key in wanted:
                slots[i] = wanted.pop(old.key)
        free = (i for i, s in enumerate(slots) if s is None)
        for server in wanted.values():  # route.servers is sorted, so a fresh layout is too
            slots[next(free)] = server
        layout[route.name] = tuple(slots)
    return layout


class Slot(NamedTuple):
    """One server slot as the templates see it: its name and number, its server (None when empty),
    and where it points (the spare address and port when empty)."""

    name: str
    number: int
    server: ServiceInstance | None
    address: str
    port: int


def _slot(number: int, server: ServiceInstance | None) -> Slot:
    if server is None:
        return Slot(name=f"slot{number}", number=number, server=None, address=SPARE_ADDRESS, port=SPARE_PORT)
    return Slot(name=f"slot{number}", number=number, server=server, address=server.address, port=server.port)


class Backend(NamedTuple):
    """A route with its slots, for templates: `filled` are written as servers, `spare` (contiguous
    ranges of empty slot numbers, as (first, last)) as `server-template` ranges."""

    route: Route
    servers: tuple[ServiceInstance | None, ...]  # per slot, from the layout
    name: str
    filled: tuple[Slot, ...]
    spare: tuple[tuple[int, int], ...]

    @property
    def slots(self) -> tuple[Slot, ...]:
        return tuple(_slot(i, s) for i, s in enumerate(self.servers, start=1))


def backend(route: Route, servers: tuple[ServiceInstance | None, ...]) -> Backend:
    """`route` with its slots from the layout."""
    ranges: list[tuple[int, int]] = []
    for number, server in enumerate(servers, start=1):
        if server is not None:
            continue
        if ranges and ranges[-1][1] == number - 1:
            ranges[-1] = (ranges[-1][0], number)
        else:
            ranges.append((number, number))
    filled = tuple(_slot(n, s) for n, s in enumerate(servers, start=1) if s is not None)
    return Backend(route=route, servers=servers, name=route.name, filled=filled, spare=tuple(ranges))


def backends(routes: Iterable[Route], layout: Layout) -> tuple[Backend, ...]:
    return tuple(backend(r, layout[r.name]) for r in routes)


def structure(routes: Iterable[Route], layout: Layout) -> tuple[object, ...]:
    """Everything a reload would change: the routes without their servers, and the slot counts."""
    return tuple((r._replace(servers=()), len(layout[r.name])) for r in routes)


def slot_commands(backend: str, slot: str, server: ServiceInstance | None) -> tuple[str, ...]:
    """The `set server` commands that put `server` (or nothing) in a running slot."""
    target = f"{backend}/{slot}"
    if server is None:
        return (f"set server {target} state maint",
                f"set server {target} addr {SPARE_ADDRESS} port {SPARE_PORT}")
    return (f"set server {target} addr {server.address} port {server.port}",
            f"set server {target} state ready")


def addresses(commands: Iterable[str]) -> list[str]:
    """The addresses that `set server ... addr A port P` commands point slots at."""
    return [c.split(" addr ", 1)[1].split()[0] for c in commands if " addr " in c]


def layout_from_config(text: str) -> dict[str, tuple[ServiceInstance | None, ...]]:
    """The slots a config written from the built-in template holds (`server slotN A:P` and spare
    `server-template slot A-B` lines per backend), so a restarted renderer keeps every server where
    the running HAProxy has it, and an unchanged catalog rewrites the same bytes."""
    layout: dict[str, dict[int, ServiceInstance | None]] = {}
    backend: dict[int, ServiceInstance | None] | None = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("backend", "frontend", "listen", "defaults", "global"):
            backend = layout.setdefault(words[1], {}) if words[0] == "backend" and len(words) > 1 else None
        elif backend is not None and words[0] == "server" and len(words) >= 3 and words[1].startswith("slot"):
            address, _, port = words[2].rpartition(":")
            if words[1][4:].isdigit() and port.isdigit():
                backend[int(words[1][4:])] = ServiceInstance("", "", "", address, int(port))
        elif backend is not None and words[0] == "server-template" and len(words) >= 3 and words[1] == "slot":
            first, _, last = words[2].partition("-")
            if first.isdigit() and last.isdigit():
                for number in range(int(first), int(last) + 1):
                    backend[number] = None
    return {name: tuple(slots.get(n) for n in range(1, max(slots) + 1)) for name, slots in layout.items()
            if slots}


def _key(server: ServiceInstance | None) -> str | None:
    return server.key if server is not None else None


def reconcile(actual: Mapping[tuple[str, str], ServerState], layout: Layout) -> tuple[str, ...]:
    """The commands that make a running HAProxy's slots (`wharf.haproxy.servers_state`) hold `layout`:
    a filled slot is ready at its server's address and port, an empty one is in maintenance. Whether
    HAProxy's own health check finds a ready server up is HAProxy's to say, not a difference."""
    commands: list[str] = []
    for name, servers in layout.items():
        for number, server in enumerate(servers, start=1):
            now = actual.get((name, f"slot{number}"))
            if now is None:
                continue  # not in the running config (a reload brings it)
            if server is None and now.ready or server is not None and (
                    not now.ready or (now.address, now.port) != (server.address, server.port)):
                commands += slot_commands(name, f"slot{number}", server)
    return tuple(commands)


def moves(before: Layout, after: Layout, names: Iterable[str]) -> tuple[str, ...]:
    """The commands that bring the named backends' slots from `before` to `after`."""
    commands: list[str] = []
    for name in names:
        old, new = before.get(name, ()), after.get(name, ())
        for number, server in enumerate(new[: len(old)], start=1):
            if _key(old[number - 1]) != _key(server):
                commands += slot_commands(name, f"slot{number}", server)
    return tuple(commands)
