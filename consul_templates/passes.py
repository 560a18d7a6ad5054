"""The thin loops: read the catalog, render every target, write what changed, apply it.

`Renderer.apply(snapshot)` is one pass over the targets (used by `once` and by the daemon);
`RenderDaemon` runs it on the shared daemon skeleton whenever the watches report a change and the
quiescence timer fires.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge

from consul_templates import apply, render, safe, slots, watch, writer
from consul_templates.quiescence import Quiescence
from consul_templates.render import Rendered, RenderError, Template
from consul_templates.snapshot import Service, ServiceInstance, Snapshot, paused_gc
from wharf.consul_http import address_of
from wharf.daemon import Daemon
from wharf.errors import cannot_reach
from wharf.log import fields
from wharf.retry import Retry
from wharf.watch import ConsulWatch

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


@dataclass
class Target:
    """One `--template T --dest FILE` pair and what was last written there."""

    template: Template
    dest: Path
    validate: writer.Validator | None
    last: Rendered | None = None
    last_snapshot: Snapshot | None = None
    excluded: dict[str, Service] = field(default_factory=dict)
    running: Rendered | None = None  # a render whose slots were sent to HAProxy during this pass
    seed: slots.Layout | None = None  # slots read from the file found at start
    stale: bool = False  # the file is newer than what the load balancer runs (an apply failed)
    problems: set[render.Problem] = field(default_factory=set)  # the route problems last logged

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


def hold_over(previous: Snapshot | None, current: Snapshot) -> Snapshot:
    """`current` plus every instance of `previous` it lacks: what to serve while Consul refills after a
    restart, so a half-empty catalog never replaces a full one."""
    if previous is None:
        return current
    merged: dict[tuple[str, str, str], ServiceInstance] = {(i.service, i.node, i.id): i for i in previous.instances}
    merged.update({(i.service, i.node, i.id): i for i in current.instances})
    return Snapshot.of(merged.values(), {**previous.kv, **current.kv})


class Renderer:
    """Renders, writes and applies every target for a snapshot."""

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
        self.dropped: set[safe.Drop] = set()  # the values the last pass left out

    def apply(self, snapshot: Snapshot) -> list[TargetOutcome]:
        """One pass: clean the snapshot, then render, write and apply each target."""
        clean, drops = safe.clean(snapshot)
        self._report(drops)
        with self.lock:
            outcomes = [self._target(t, clean) for t in self.targets]
        if all(o.action != "failed" for o in outcomes):
            _last_success[0] = time.time()
            LAST_SUCCESS.set(_last_success[0])
        return outcomes

    def _report(self, drops: Iterable[safe.Drop]) -> None:
        """One warning line per value left out, when it first is (not again on every pass while it
        stays registered), and the count of what is left out now."""
        current = set(drops)
        for drop in sorted(current - self.dropped, key=lambda d: (d.service, d.what, d.name)):
            DROPS.labels(drop.what).inc()
            log.warning("left out of the config", extra=fields(service=drop.service, what=drop.what,
                                                                name=drop.name, reason=drop.reason))
        self.dropped = current
        DROPPED.set(len(current))

    def _render(self, target: Target, snapshot: Snapshot) -> tuple[Rendered, writer.WriteResult]:
        previous = target.last.layout if target.last else target.seed
        rendered = render.render(target.template, snapshot, self.settings, previous)
        RENDERS.labels(target.label).inc()
        self._runtime_first(target, rendered)
        return rendered, writer.write(target.dest, rendered.text, target.validate)

    def _runtime_first(self, target: Target, rendered: Rendered) -> None:
        """A membership-only change to IP addresses reaches the running HAProxy before the file is
        validated and written (the slots' structure was validated with the last file; `set server`
        takes IP addresses only). The file is still written, validated, right after."""
        base = target.running or target.last
        if not (self.reload and self.haproxy and target.template.spec == "haproxy" and base):
            return
        decision = slots.decide(base.routes, base.layout, rendered.routes, rendered.layout)
        if not decision.runtime_only or not all(_is_ip(a) for a in slots.addresses(decision.commands)):
            return
        try:
            RUNTIME_COMMANDS.inc(self.haproxy.runtime(decision.commands))
            target.running = rendered
        except (apply.ApplyFailed, OSError) as exc:
            log.warning("runtime update refused: will reload", extra=fields(error=str(exc)))

    def _target(self, target: Target, snapshot: Snapshot) -> TargetOutcome:
        for name, svc in list(target.excluded.items()):
            if snapshot.service(name) != svc:
                del target.excluded[name]  # its data changed: give it another chance
        usable = snapshot.without(target.excluded)
        try:
            rendered, result = self._render(target, usable)
        except (writer.ValidationFailed, RenderError) as exc:
            VALIDATION_FAILURES.labels(target.label).inc()
            log.error("render refused", extra=fields(dest=str(target.dest), error=str(exc)))
            found = self._without_culprit(target, usable)
            if found is None:
                self._undo_runtime(target)
                return TargetOutcome(str(target.dest), False, "failed", str(exc))
            culprits, rendered, result = found
            for name in culprits:
                target.excluded[name] = usable.service(name)  # type: ignore[assignment]
                log.error("service left out: it breaks the config",
                          extra=fields(dest=str(target.dest), service=name, error=str(exc)))
            usable = usable.without(culprits)
        for problem in sorted(set(rendered.problems) - target.problems, key=lambda p: (p.route, p.reason)):
            log.warning("route problem", extra=fields(route=problem.route, reason=problem.reason))
        target.problems = set(rendered.problems)  # each logged once while it lasts
        if result.changed:
            WRITES.labels(target.label).inc()
            log.info("written", extra=fields(dest=str(target.dest), routes=len(rendered.routes)))
        previous = target.last
        target.last, target.last_snapshot = rendered, usable
        action = "written" if result.changed else "none"
        error = None
        if self.reload:
            try:
                action = self._apply(target, None if target.stale else previous, rendered,
                                     result.changed or target.stale) or action
                target.stale = False
            except (apply.ApplyFailed, OSError) as exc:
                APPLY_FAILURES.labels(target.template.kind).inc()
                log.error("apply failed", extra=fields(dest=str(target.dest), error=str(exc)))
                target.stale = True  # the next pass applies the file again, changed or not
                action, error = "failed", str(exc)
        return TargetOutcome(str(target.dest), result.changed, action, error, tuple(sorted(target.excluded)))

    def _undo_runtime(self, target: Target) -> None:
        """Put the running slots back as the last good file has them, after a runtime-first update
        whose file then could not be written."""
        running, target.running = target.running, None
        if running is None or target.last is None or self.haproxy is None:
            return
        back = slots.decide(running.routes, running.layout, target.last.routes, target.last.layout)
        try:
            self.haproxy.runtime(back.commands)
        except (apply.ApplyFailed, OSError) as exc:
            log.warning("could not undo a runtime update", extra=fields(error=str(exc)))

    def _without_culprit(self, target: Target, snapshot: Snapshot
                         ) -> tuple[list[str], Rendered, writer.WriteResult] | None:
        """Find the changed services that break the render: each alone first, then all together."""
        before = {s.name: s for s in target.last_snapshot.services} if target.last_snapshot else {}
        suspects = [s.name for s in snapshot.services if before.get(s.name) != s]
        tries = [[name] for name in suspects[:MAX_SUSPECT_TRIES]] + ([suspects] if len(suspects) > 1 else [])
        for names in tries:
            try:
                rendered, result = self._render(target, snapshot.without(names))
            except (writer.ValidationFailed, RenderError):
                continue
            return names, rendered, result
        return None

    def _apply(self, target: Target, previous: Rendered | None, rendered: Rendered, changed: bool) -> str | None:
        kind = target.template.kind
        if kind == "haproxy" and self.haproxy is not None:
            return self._apply_haproxy(target, previous, rendered, changed)
        if not changed:
            return None
        if kind == "nginx":
            apply.nginx_reload(target.dest, self.nginx_prefix)
            RELOADS.labels("nginx").inc()
            action = "reload"
        else:
            action = "written"
        if self.exec_command:
            apply.run_exec(self.exec_command)
            RELOADS.labels("exec").inc()
        return action

    def _apply_haproxy(self, target: Target, previous: Rendered | None, rendered: Rendered,
                       changed: bool) -> str | None:
        assert self.haproxy is not None
        running, target.running = target.running, None
        if running is rendered:
            RUNTIME_UPDATES.inc()
            log.info("runtime update", extra=fields(dest=str(target.dest)))
            self._exec()
            return "runtime"
        if not changed:
            return None
        base = running or previous  # what the running HAProxy's slots hold now
        builtin = target.template.spec == "haproxy"
        decision = (slots.decide(base.routes, base.layout, rendered.routes, rendered.layout)
                    if base is not None and builtin else slots.ApplyPlan(True, ()))
        if decision.runtime_only:
            try:
                RUNTIME_COMMANDS.inc(self.haproxy.runtime(decision.commands))
                RUNTIME_UPDATES.inc()
                log.info("runtime update", extra=fields(dest=str(target.dest), commands=len(decision.commands)))
                self._exec()
                return "runtime"
            except apply.ApplyFailed as exc:
                log.warning("runtime update refused: reloading", extra=fields(error=str(exc)))
        elif decision.commands:
            try:  # bring the running slots in line first, so the state saved for the reload matches
                self.haproxy.runtime(decision.commands)
            except apply.ApplyFailed as exc:
                log.warning("runtime update before reload refused", extra=fields(error=str(exc)))
        pid = self.haproxy.reload()
        RELOADS.labels("haproxy").inc()
        log.info("reloaded", extra=fields(dest=str(target.dest), worker=pid))
        self._exec()
        return "reload"

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


def read_snapshot(client: Any, kv_prefixes: Iterable[str] = ()) -> Snapshot:
    """One full read of the catalog (raises if Consul cannot be read)."""
    nodes, checks, kv = watch.fetch_catalog(client, kv_prefixes)
    return Snapshot.from_catalog(nodes, checks, kv)


class RenderDaemon(Daemon):
    """`wharf render run`: watch, wait for quiescence, render, write, apply; forever."""

    interval = 0.0
    backoff = Retry(delay=0.1, max_delay=0.5, jitter=0.2)

    def __init__(self, renderer: Renderer, client_factory: Callable[[], Any], kv_prefixes: Sequence[str] = (),
                 wait: tuple[float, float] = (0.0, 0.0), grace: float = 30.0,
                 metrics_port: int | None = None) -> None:
        super().__init__("render", metrics_port=metrics_port)
        self.renderer = renderer
        self.client_factory = client_factory
        self.client: Any = None
        self.kv_prefixes = tuple(kv_prefixes)
        self.quiet = Quiescence(*wait)
        self.grace = grace
        self.events: set[str] = set()
        self.event = threading.Event()
        self.events_lock = threading.Lock()
        self.watches: list[ConsulWatch] = []
        self.recovering_until: float | None = None
        self.retry_at: float | None = None
        self.snapshot: Snapshot | None = None
        self.address = "its address"  # Consul's, known once the client is made

    def _notify(self, name: str, kind: str) -> None:
        with self.events_lock:
            self.events.add(kind)
        self.event.set()

    def _start(self) -> None:
        self.client = self.client_factory()
        fetchers = watch.catalog_fetchers(self.client_factory, self.kv_prefixes)
        self.address = address_of(self.client)
        self.watches = [ConsulWatch(name, fetch, self._notify, address=self.address, logger=watch.log,
                                    gauge=watch.BLOCKING) for name, fetch in fetchers.items()]
        for w in self.watches:
            w.start()
        self.retry_at = time.monotonic()  # the first render happens at once, as consul-template's

    def run_cycle(self) -> None:
        if not self.watches:
            self._start()
        now = time.monotonic()
        deadlines = [t for t in (self.quiet.fire_at, self.retry_at, self.recovering_until) if t is not None]
        timeout = min([0.5, *(max(0.0, t - now) for t in deadlines)])
        if self.event.wait(timeout):
            self.event.clear()
        with self.events_lock:
            kinds, self.events = self.events, set()
        now = time.monotonic()
        if kinds & {"up", "reset"}:
            self.recovering_until = now + self.grace
            log.info("consul came back: holding instances it lacks", extra=fields(for_seconds=self.grace))
        if kinds & {"change", "up", "reset"}:
            self.quiet.change(now)
        if self.recovering_until is not None and now >= self.recovering_until:
            self.recovering_until = None
            self.quiet.change(now)  # render the catalog as it now is
        due = self.quiet.tick(now)
        if self.retry_at is not None and now >= self.retry_at:
            due, self.retry_at = True, None
        if due and not self.stopping:
            self._render_now()

    def _render_now(self) -> None:
        with paused_gc():  # a pass makes thousands of acyclic values: one collection after it, not several
            self._render_pass()

    def _render_pass(self) -> None:
        try:
            current = read_snapshot(self.client, self.kv_prefixes)
        except Exception as exc:  # keep serving the last good config; try again soon
            log.warning("catalog read failed: keeping the last config",
                        extra=fields(error=cannot_reach("Consul", self.address, exc)))
            self.retry_at = time.monotonic() + 0.5
            return
        if self.recovering_until is not None:
            current = hold_over(self.snapshot, current)
        self.snapshot = current
        outcomes = self.renderer.apply(current)
        if any(o.action == "failed" for o in outcomes):
            self.retry_at = time.monotonic() + 2.0

    def close(self) -> None:
        for w in self.watches:
            w.stop()
