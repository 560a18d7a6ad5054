"""Templates are files rendered by Jinja with `StrictUndefined` (user templates in its sandbox): pure,
no I/O but loading.

`load_template(spec)` takes `haproxy`, `nginx` (the built-in templates) or a path, and rejects a
broken template with its file and line. `render(template, snapshot, settings)` returns the text and
what it was made of (routes, slot layout), so the applier can decide between a Runtime API update and
a reload.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from consul_templates import routes, slots
from consul_templates.routes import Problem, Route
from consul_templates.snapshot import Service, ServiceInstance, Snapshot, paused_gc
from wharf.contracts.marathon_lb import DEFAULT_RETRY_ON
from wharf.errors import BadInput, Failure

TEMPLATE_DIR = Path(__file__).parent / "templates"
BUILTIN = {"haproxy": TEMPLATE_DIR / "haproxy.cfg.j2", "nginx": TEMPLATE_DIR / "nginx.conf.j2"}


class RenderError(Failure):
    """A template failed while rendering (an undefined name, a bad filter argument): file and line."""


@dataclass(frozen=True)
class RenderSettings:
    """What the templates need besides the catalog: where things listen and live."""

    bind: str = "127.0.0.1"
    http_port: int = 80
    stats_port: int | None = None
    admin_socket: str = "/run/haproxy/admin.sock"
    state_file: str = "/var/lib/haproxy/server-state"
    nginx_port: int = 80
    groups: tuple[str, ...] = ()
    retry_on: str = DEFAULT_RETRY_ON  # HAProxy `retry-on` for every backend a label does not set
    passive_health: bool = False  # a health check on every filled slot, marked down on a connection error

    @property
    def reserved_ports(self) -> tuple[int, ...]:
        return tuple(p for p in (self.http_port, self.stats_port) if p)


@dataclass(frozen=True)
class Template:
    """A loaded template: its kind (`haproxy`, `nginx` or `plain`: how it is validated and applied)."""

    spec: str
    path: Path
    kind: str
    jinja: jinja2.Template = field(compare=False, repr=False)


@dataclass(frozen=True)
class Rendered:
    """A render's text and what it was made of."""

    text: str
    routes: tuple[Route, ...]
    layout: slots.Layout
    problems: tuple[Problem, ...] = ()


def kind_of(spec: str, path: Path) -> str:
    """`haproxy` or `nginx` for the built-ins and for files whose name says so, else `plain`."""
    if spec in BUILTIN:
        return spec
    name = path.name.lower()
    return "haproxy" if "haproxy" in name else "nginx" if "nginx" in name else "plain"


# --- helper filters, for built-in and user templates alike --------------------------------------

def by_tag(items: Iterable[Any], tag: str) -> list[Any]:
    """Services or instances carrying `tag`."""
    return [i for i in items if tag in i.tags]


def by_meta(items: Iterable[Any], key: str, value: str | None = None) -> list[Any]:
    """Instances (or services with an instance) whose Meta has `key` (equal to `value`, if given)."""
    def has(inst: ServiceInstance) -> bool:
        return key in inst.meta and (value is None or inst.meta[key] == value)
    return [i for i in items if (any(has(x) for x in i.instances) if isinstance(i, Service) else has(i))]


def passing(items: Iterable[Any]) -> list[Any]:
    """Passing instances; for services, those with a passing instance, keeping only those instances."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, Service):
            if item.passing:
                out.append(Service(item.name, item.passing))
        elif item.passing:
            out.append(item)
    return out


class _Sandbox(SandboxedEnvironment):
    """Jinja's sandbox, with a fast path for the room's own frozen value types: their public
    attributes are plain data (or pure properties), so only names starting with `_` need refusing;
    anything else goes through the sandbox's full checks."""

    trusted: frozenset[type] = frozenset()

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) in self.trusted and not attribute.startswith("_"):
            try:
                return getattr(obj, attribute)
            except AttributeError:
                pass
        return super().getattr(obj, attribute)


_Sandbox.trusted = frozenset({ServiceInstance, Service, Snapshot, Route, slots.Slot, slots.Backend, RenderSettings})


class _Builtin(jinja2.Environment):
    """The built-in templates' environment: an attribute is read by Python's own `getattr`, in C
    (they only read attributes the context's types have; a missing one is a bug, raised as such)."""

    getattr = staticmethod(getattr)  # type: ignore[assignment]


def _environment(directory: Path, sandboxed: bool = True) -> jinja2.Environment:
    """The environment a template renders in: Jinja's sandbox for user templates; the built-in
    templates, the room's own code, render without it (the catalog only ever reaches them as values,
    never as template code, so the sandbox would guard nothing there but costs a third of the time)."""
    env = (_Sandbox if sandboxed else _Builtin)(  # a user template may import the built-in ones' parts
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(directory)),
                                    jinja2.FileSystemLoader(str(TEMPLATE_DIR))]),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(by_tag=by_tag, by_meta=by_meta, passing=passing)
    return env


def load_template(spec: str) -> Template:
    """Load `haproxy`, `nginx` or a template file; a missing or broken one is bad input (file:line)."""
    path = BUILTIN.get(spec) or Path(spec).expanduser()
    if not path.is_file():
        raise BadInput(f"--template {spec}: no such file (or use haproxy / nginx)")
    try:
        jinja = _environment(path.resolve().parent, sandboxed=spec not in BUILTIN).get_template(path.name)
    except jinja2.TemplateSyntaxError as exc:
        raise BadInput(f"{exc.filename or path}:{exc.lineno}: {exc.message}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read: {exc}") from None
    return Template(spec, path, kind_of(spec, path), jinja)


def context(snapshot: Snapshot, settings: RenderSettings, previous: slots.Layout | None = None
            ) -> tuple[dict[str, Any], tuple[routes.Route, ...], slots.Layout, tuple[routes.Problem, ...]]:
    """The template context (`services`, `kv`, `routes`, `backends`, `http_rules`, `settings`, ...)."""
    found, problems = routes.build_routes(snapshot, settings.groups, settings.reserved_ports)
    layout = slots.assign(found, previous)
    ctx: dict[str, Any] = {
        "services": snapshot.services,
        "kv": snapshot.kv,
        "routes": found,
        "backends": slots.backends(found, layout),
        "http_rules": routes.http_rules(found),
        "http_frontend": routes.HTTP_FRONTEND,
        "settings": settings,
        "spare_address": slots.SPARE_ADDRESS,
        "spare_port": slots.SPARE_PORT,
    }
    return ctx, found, layout, problems


def render(template: Template, snapshot: Snapshot, settings: RenderSettings,
           previous: slots.Layout | None = None) -> Rendered:
    """Render one template over a snapshot that has already been through `safe.clean`."""
    with paused_gc():
        ctx, found, layout, problems = context(snapshot, settings, previous)
        try:
            text = template.jinja.render(ctx)
        except Exception as exc:  # whatever the template did: an undefined name, a bad filter argument, ...
            raise RenderError(f"{template.path}:{_line_of(exc, template.path)}: {exc}") from None
    return Rendered(text, found, layout, problems)


def _line_of(exc: BaseException, path: Path) -> str:
    """The template line a render error happened on, from Jinja's rewritten traceback."""
    line = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).name == path.name:
            line = str(frame.lineno)
    return line


def settings_of(values: Mapping[str, Any]) -> RenderSettings:
    return RenderSettings(**{k: v for k, v in values.items() if k in RenderSettings.__dataclass_fields__})
