"""The built-in HAProxy template's output, kept up to date by what changed.

`Incremental.update(changed)` takes the services that changed (their safe, usable form, or None when
gone) and redoes only what depends on them: the routes their instances serve, those routes' slots,
and those routes' frontend and backend blocks, each rendered by the same macro of
`haproxy.parts.j2` that the full template uses. The blocks that depend on every route (the name and
port arrangement, the shared http frontend's rules) are redone only when a route's structure changed;
a change that only moves servers (scale, health flip, drain) touches its routes' backends alone.
The text is the blocks put together, byte for byte the full template's over the same catalog
(`tests/unit/test_render_incremental.py` holds it over random sequences of changes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consul_templates import routes as routes_mod
from consul_templates import slots
from consul_templates.render import Rendered, RenderError, RenderSettings, Template
from consul_templates.routes import Candidate, Route, RouteKey
from consul_templates.snapshot import Service, ServiceInstance

PARTS = "haproxy.parts.j2"


def head_of(route: Route) -> Route:
    """A route without its servers: what a reload would change."""
    return route._replace(servers=())


@dataclass
class Update:
    """What one update changed: whether a route's structure changed (a reload), and the routes whose
    slots changed (Runtime API commands, or part of the reload)."""

    structural: bool
    moved: tuple[str, ...] = ()


@dataclass
class Incremental:
    """Routes, slots and rendered blocks of the built-in HAProxy template, per route."""

    template: Template
    settings: RenderSettings
    layout: dict[str, tuple[ServiceInstance | None, ...]] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    members: dict[RouteKey, dict[tuple[str, str, str], ServiceInstance]] = field(default_factory=dict)
    candidates: dict[RouteKey, Candidate] = field(default_factory=dict)
    owners: dict[str, RouteKey] = field(default_factory=dict)  # route name -> the key that makes it
    routes: dict[str, Route] = field(default_factory=dict)  # by name, as arranged
    problems: tuple[routes_mod.Problem, ...] = ()
    blocks: dict[str, tuple[Any, str, str]] = field(default_factory=dict)  # name -> (inputs, frontend, backend)
    head: str = ""
    http: str = ""
    rules: tuple[Route, ...] = ()  # the http frontend's rules, as last rendered
    started: bool = False
    order: list[str] = field(default_factory=list)  # the route names, sorted
    latest: Rendered | None = None  # the file as it now stands, once asked for

    def __post_init__(self) -> None:
        self.parts: Any = self.template.jinja.environment.get_template(PARTS).module  # its macros

    def update(self, changed: Mapping[str, Service | None]) -> Update:
        """Apply changed services (None: gone, or left out) and render what they touch."""
        dirty = self._regroup(changed)
        structural, moved = not self.started, set()
        for key in dirty:
            old = self.candidates.get(key)
            insts = self.members.get(key)
            new = routes_mod.make_route(key, list(insts.values()), self.settings.groups) if insts else None
            if new is None:
                self.candidates.pop(key, None)
            else:
                self.candidates[key] = new
            if _head_changed(old, new):
                structural = True
            elif new is not None and new.route is not None and self.owners.get(new.route.name) == key:
                name = new.route.name
                self.routes[name] = self.routes[name]._replace(servers=new.route.servers)
                moved.add(name)
        try:
            if structural:
                moved |= self._arrange()
            else:
                for name in moved:
                    self.layout[name] = slots.assign([self.routes[name]], self.layout)[name]
            self._blocks(self.routes if structural else moved)
        except Exception as exc:  # a macro failed: the template's own bug, reported as a render error
            raise RenderError(f"{self.template.path}: {exc}") from None
        self.started, self.latest = True, None
        return Update(structural, tuple(sorted(moved)))

    def changed_since(self, blocks: Mapping[str, Any]) -> list[str]:
        """The routes whose blocks are not the ones in `blocks` (a copy of `self.blocks` kept when a
        file was written): new or re-rendered since."""
        return [name for name in self.order if blocks.get(name) is not self.blocks[name]]

    def partial(self, names: list[str]) -> str:
        """A config holding what `names` change: the head, the shared http frontend, their frontends
        and backends, and for every other backend a stand-in of its mode for the rules that name it.
        `haproxy -c` of it checks the change; the rest of the file was checked when it was written."""
        wanted = set(names)
        stand_ins = [f"\nbackend {name}\n    mode {self.routes[name].mode}\n" for name in self.order
                     if name not in wanted]
        return "".join([self.head, self.http, *(self.blocks[n][1] for n in names),
                        *(self.blocks[n][2] for n in names), *stand_ins])

    @property
    def rendered(self) -> Rendered:
        """The file as it now stands: the blocks put together (done when asked, not on every change)."""
        if self.latest is None:
            text = "".join([self.head, self.http, *(self.blocks[n][1] for n in self.order),
                            *(self.blocks[n][2] for n in self.order)])
            self.latest = Rendered(text, tuple(self.routes[n] for n in self.order), dict(self.layout),
                                   self.problems)
        return self.latest

    def _regroup(self, changed: Mapping[str, Service | None]) -> set[RouteKey]:
        """Move the changed services' instances to their routes' keys: the keys touched."""
        dirty: set[RouteKey] = set()
        for name, service in changed.items():
            for inst in self.services.pop(name, Service(name, ())).instances:
                key = routes_mod.route_key(inst)
                self.members[key].pop((inst.service, inst.node, inst.id), None)
                if not self.members[key]:
                    del self.members[key]
                dirty.add(key)
            if service is None:
                continue
            self.services[name] = service
            for inst in service.instances:
                key = routes_mod.route_key(inst)
                self.members.setdefault(key, {})[inst.service, inst.node, inst.id] = inst
                dirty.add(key)
        return dirty

    def _arrange(self) -> set[str]:
        """Every route's name and port again, and the slots of each: the routes whose slots moved."""
        ordered, self.problems = routes_mod.arrange(self.candidates, self.settings.reserved_ports)
        self.owners = routes_mod.claim_names(self.candidates)
        self.routes = {r.name: r for r in ordered}
        self.order = [r.name for r in ordered]
        layout = slots.assign(ordered, self.layout)
        moved = {name for name, servers in layout.items() if self.layout.get(name) != servers}
        self.layout = layout
        return moved

    def _blocks(self, touched: Mapping[str, Route] | set[str]) -> None:
        """Render the blocks of the touched routes (every one, after a structural change)."""
        if not self.started:
            self.head = self.parts.head(self.settings)
        if isinstance(touched, dict):
            rules = tuple(head_of(r) for r in routes_mod.http_rules(self.routes.values()))
            if rules != self.rules or not self.started:  # its rules read no servers
                self.http = self.parts.http_frontend(routes_mod.HTTP_FRONTEND, rules, self.settings)
                self.rules = rules
            for name in set(self.blocks) - set(self.routes):
                del self.blocks[name]
        for name in touched:
            route, servers = self.routes[name], self.layout[name]
            inputs = (route, servers)
            if name in self.blocks and _same(self.blocks[name][0], inputs):
                continue
            frontend = self.parts.frontend(route, self.settings) if route.port else ""
            backend = self.parts.backend(slots.backend(route, servers), slots.SPARE_ADDRESS, slots.SPARE_PORT,
                                         self.settings.passive_health)
            self.blocks[name] = (inputs, frontend, backend)


def _same(old: tuple[Route, Any], new: tuple[Route, Any]) -> bool:
    """Whether a block's inputs are unchanged: the same objects (the common case after a structural
    change elsewhere: unchanged routes and slots are kept as they were), else equal values."""
    return (old[0] is new[0] and old[1] is new[1]) or old == new


def _head_changed(old: Candidate | None, new: Candidate | None) -> bool:
    """Whether a key's route changed in more than its servers (or appeared, or went)."""
    if old is None or new is None:
        return old is not new
    if (old.route is None) != (new.route is None) or old.problems != new.problems:
        return True
    return old.route is not None and new.route is not None and head_of(old.route) != head_of(new.route)
