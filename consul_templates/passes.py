"""Render every target, write what changed, apply it: membership at once, the files after.

`Renderer.feed(changed)` takes the services that changed: each is checked (`safe`), each built-in
HAProxy target's routes, slots and blocks are redone for them (`incremental`), and a change that only
moves servers (scale, health flip, drain) goes to the running HAProxy through the Runtime API there
and then. `Renderer.flush()` is the pass that follows: render what is not kept incrementally, validate,
write what changed, and reload when a route's structure changed. `Renderer.apply(snapshot)` is both,
for a whole catalog (`render once`). `consul_templates.daemon` runs them from the watches.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from consul_templates import apply, render, safe, slots, writer
from consul_templates.incremental import Incremental
from consul_templates.render import Rendered, RenderError, Template
from consul_templates.snapshot import Service, Snapshot
from wharf.haproxy import mark_applied, send, servers_state
from wharf.log import fields

log = logging.getLogger("wharf.render")

RENDERS = Counter("wharf_render_renders_total", "Templates rendered", ["target"])
WRITES = Counter("wharf_render_writes_total", "Files written because their bytes changed", ["target"])
RELOADS = Counter("wharf_render_reloads_total", "Reloads and commands run after a write", ["kind"])
RUNTIME_UPDATES = Counter("wharf_render_runtime_updates_total",
                          "Changes applied through the HAProxy Runtime API with no reload")
RUNTIME_COMMANDS = Counter("wharf_render_runtime_commands_total", "Runtime API commands sent")
VALIDATION_FAILURES = Counter("wharf_render_validation_failures_total",
                              "Renders refused by the template or by haproxy -c / nginx -t", ["target"])
APPLY_FAILURES = Counter("wharf_render_apply_failures_total", "Reloads or runtime updates that failed", ["kind"])
DROPS = Counter("wharf_render_dropped_total", "Catalog values left out because a config cannot hold them "
                "(each counted when it first appears)", ["what"])
DROPPED = Gauge("wharf_render_dropped_values", "Catalog values the last pass left out")
LAST_SUCCESS = Gauge("wharf_render_last_success_timestamp_seconds", "When every target was last rendered and applied")
_last_success = [0.0]
AGE = Gauge("wharf_render_last_success_age_seconds", "Seconds since every target was last rendered and applied")
AGE.set_function(lambda: time.time() - _last_success[0] if _last_success[0] else float("nan"))

MAX_SUSPECT_TRIES = 8


@dataclass(eq=False)
class Target:
    """One `--template T --dest FILE` pair and what was last written there."""

    template: Template
    dest: Path
    validate: writer.Validator | None
    last: Rendered | None = None  # what the file holds
    excluded: dict[str, Service | None] = field(default_factory=dict)  # left out: they break the config
    seed: slots.Layout | None = None  # slots read from the file found at start
    stale: bool = False  # the load balancer may not run what the file says (an apply failed): reload
    problems: set[render.Problem] = field(default_factory=set)  # the route problems last logged
    engine: Incremental | None = None  # the built-in HAProxy template, kept per route
    live: dict[str, tuple] | None = None  # the slots the running HAProxy holds, once known
    written: dict[str, Service] = field(default_factory=dict)  # the services the file was last made of
    behind: bool = False  # servers moved that the Runtime API was not sent: the pass sets every slot
    blocks: dict[str, Any] = field(default_factory=dict)  # the engine's blocks the file was written from

    def __post_init__(self) -> None:
        if self.template.spec == "haproxy" and self.seed is None:
            try:
                self.seed = slots.layout_from_config(self.dest.read_text())
            except (OSError, UnicodeDecodeError):
                self.seed = None

    @property
    def label(self) -> str:
        return self.dest.name


@dataclass(frozen=True)
class TargetOutcome:
    """What one pass did for one target."""

    dest: str
    changed: bool
    action: str  # "none", "runtime", "reload", "written", "failed"
    error: str | None = None
    excluded: tuple[str, ...] = ()


def validator_for(kind: str, nginx_prefix: str | None) -> writer.Validator | None:
    if kind == "haproxy":
        return writer.haproxy_validator()
    if kind == "nginx":
        return writer.nginx_validator(nginx_prefix)
    return None


class Renderer:
    """Renders, writes and applies every target; membership changes at once, the rest in passes."""

    def __init__(self, targets: Sequence[Target], settings: render.RenderSettings,
                 haproxy: apply.HAProxyControl | None = None, nginx_prefix: str | None = None,
                 exec_command: str | None = None, reload: bool = True) -> None:
        self.targets = list(targets)
        self.settings = settings
        self.haproxy = haproxy
        self.nginx_prefix = nginx_prefix
        self.exec_command = exec_command
        self.reload = reload
        self.lock = threading.Lock()  # one pass at a time: never two reloads at once
        self.state = threading.Lock()  # the services and the engines: held briefly, never while validating
        self.services: dict[str, Service] = {}  # every service, as safe to write
        self.kv: Mapping[str, str] = {}
        self.drops: dict[str, tuple[safe.Drop, ...]] = {}  # by service ("" for KV)
        self.dropped: set[safe.Drop] = set()  # the values left out now
        for target in self.targets:
            if target.template.spec == "haproxy":
                target.engine = Incremental(target.template, settings, layout=dict(target.seed or {}))

    # --- membership at once -------------------------------------------------------------------------

    def feed(self, changed: Mapping[str, Service | None], kv: Mapping[str, str] | None = None) -> bool:
        """Services that changed, as read (None: gone), and the KV pairs if they changed: check them,
        redo what depends on them, and send a change that only moves servers to HAProxy now. Whether
        a pass is needed soon: False when the running HAProxy has it all and only its file is behind."""
        with self.state:
            updates: dict[str, Service | None] = {}
            for name, service in changed.items():
                kept, drops = safe.clean_service(service) if service is not None else (None, ())
                self.drops[name] = drops
                if kept is None:
                    self.services.pop(name, None)
                else:
                    self.services[name] = kept
                updates[name] = kept
            if kv is not None:
                self.kv, self.drops[""] = safe.clean_kv(kv)
            self._report()
            soon = kv is not None
            for target in self.targets:
                if target.engine is None:
                    soon = soon or bool(updates)
                elif updates or not target.engine.started:
                    soon = not self._update(target, updates) or soon
            return soon

    def _update(self, target: Target, updates: Mapping[str, Service | None]) -> bool:
        """Update a target's engine; whether the running HAProxy got the change at once."""
        mine = {}
        for name, service in updates.items():
            if name in target.excluded and target.excluded[name] != service:
                del target.excluded[name]  # its data changed: give it another chance
            mine[name] = None if name in target.excluded else service
        assert target.engine is not None
        update = target.engine.update(mine)
        if target.live is None or not self._runtime_ok(target):
            target.behind = target.behind or bool(update.moved)  # not known yet what HAProxy runs
            return False
        running = [name for name in update.moved if name in target.live]  # the rest wait for a reload
        layout = target.engine.layout
        commands = slots.moves(target.live, layout, running)
        if not all(_is_ip(a) for a in slots.addresses(commands)):
            target.stale = True  # `set server` takes IP addresses only: the pass reloads
            return False
        try:
            RUNTIME_COMMANDS.inc(self.haproxy.runtime(commands))  # type: ignore[union-attr]
        except (apply.ApplyFailed, OSError) as exc:
            log.warning("runtime update refused: will reload", extra=fields(error=str(exc)))
            target.stale = True
            return False
        if commands:
            RUNTIME_UPDATES.inc()
        target.live.update({name: layout[name] for name in running})
        if len(running) < len(update.moved):
            target.behind = True  # backends the running HAProxy lacks: the pass reloads or sets them
        return not update.structural and len(running) == len(update.moved)

    def _runtime_ok(self, target: Target) -> bool:
        return bool(self.reload and self.haproxy is not None and target.template.kind == "haproxy")

    def _report(self) -> None:
        """One warning line per value left out, when it first is (not again on every pass while it
        stays registered), and the count of what is left out now."""
        current = {d for drops in self.drops.values() for d in drops}
        for drop in sorted(current - self.dropped, key=lambda d: (d.service, d.what, d.name)):
            DROPS.labels(drop.what).inc()
            log.warning("left out of the config", extra=fields(service=drop.service, what=drop.what,
                                                                name=drop.name, reason=drop.reason))
        self.dropped = current
        DROPPED.set(len(current))

    def snapshot(self) -> Snapshot:
        """Every service as safe to write, and the KV pairs."""
        with self.state:
            return Snapshot(tuple(self.services[n] for n in sorted(self.services)), self.kv)

    # --- passes -------------------------------------------------------------------------------------

    def apply(self, snapshot: Snapshot) -> list[TargetOutcome]:
        """A whole catalog: feed what differs from the last one, then one pass."""
        wanted = {s.name: s for s in snapshot.services}
        with self.state:
            known = set(self.services) | {n for n, d in self.drops.items() if d and n}
        changed = {n: wanted.get(n) for n in known | set(wanted)}
        self.feed(changed, snapshot.kv)
        return self.flush()

    def flush(self) -> list[TargetOutcome]:
        """One pass: render, write and apply each target."""
        with self.lock:
            outcomes = [self._target(t) for t in self.targets]
        if all(o.action != "failed" for o in outcomes):
            _last_success[0] = time.time()
            LAST_SUCCESS.set(_last_success[0])
        return outcomes

    def _to_write(self, target: Target) -> tuple[Rendered, writer.Validator | None, dict[str, Any]]:
        """What to write, how to check it, and the engine's blocks it is made of. A file that changes
        only some routes' blocks since the last good one is checked by `haproxy -c` of those blocks
        (`Incremental.partial`): at 5,000 routes, 10 ms where the whole file takes 400."""
        if target.engine is None or target.validate is None:
            return self._rendered(target), target.validate, {}
        with self.state:
            rendered, blocks = target.engine.rendered, dict(target.engine.blocks)
            changed = target.engine.changed_since(target.blocks)
            whole = not target.blocks or target.stale or len(changed) * 2 > len(blocks)
            partial = None if whole else target.engine.partial(changed)
        if partial is None:
            return rendered, target.validate, blocks
        check = target.validate
        return rendered, lambda _: writer.check(partial, target.dest.parent, target.dest.name, check), blocks

    def _rendered(self, target: Target) -> Rendered:
        if target.engine is not None:
            with self.state:
                return target.engine.rendered
        usable = self.snapshot().without(target.excluded)
        previous = target.last.layout if target.last else target.seed
        return render.render(target.template, usable, self.settings, previous)

    def _target(self, target: Target) -> TargetOutcome:
        blocks: dict[str, Any] = {}  # after leaving a culprit out: none known, the next file is checked whole
        try:
            with self.state:
                services = dict(self.services)
            rendered, validate, blocks = self._to_write(target)
            RENDERS.labels(target.label).inc()
            result = writer.write(target.dest, rendered.text, validate)
        except (writer.ValidationFailed, RenderError) as exc:
            VALIDATION_FAILURES.labels(target.label).inc()
            log.error("render refused", extra=fields(dest=str(target.dest), error=str(exc)))
            found = self._without_culprit(target)
            if found is None:
                return TargetOutcome(str(target.dest), False, "failed", str(exc))
            rendered, result = found
            blocks = {}
        target.written, target.blocks = services, blocks
        for problem in sorted(set(rendered.problems) - target.problems, key=lambda p: (p.route, p.reason)):
            log.warning("route problem", extra=fields(route=problem.route, reason=problem.reason))
        target.problems = set(rendered.problems)  # each logged once while it lasts
        if result.changed:
            WRITES.labels(target.label).inc()
            log.info("written", extra=fields(dest=str(target.dest), routes=len(rendered.routes)))
        previous, target.last = target.last, rendered
        action, error = ("written" if result.changed else "none"), None
        if self.reload:
            try:
                action = self._apply(target, previous, rendered, result.changed) or action
                if target.stale or result.changed or previous is None:
                    mark_applied(target.dest, action)  # what `wharf trace` compares the file with
                target.stale = False
            except (apply.ApplyFailed, OSError) as exc:
                APPLY_FAILURES.labels(target.template.kind).inc()
                log.error("apply failed", extra=fields(dest=str(target.dest), error=str(exc)))
                target.stale = True  # the next pass applies the file again, changed or not
                action, error = "failed", str(exc)
        return TargetOutcome(str(target.dest), result.changed, action, error, tuple(sorted(target.excluded)))

    def _without_culprit(self, target: Target) -> tuple[Rendered, writer.WriteResult] | None:
        """Find the services changed since the last good file that break it: each alone first, then
        all together; leave them out of this target until their data changes."""
        snapshot = self.snapshot().without(target.excluded)
        suspects = [s.name for s in snapshot.services if target.written.get(s.name) != s]
        tries = [[name] for name in suspects[:MAX_SUSPECT_TRIES]] + ([suspects] if len(suspects) > 1 else [])
        previous = target.last.layout if target.last else target.seed
        for names in tries:
            try:
                rendered = render.render(target.template, snapshot.without(names), self.settings, previous)
                result = writer.write(target.dest, rendered.text, target.validate)
            except (writer.ValidationFailed, RenderError):
                continue
            with self.state:
                for name in names:
                    target.excluded[name] = self.services.get(name)
                    log.error("service left out: it breaks the config",
                              extra=fields(dest=str(target.dest), service=name))
                if target.engine is not None:
                    target.engine.update({name: None for name in names})
                    rendered = target.engine.rendered
            return rendered, result
        return None

    def _apply(self, target: Target, previous: Rendered | None, rendered: Rendered, changed: bool) -> str | None:
        kind = target.template.kind
        if kind == "haproxy" and self.haproxy is not None:
            return self._apply_haproxy(target, previous, rendered, changed)
        if not changed and not target.stale:
            return None
        if kind == "nginx":
            apply.nginx_reload(target.dest, self.nginx_prefix)
            RELOADS.labels("nginx").inc()
            action = "reload"
        else:
            action = "written"
        self._exec()
        return action

    def _apply_haproxy(self, target: Target, previous: Rendered | None, rendered: Rendered,
                       changed: bool) -> str | None:
        """Reload when the structure changed (or an earlier apply failed), then set every slot as the
        engine holds it now; else the Runtime API already moved the servers."""
        assert self.haproxy is not None
        structural = (previous is None or target.stale or target.engine is None
                      or slots.structure(previous.routes, previous.layout)
                      != slots.structure(rendered.routes, rendered.layout))
        if target.engine is not None and target.live is not None and not structural:
            if target.behind:
                self._sync(target)
            if changed:
                log.info("runtime update", extra=fields(dest=str(target.dest)))
                self._exec()
                return "runtime"
            return None
        if changed or target.stale:
            pid = self.haproxy.reload()
            RELOADS.labels("haproxy").inc()
            log.info("reloaded", extra=fields(dest=str(target.dest), worker=pid))
            action: str | None = "reload"
        else:
            action = None  # the file was already right: see whether the running slots are
        if target.engine is not None and self._sync(target):
            action = action or "runtime"
        if action:
            self._exec()
        return action

    def _sync(self, target: Target) -> bool:
        """Set every running slot as the engine holds it now (HAProxy's own `show servers state` says
        what it runs); whether any command was needed."""
        assert self.haproxy is not None and target.engine is not None
        actual = servers_state(send(self.haproxy.admin_socket, "show servers state"))
        running = {backend for backend, _ in actual}
        with self.state:
            target.behind = False
            layout = {name: servers for name, servers in target.engine.layout.items() if name in running}
            commands = slots.reconcile(actual, layout)
            if commands:
                RUNTIME_COMMANDS.inc(self.haproxy.runtime(commands))
            target.live = layout
        return bool(commands)

    def _exec(self) -> None:
        if self.exec_command:
            apply.run_exec(self.exec_command)
            RELOADS.labels("exec").inc()


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False
