"""The deploy loop: send a plan's changes in dependency order, follow each deployment, roll back.

An app is sent once every app it waits for (`AppChange.after`) has finished deploying and is
healthy; apps that wait for nothing still pending go out together. Deployments are followed on
Marathon's event stream (`deployment_success` / `deployment_failed`), with `/v2/deployments`
polled as well (often when the stream is down), so a lost event only costs a poll interval.

A deployment that fails, or is not done and healthy within `timeout`, is rolled back: Marathon's
own rollback (`DELETE /v2/deployments/{id}`) when it still runs, else a PUT of the previous
version (a new app is deleted). Nothing else is sent after a failure; what is in flight finishes.
A blue/green change runs on a thread of its own (`bluegreen`, `marathon_apps.bluegreen_run`), which
removes a new colour that does not get healthy itself: that is its rollback.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from marathon_apps.client import Marathon, MarathonError
from marathon_apps.plan import AppChange, DeployPlan
from marathon_apps.spec import COMMIT_LABEL
from wharf.errors import Failure, TimedOut, describe
from wharf.log import fields
from wharf.marathon import healthy_counts as healthy_counts  # re-exported for the room
from wharf.retry import Retry
from wharf.wait import wait_until
from wharf.watch import Stream

log = logging.getLogger("wharf.apps.deploy")
DEPLOYMENT_EVENTS = ("deployment_success", "deployment_failed", "deployment_info", "event_stream_attached")
RECONNECT = Retry(delay=2.0, backoff=1.0, max_delay=2.0, jitter=0.0)  # the event stream, every 2 s while lost


class RolledBack(Failure):
    """A change that failed and undid itself (a blue/green deploy whose new colour was removed)."""


class Reporter(Protocol):
    """Where progress goes (a rich display, plain lines, nothing)."""

    def update(self, app_id: str, state: str, detail: str = "") -> None: ...


@dataclass
class Outcome:
    """What a deploy did, app by app."""

    deployed: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    not_attempted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_attempted

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "deployed": self.deployed, "rolled_back": self.rolled_back, "failed": self.failed,
                "not_attempted": self.not_attempted, "unchanged": self.unchanged}


def ready(app: dict[str, Any] | None) -> bool:
    """Done deploying and healthy: no deployment holds it and every wanted instance is healthy."""
    if app is None:
        return False
    healthy, wanted = healthy_counts(app)
    return not app.get("deployments") and healthy >= wanted and int(app.get("tasksRunning", 0) or 0) >= wanted


def request_body(change: AppChange, commit: str | None) -> dict[str, Any]:
    """What to send for a create or update: the definition, with the commit label if known."""
    assert change.desired is not None
    body = dict(change.desired)
    labels = dict(body.get("labels") or {})
    if commit:
        labels[COMMIT_LABEL] = commit
    elif change.live and COMMIT_LABEL in (change.live.get("labels") or {}):
        labels[COMMIT_LABEL] = change.live["labels"][COMMIT_LABEL]
    body["labels"] = labels
    return body


class EventFeed:
    """Marathon's event stream read on a thread into a queue; reconnects while open. The stream is
    an optimisation (polling goes on), so its loss is logged at debug level only."""

    def __init__(self, client: Marathon) -> None:
        self.client = client
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.attached = threading.Event()
        self._stream = Stream("marathon-events", lambda: self.client.events(DEPLOYMENT_EVENTS), self._received,
                              on_lost=lambda _: self.attached.clear(), backoff=RECONNECT, system="Marathon",
                              address=str(getattr(client, "shown", "its address")), logger=log, level=logging.DEBUG)

    def start(self, wait: float = 3.0) -> EventFeed:
        self._stream.start()
        self.attached.wait(wait)
        return self

    def _received(self, event: dict[str, Any]) -> None:
        if event.get("eventType") == "event_stream_attached":
            self.attached.set()
        self.events.put(event)

    def close(self) -> None:
        self._stream.stop()


@dataclass
class _Run:
    change: AppChange
    started: float
    deployment: str | None = None
    ended: bool = False
    failed_reason: str | None = None
    rolled_back: bool = False  # a blue/green change removed its new colour


class Deployer:
    """Runs one plan against one Marathon."""

    def __init__(self, client: Marathon, reporter: Reporter, timeout: float = 300.0, commit: str | None = None,
                 poll_interval: float = 1.0, clock: Callable[[], float] = time.monotonic,
                 use_events: bool = True, bluegreen: Callable[[AppChange], str] | None = None) -> None:
        self.client, self.reporter, self.timeout, self.commit = client, reporter, timeout, commit
        self.poll_interval, self.clock, self.use_events = poll_interval, clock, use_events
        self.bluegreen = bluegreen

    def run(self, plan: DeployPlan) -> Outcome:
        outcome = Outcome(unchanged=[c.app_id for c in plan.changes if c.kind == "unchanged"])
        pending = plan.todo()
        if not pending:
            return outcome
        feed = EventFeed(self.client).start() if self.use_events else None
        try:
            self._loop(pending, outcome, feed)
        finally:
            if feed is not None:
                feed.close()
        return outcome

    # --- the loop -----------------------------------------------------------------------------

    def _loop(self, pending: list[AppChange], outcome: Outcome, feed: EventFeed | None) -> None:
        done: set[str] = set()
        running: dict[str, _Run] = {}
        for change in pending:
            self.reporter.update(change.app_id, "waiting", f"{change.kind}, after " + ", ".join(change.after)
                                 if change.after else change.kind)
        last_poll = 0.0
        stopped = False
        while pending or running:
            if not stopped:
                for change in [c for c in pending if all(a in done for a in c.after)]:
                    pending.remove(change)
                    run = self._start(change)
                    if run.failed_reason is not None:
                        outcome.failed[change.app_id] = run.failed_reason
                        self.reporter.update(change.app_id, "failed", run.failed_reason)
                        stopped = True
                    else:
                        running[change.app_id] = run
            if stopped:
                for change in pending:
                    outcome.not_attempted.append(change.app_id)
                    self.reporter.update(change.app_id, "not attempted")
                pending = []
            if not running:
                break
            self._wait_events(running, feed)
            streaming = feed is not None and feed.attached.is_set()
            if self.clock() - last_poll >= (self.poll_interval * 3 if streaming else self.poll_interval):
                last_poll = self.clock()
                self._poll(running)
            for app_id, run in list(running.items()):
                result = self._check(run)
                if result is None:
                    continue
                del running[app_id]
                if result == "ok":
                    done.add(app_id)
                    outcome.deployed.append(app_id)
                    self.reporter.update(app_id, "deployed", f"in {self.clock() - run.started:.1f}s")
                else:
                    stopped = True
                    outcome.failed[app_id] = result
                    self.reporter.update(app_id, "failed", result)
                    if self._rollback(run):
                        outcome.rolled_back.append(app_id)

    def _start(self, change: AppChange) -> _Run:
        run = _Run(change, self.clock())
        if change.kind == "bluegreen":
            return self._start_bluegreen(run)
        try:
            if change.kind == "delete":
                run.deployment = self.client.delete_app(change.app_id)
            elif change.kind == "scale":
                assert change.desired is not None
                run.deployment = self.client.patch_app(change.app_id, {"instances": change.desired.get("instances", 1)})
            else:
                run.deployment = self.client.put_app(change.app_id, request_body(change, self.commit))
        except MarathonError as exc:
            run.failed_reason = f"Marathon refused it: {exc}"
            return run
        self.reporter.update(change.app_id, "deploying", f"{change.kind}, deployment {run.deployment}")
        log.debug("sent", extra=fields(app=change.app_id, action=change.kind, deployment=run.deployment))
        return run

    def _start_bluegreen(self, run: _Run) -> _Run:
        """Run a blue/green change on a thread; its outcome lands in `run`."""
        bluegreen = self.bluegreen
        if bluegreen is None:
            run.failed_reason = "a blue/green deploy needs Consul and HAProxy to watch; not given"
            return run
        change = replace(run.change, desired=request_body(run.change, self.commit))

        def work() -> None:
            try:
                self.reporter.update(change.app_id, "deploying", bluegreen(change))
            except Exception as exc:  # noqa: BLE001 - any failure is this change's outcome
                run.rolled_back = isinstance(exc, RolledBack)
                run.failed_reason = describe(exc)
            finally:
                run.ended = True

        self.reporter.update(change.app_id, "deploying", f"bluegreen -> {change.desired['id']}")  # type: ignore[index]
        threading.Thread(target=work, name=f"bluegreen {change.app_id}", daemon=True).start()
        return run

    def _wait_events(self, running: dict[str, _Run], feed: EventFeed | None) -> None:
        if feed is None:
            time.sleep(self.poll_interval / 2)
            return
        by_deployment = {r.deployment: r for r in running.values()}
        try:
            event = feed.events.get(timeout=self.poll_interval / 2)
        except queue.Empty:
            return
        while True:
            run = by_deployment.get(event.get("id"))
            if run is not None and event.get("eventType") == "deployment_success":
                run.ended = True
            elif run is not None and event.get("eventType") == "deployment_failed":
                run.ended, run.failed_reason = True, f"deployment failed: {event.get('reason') or 'no reason given'}"
            try:
                event = feed.events.get_nowait()
            except queue.Empty:
                return

    def _poll(self, running: dict[str, _Run]) -> None:
        try:
            live = {d.get("id") for d in self.client.deployments()}
        except Exception as exc:  # noqa: BLE001 - keep following; the deadline still holds
            log.warning("cannot list deployments", extra=fields(error=str(exc)))
            return
        for run in running.values():
            if run.change.kind != "bluegreen" and run.deployment not in live:
                run.ended = True

    def _check(self, run: _Run) -> str | None:
        """None while in progress, "ok" when deployed and healthy, else why it failed."""
        change = run.change
        if run.failed_reason is not None:
            return run.failed_reason
        if change.kind == "bluegreen":  # its own thread keeps the time
            return "ok" if run.ended else None
        late = self.clock() - run.started > self.timeout
        if run.ended:
            try:
                app = self.client.app(change.app_id)
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot read app", extra=fields(app=change.app_id, error=str(exc)))
                app = None
            if change.kind == "delete" and app is None:
                return "ok"
            if change.kind != "delete" and app is not None:
                healthy, wanted = healthy_counts(app)
                self.reporter.update(change.app_id, "deploying", f"{healthy}/{wanted} healthy")
                if ready(app):
                    return "ok"
        if late:
            return f"not deployed and healthy within {self.timeout:g}s"
        return None

    # --- rollback -------------------------------------------------------------------------------

    def _rollback(self, run: _Run) -> bool:
        """Put the app back as it was before this deploy; True once Marathon runs it so again."""
        change = run.change
        if change.kind == "delete":
            return False  # a deletion is not undone; its app's definition is gone
        if change.kind == "bluegreen":
            return run.rolled_back
        self.reporter.update(change.app_id, "rolling back")
        try:
            if change.live is None:
                self.client.delete_app(change.app_id, force=True)
                target = "deleted (it was new)"
            else:
                rollback = self.client.cancel_deployment(run.deployment) if run.deployment and not run.ended else None
                if rollback is None:
                    self.client.patch_app(change.app_id, {"version": change.live["version"]}, force=True)
                target = f"version {change.live.get('version')}, {change.live.get('instances', 1)} instances"
        except MarathonError as exc:
            self.reporter.update(change.app_id, "rollback failed", str(exc))
            return False
        try:
            wait_until(lambda: self._settled_back(change), max(60.0, self.timeout), self.poll_interval / 2,
                       f"{change.app_id} to settle back", clock=self.clock)
        except TimedOut:
            self.reporter.update(change.app_id, "rollback failed", "Marathon did not settle back in time")
            return False
        self.reporter.update(change.app_id, "rolled back", target)
        log.info("rolled back", extra=fields(app=change.app_id, to=target))
        return True

    def _settled_back(self, change: AppChange) -> bool:
        """Whether Marathon runs the app as it was before `change` (or has it gone, if it was new)."""
        app = self.client.app(change.app_id)
        if change.live is None:
            return app is None
        return app is not None and not app.get("deployments") and _same_config(app, change.live) \
            and int(app.get("instances", 1)) == int(change.live.get("instances", 1))


def _same_config(app: dict[str, Any], previous: dict[str, Any]) -> bool:
    """Whether `app` runs the configuration `previous` ran (a rollback stamps a new version)."""
    from marathon_apps.plan import clean_live, diff_app

    return not [f for f in diff_app(clean_live(previous), app) if f.path != "instances"]


class PlainReporter:
    """One line per change of state, for logs and git push output."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say

    def update(self, app_id: str, state: str, detail: str = "") -> None:
        self.say(f"{app_id}: {state}" + (f" ({detail})" if detail else ""))


class SilentReporter:
    def update(self, app_id: str, state: str, detail: str = "") -> None:
        pass


class RichReporter:
    """A live table: one row per app with its state, on a terminal."""

    def __init__(self, apps: Iterable[str], console: Any = None) -> None:
        from rich.console import Console
        from rich.live import Live

        self.rows: dict[str, tuple[str, str]] = {a: ("waiting", "") for a in apps}
        self.live = Live(self._table(), console=console or Console(), refresh_per_second=8, transient=False)

    def _table(self) -> Any:
        from rich.table import Table

        colours = {"deployed": "green", "failed": "red", "rolled back": "yellow", "rolling back": "yellow",
                   "deploying": "cyan", "not attempted": "dim", "rollback failed": "red"}
        table = Table("app", "state", "detail", box=None)
        for app_id, (state, detail) in self.rows.items():
            style = colours.get(state, "")
            table.add_row(app_id, f"[{style}]{state}[/]" if style else state, detail)
        return table

    def __enter__(self) -> RichReporter:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._table())
        self.live.stop()

    def update(self, app_id: str, state: str, detail: str = "") -> None:
        self.rows[app_id] = (state, detail)
        self.live.update(self._table())
