"""`wharf jobs`: render, plan and sync the config repository's jobs to Chronos; run, status, graph."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from wharf.errors import BadInput, Failure
from wharf.wait import wait_until

DEFAULT_OWNER = "wharf"

_dir_argument = click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
_env_option = click.option("--env", "env", default=None, metavar="E", help="Values file values/E.yaml")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
_quiet_option = click.option("--quiet", is_flag=True, help="Print nothing on success (for hooks)")
_owner_option = click.option("--owner", default=DEFAULT_OWNER, show_default=True,
                             help="Owner marker written into each job; only jobs with it are pruned")


def _client(ctx: click.Context) -> Any:
    from chronos_jobs.client import ChronosClient

    url = ctx.obj["chronos_url"] if ctx.obj is not None else None
    if not url:
        raise BadInput("--chronos-url: not set (give --chronos-url or CHRONOS_URL)")
    return ChronosClient(url)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


@click.group()
def jobs() -> None:
    """Scheduled and dependent Chronos jobs from the config repository's jobs/."""


@jobs.command()
@_dir_argument
@_env_option
@_owner_option
@_json_option
@_quiet_option
def render(directory: Path, env: str | None, owner: str, as_json: bool, quiet: bool) -> None:
    """Print the Chronos jobs DIRECTORY/jobs/*.yaml render to, parents first (checks, sends nothing).

    Parents that are not in the repository are checked by `plan` and `sync`, which ask Chronos.
    """
    from chronos_jobs import graph, repo, sync

    files = repo.load(directory, env)
    repo.check_graph(files, None)
    if quiet:
        return
    bodies = sync.desired(files, owner)
    ordered = [bodies[name] for name in graph.order(bodies)]
    if as_json:
        _echo_json(ordered)
        return
    import yaml

    click.echo(yaml.safe_dump_all(ordered, sort_keys=False, explicit_start=True), nl=False)


def _show_plan(todo: Any, as_json: bool, sent: bool) -> None:
    if as_json:
        _echo_json({**todo.as_json(), "sent": sent})
        return
    from rich.console import Console
    from rich.table import Table

    if not todo.changes:
        click.echo(f"no changes ({len(todo.unchanged)} jobs up to date)")
    else:
        table = Table("action", "job", "endpoint", "fields", box=None)
        for change in todo.changes:
            table.add_row(change.action, change.name, change.endpoint and f"/{change.endpoint}",
                          ", ".join(change.fields))
        Console().print(table)
        verb = "sent" if sent else "to send"
        count = len(todo.changes)
        click.echo(f"{count} change{'' if count == 1 else 's'} {verb}, {len(todo.unchanged)} unchanged")
    if todo.stale:
        click.echo(f"not in the repository (deleted with --prune): {', '.join(todo.stale)}")
    if todo.unowned:
        click.echo(f"left alone (not owned by this wharf owner): {', '.join(todo.unowned)}")


def _plan(ctx: click.Context, directory: Path, env: str | None, owner: str, prune: bool) -> tuple[Any, Any]:
    from chronos_jobs import repo, sync

    files = repo.load(directory, env)  # bad specs are refused before Chronos is asked anything
    client = _client(ctx)
    return client, sync.prepare(client, files, owner, prune)


@jobs.command()
@_dir_argument
@_env_option
@_owner_option
@click.option("--prune", is_flag=True, help="Also plan deleting wharf's jobs that left the repository")
@_json_option
@_quiet_option
@click.pass_context
def plan(ctx: click.Context, directory: Path, env: str | None, owner: str, prune: bool, as_json: bool,
         quiet: bool) -> None:
    """Show what `sync` would send to Chronos (checks against Chronos's jobs, sends nothing)."""
    _, todo = _plan(ctx, directory, env, owner, prune)
    if not quiet:
        _show_plan(todo, as_json, sent=False)


@jobs.command()
@_dir_argument
@_env_option
@_owner_option
@click.option("--prune", is_flag=True, help="Delete wharf's jobs that left the repository")
@_json_option
@click.pass_context
def sync(ctx: click.Context, directory: Path, env: str | None, owner: str, prune: bool, as_json: bool) -> None:
    """Make Chronos's jobs match DIRECTORY/jobs: send only what changed, parents first."""
    from chronos_jobs import sync as syncing
    from wharf.errors import WharfError
    from wharf.sinks import Notices

    notices = Notices(ctx.find_root().obj)  # WHARF_NOTIFY_*: refused before anything changes
    client, todo = _plan(ctx, directory, env, owner, prune)
    sent: list[Any] = []
    try:
        syncing.apply(client, todo, sent.append)
    except WharfError as exc:
        notices.tell(syncing.events_of(todo, sent, exc.message))
        raise
    notices.tell(syncing.events_of(todo, sent))
    _show_plan(todo, as_json, sent=True)


