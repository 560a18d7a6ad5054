"""What the web view shows, kept up to date from one read of the pipeline at a time.

`TraceFeed.update(view)` judges every app with `observe.links.trace` (the function `wharf trace` calls;
nothing here judges) and keeps, per app, the last hour of requests per second against instances
with the autoscaler's decisions. The list page gets `rows()`, an app's page `detail(app)`; both are
plain JSON, built from what was read, with no credential in them (none is ever read into a `View`).
A read that fails keeps the last good state and says why (`error`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from observe.links import Trace, View, app_ids, trace

HOUR = 3600.0
SAMPLE_EVERY = 10.0  # seconds between two samples of an app whose figures did not change


@dataclass(frozen=True)
class Sample:
    """An app at one moment: requests per second through HAProxy (None until two reads), instances."""

    at: float
    rps: float | None
    instances: int
    healthy: int


@dataclass
class AppHour:
    """The last hour of one app: samples and the autoscaler's decisions."""

    samples: deque[Sample] = field(default_factory=deque)
    decisions: deque[dict[str, Any]] = field(default_factory=deque)
    requests: tuple[float, float] | None = None  # (when, HAProxy's req_tot summed) at the last read

    def to_json(self) -> dict[str, Any]:
        return {"samples": [[s.at, s.rps, s.instances, s.healthy] for s in self.samples],
                "decisions": list(self.decisions)}


def requests_total(view: View, found: Trace) -> float | None:
    """HAProxy's request counter (`req_tot`) summed over the app's servers in every HAProxy read."""
    link = next((link for link in found.links if link.name == "haproxy"), None)
    names = set((link.evidence.get("backends") if link else None) or ())
    counts = [row.number("req_tot") for backends in view.backends.values() for name in names
              for row in backends.get(name, [])]
    known = [c for c in counts if c is not None]
    return sum(known) if known else None


def _evidence(found: Trace, name: str) -> Mapping[str, Any]:
    return next((link.evidence for link in found.links if link.name == name), {})


def record(history: AppHour, view: View, found: Trace, keep: float = HOUR) -> bool:
    """Add what `view` shows of the app to its history; True if anything was added."""
    marathon = _evidence(found, "marathon")
    instances, healthy = int(marathon.get("instances") or 0), int(marathon.get("healthy") or 0)
    total, rps = requests_total(view, found), None
    if total is not None and history.requests is not None:
        then, before = history.requests
        if view.now > then and total >= before:  # a counter that went down: HAProxy restarted
            rps = round((total - before) / (view.now - then), 2)
    history.requests = None if total is None else (view.now, total)
    added = False
    last = history.samples[-1] if history.samples else None
    if last is None or view.now - last.at >= SAMPLE_EVERY or (last.instances, last.healthy) != (instances, healthy):
        history.samples.append(Sample(view.now, rps, instances, healthy))
        added = True
    decision = _evidence(found, "autoscale")
    if decision.get("at") and (not history.decisions or history.decisions[-1].get("at") != decision.get("at")):
        history.decisions.append({k: decision.get(k) for k in ("at", "action", "current", "target", "reason")})
        added = True
    while history.samples and history.samples[0].at < view.now - keep:
        history.samples.popleft()
    while history.decisions and float(history.decisions[0].get("at") or 0) < view.now - keep:
        history.decisions.popleft()
    return added


def row(found: Trace) -> dict[str, Any]:
    """One app of the list: each link's state and summary, and the first broken link."""
    broken = found.broken
    return {"app": found.app, "ok": broken is None, "broken": broken.name if broken else None,
            "check": broken.check if broken else None,
            "links": [{"name": link.name, "state": link.state, "summary": link.summary} for link in found.links]}


def render_record(view: View) -> dict[str, Any] | None:
    """The renderer's last render and apply of the HAProxy config, as the trace reads it."""
    config = view.config
    if config is None:
        return None
    applied = config.applied
    return {"path": config.path, "written_at": config.mtime, "applied_at": applied.at if applied else None,
            "how": applied.how if applied else None, "matches": config.matches}


class TraceFeed:
    """The latest traces of every app and their history, for any number of pages."""

    def __init__(self, keep: float = HOUR) -> None:
        self.keep = keep
        self.version = 0  # goes up whenever what a page shows changed
        self.read_at: float | None = None
        self.error: str | None = None
        self.traces: dict[str, Trace] = {}
        self.histories: dict[str, AppHour] = {}
        self.render: dict[str, Any] | None = None
        self._shown: Any = None

    def update(self, view: View) -> bool:
        """Judge every app in `view`; True (and `version` up) if anything a page shows changed."""
        self.traces = {app: trace(view, app) for app in app_ids(view)}
        added = False
        for app, found in self.traces.items():
            added |= record(self.histories.setdefault(app, AppHour()), view, found, self.keep)
        for gone in set(self.histories) - set(self.traces):
            del self.histories[gone]
        self.read_at, self.error, self.render = view.now, None, render_record(view)
        return self._bump(added)

    def failed(self, error: str) -> bool:
        """A read failed: keep the last good state, and say why on every page."""
        self.error = error
        return self._bump(False)

    def _bump(self, added: bool) -> bool:
        shown = ([t.to_json() for t in self.traces.values()], self.error, self.render)
        changed = added or shown != self._shown
        self._shown = shown
        if changed:
            self.version += 1
        return changed

    def rows(self) -> dict[str, Any]:
        """The list page: every app as a row of its links."""
        return {"version": self.version, "read_at": self.read_at, "error": self.error,
                "apps": [row(t) for t in self.traces.values()]}

    def detail(self, app: str) -> dict[str, Any]:
        """An app's page: its whole trace, its last hour, the last render of HAProxy's config."""
        found = self.traces.get(app)
        history = self.histories.get(app)
        return {"version": self.version, "read_at": self.read_at, "error": self.error, "app": app,
                "trace": found.to_json() if found else None, "history": history.to_json() if history else None,
                "render": self.render}
