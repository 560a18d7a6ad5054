"""The Consul KV trigger of jobs: `sync-kv` writes the repository's jobs under a prefix, `watch-kv`
syncs them to Chronos.

Layout under the prefix `P` (`wharf.kvprefix`): one key per job, `P/<job name>`, whose value is the
job's Chronos JSON as `wharf jobs sync` would send it (owner marker included); and `P/.wharf/commit`,
the commit the jobs came from, if given. (A job name has no `/`, so the two cannot clash.)

The transaction, the refusals and the watch loop are `wharf.kvprefix`'s. Read back, each value must
be JSON whose `name` is its key and pass the checks a repository's job gets (`spec.to_chronos`, the
graph); the owner marker is the watcher's own, as `wharf jobs sync --owner` sets it. A bad value
refuses its index: logged naming the key, told to the team, nothing sent. A good state is checked
against Chronos, planned and sent as `wharf jobs sync` does (`chronos_jobs.sync`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge

from chronos_jobs import repo, spec
from chronos_jobs import sync as syncing
from chronos_jobs.client import ChronosClient
from chronos_jobs.plan import JobChange
from wharf.configrepo import Spec, SpecError, SpecErrors
from wharf.errors import WharfError
from wharf.kvprefix import Entry, PrefixWatcher, layout, split
from wharf.log import fields
from wharf.notify import Event

log = logging.getLogger("wharf.jobs.kv")

SYNCS = Counter("wharf_jobs_kv_syncs_total", "Syncs to Chronos started by a KV change, by outcome", ["outcome"])
INDEX = Gauge("wharf_jobs_kv_index", "The KV index (ModifyIndex of the prefix) last synced")


def documents(files: Mapping[str, repo.JobFile], prefix: str, owner: str,
              commit: str | None = None) -> dict[str, bytes]:
    """What the keys under `prefix` should hold: each job as `wharf jobs sync` sends it (stable
    JSON bytes), and the commit."""
    return layout(prefix, syncing.desired(files, owner), commit)


def without_owner(job: Mapping[str, Any]) -> dict[str, Any]:
    """The job with wharf's owner marker taken out (the watcher sets its own)."""
    variables = job.get("environmentVariables")
    if not isinstance(variables, list):
        return dict(job)
    kept = [v for v in variables if not (isinstance(v, Mapping) and v.get("name") == spec.OWNER_VARIABLE)]
    out = {k: v for k, v in job.items() if k != "environmentVariables"}
    return {**out, "environmentVariables": kept} if kept or not variables else out


def _job_file(key: str, name: str, value: bytes) -> repo.JobFile:
    """One value read back as a repository's job would be; raises SpecErrors naming the key."""
    if not spec.NAME_PATTERN.fullmatch(name):
        raise SpecErrors([SpecError(key, "the key is not a valid Chronos job name (letters, digits, '_', '.', '-')")])
    try:
        body = json.loads(value)
    except ValueError as exc:
        raise SpecErrors([SpecError(key, f"not JSON: {exc}")]) from None
    if not isinstance(body, dict) or body.get("name") != name:
        raise SpecErrors([SpecError(key, f"must hold the Chronos JSON of the job {name}", field="name")])
    try:
        job = spec.to_chronos(without_owner(body))
    except spec.JobSpecError as error:
        raise SpecErrors([SpecError(key, error.reason, field=error.field)]) from None
    return repo.JobFile(Spec(key, name, body), job)


def jobs_of(entries: Mapping[str, Entry], prefix: str) -> tuple[dict[str, repo.JobFile], str | None]:
    """The jobs held under `prefix` (by name, each's source naming its key) and the commit; raises
    SpecErrors, one line per bad key, for values that are not valid jobs named by their key, and
    for parents that form a cycle (parents outside the prefix are checked against Chronos later)."""
    files: dict[str, repo.JobFile] = {}
    errors: list[SpecError] = []
    held, commit = split(entries, prefix)
    for key, name, value in held:
        try:
            files[name] = _job_file(key, name, value)
        except SpecErrors as exc:
            errors += exc.errors
    if errors:
        raise SpecErrors(errors)
    repo.check_graph(files, None)
    return files, commit


class JobsKvWatcher(PrefixWatcher):
    """`wharf jobs watch-kv`: sync what the prefix holds to Chronos whenever its index moves."""

    def __init__(self, consul: Any, chronos: ChronosClient, prefix: str, owner: str, *, prune: bool = False,
                 wait: float = 30.0, metrics_port: int | None = None) -> None:
        super().__init__("jobs-watch-kv", consul, prefix, wait=wait, metrics_port=metrics_port, logger=log)
        self.chronos, self.owner, self.prune = chronos, owner, prune
        self.told: int | None = None  # the index whose failed sync the team was told of

    def act(self, index: int, entries: dict[str, Entry]) -> None:
        """Read the jobs back (a bad one refuses the index), check and plan against Chronos, send."""
        try:
            files, commit = jobs_of(entries, self.prefix)
            # an empty prefix (a wiped Consul?) never deletes every job
            todo = syncing.prepare(self.chronos, files, self.owner, self.prune and bool(files))
        except SpecErrors as exc:
            SYNCS.labels("refused").inc()
            self.refused(index, exc, "sync", "bad job in KV")
            return
        if not todo.changes:
            log.info("nothing to do", extra=fields(index=index, jobs=len(files)))
            INDEX.set(index)
            return
        log.info("syncing", extra=fields(index=index, changes=len(todo.changes), commit=commit or ""))
        sent: list[JobChange] = []
        try:
            syncing.apply(self.chronos, todo, sent.append)
        except WharfError as exc:
            SYNCS.labels("failed").inc()
            if self.told != index:  # tried again with backoff: the team hears of it once
                self.told = index
                self.notices.send(_with_commit(syncing.events_of(todo, sent, exc.message), commit))
            log.error("sync failed", extra=fields(index=index, sent=len(sent), error=exc.message))
            raise
        INDEX.set(index)
        SYNCS.labels("ok").inc()
        self.notices.send(_with_commit(syncing.events_of(todo, sent), commit))
        log.info("synced", extra=fields(index=index, jobs=",".join(c.name for c in sent)))


def _with_commit(events: list[Event], commit: str | None) -> list[Event]:
    """The events with the config commit the jobs came from, if the prefix holds one."""
    return [dataclasses.replace(e, commits=(commit, e.commits[1])) for e in events] if commit else events