@jobs.command()
@click.argument("name")
@click.option("--wait", is_flag=True, help="Wait for the run and the dependents it sets off; exit 1 if one fails")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait with --wait")
@_json_option
@click.pass_context
def run(ctx: click.Context, name: str, wait: bool, timeout: float, as_json: bool) -> None:
    """Start a run of job NAME now (its dependents follow when it succeeds)."""
    from chronos_jobs import run as runs

    client = _client(ctx)
    before = client.jobs()
    if name not in before:
        raise BadInput(f"NAME: job '{name}' does not exist in Chronos")
    snapshot = runs.snapshot(before)
    client.run(name)
    if not wait:
        if as_json:
            _echo_json({"started": name})
        else:
            click.echo(f"started {name}")
        return
    state = _follow_run(client, name, snapshot, timeout, as_json)
    if as_json:
        _echo_json({"finished": dict(state.finished), "skipped": list(state.skipped)})
    elif state.skipped:
        click.echo(f"not run (a parent failed): {', '.join(state.skipped)}")
    if not state.ok:
        raise Failure(f"job run failed: {', '.join(j for j, r in state.finished.items() if r != 'success')}")


def _follow_run(client: Any, name: str, snapshot: Any, timeout: float, as_json: bool) -> Any:
    """Wait for the run of `name` and the dependents it sets off, echoing each result as it comes."""
    from chronos_jobs import run as runs

    shown: set[str] = set()
    seen: list[Any] = []

    def ended() -> Any:
        state = runs.progress(name, snapshot, client.jobs())
        seen[:] = [state]
        for job, result in state.finished.items():
            if job not in shown and not as_json:
                shown.add(job)
                click.echo(f"{job}: {result}")
        return state if state.done else None

    return wait_until(ended, timeout, 0.5, lambda: ", ".join(seen[0].pending))


@jobs.command()
@_owner_option
@_json_option
@click.pass_context
def status(ctx: click.Context, owner: str, as_json: bool) -> None:
    """Each Chronos job: running or idle, last success and error, next run."""
    client = _client(ctx)
    from chronos_jobs.status import rows as status_rows

    rows = status_rows(client.jobs(), client.graph(), datetime.now(UTC), owner)
    if as_json:
        _echo_json([{k: v for k, v in row.items() if k != "next"} for row in rows])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("job", "status", "last", "last success", "last error", "next", "wharf", box=None)
    for row in rows:
        table.add_row(row["name"], row["status"], row["last"], row["lastSuccess"] or "-", row["lastError"] or "-",
                      row["next"], "yes" if row["owned"] else "")
    Console(width=200).print(table)


@jobs.command("graph")
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@_env_option
@click.option("--format", "fmt", type=click.Choice(["text", "dot"]), default="text", show_default=True)
@click.pass_context
def graph_command(ctx: click.Context, directory: Path | None, env: str | None, fmt: str) -> None:
    """The dependency graph of DIRECTORY's jobs, or of Chronos's jobs without DIRECTORY."""
    from chronos_jobs import graph, repo

    if directory is not None:
        files = repo.load(directory, env)
        repo.check_graph(files, None)
        jobs_shown: dict[str, Any] = {name: f.job for name, f in files.items()}
    else:
        jobs_shown = _client(ctx).jobs()
    try:
        click.echo(graph.dot(jobs_shown) if fmt == "dot" else graph.text(jobs_shown), nl=False)
    except ValueError as error:
        raise Failure(str(error)) from None


# --- the Consul KV trigger -----------------------------------------------------------------------

@jobs.command("sync-kv")
@_dir_argument
@click.option("--prefix", required=True, help="KV prefix the jobs go under (wharf owns every key below it)")
@_env_option
@click.option("--commit", default=None, help="Commit id stored beside the jobs (named in watch-kv's notices)")
@_owner_option
@_json_option
@click.pass_context
def sync_kv(ctx: click.Context, directory: Path, prefix: str, env: str | None, commit: str | None, owner: str,
            as_json: bool) -> None:
    """Write the repository's jobs to Consul KV in one transaction (only the keys that change)."""
    from chronos_jobs import kv, repo
    from wharf import kvprefix
    from wharf.consul_http import client_from

    base = kvprefix.prefix_of(prefix)
    files = repo.load(directory, env)
    repo.check_graph(files, None)  # what can be refused offline is refused before Consul is written
    changed = kvprefix.sync(client_from(ctx.find_root().obj), kv.documents(files, base, owner, commit), base,
                            "jobs")
    if as_json:
        _echo_json({"prefix": base, "jobs": len(files), "changed": changed})
        return
    click.echo("\n".join(kvprefix.sync_lines(changed, base, len(files), "jobs")))


@jobs.command("watch-kv")
@click.option("--prefix", required=True, help="KV prefix whose jobs to sync")
@click.option("--prune", is_flag=True, help="Delete jobs this owner has in Chronos that the prefix lacks")
@click.option("--wait", "wait", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Longest blocking query on the prefix, in seconds")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, help="Serve Prometheus metrics here")
@_owner_option
@click.pass_context
def watch_kv(ctx: click.Context, prefix: str, prune: bool, wait: float, metrics_port: int | None, owner: str) -> None:
    """Daemon: sync the jobs under a KV prefix to Chronos whenever it changes (until SIGTERM)."""
    from chronos_jobs import kv
    from wharf import kvprefix
    from wharf.consul_http import client_from

    settings = ctx.find_root().obj
    watcher = kv.JobsKvWatcher(client_from(settings), _client(ctx), kvprefix.prefix_of(prefix), owner,
                               prune=prune, wait=wait, metrics_port=metrics_port)
    ctx.exit(watcher.run(settings))
