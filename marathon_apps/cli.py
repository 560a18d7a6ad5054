"""`wharf apps`: render, plan and deploy a config repository's apps to Marathon; status, rollback,
scale; the git hooks that make a push deploy."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from marathon_apps import output
from marathon_apps.hooks.cli import env_option, hook
from wharf.errors import BadInput, Failure

OWNER_HELP = "Value of the wharf.owner label: which apps this repository owns (and may prune)"


def _client(ctx: click.Context) -> Any:
    from marathon_apps.client import Marathon

    urls = ctx.find_root().obj["marathon_url"]
    if not urls:
        raise BadInput("MARATHON_URL: not set (or give --marathon-url)")
    return Marathon(urls)


def _load(directory: str, env: str | None, owner: str) -> list[Any]:
    from marathon_apps.repo import load_apps

    return load_apps(Path(directory), env, owner)


@click.group()
def apps() -> None:
    """Deploy a config repository's apps/ to Marathon: render, plan, deploy in dependency order, roll back."""


apps.add_command(hook)
dir_argument = click.argument("directory", type=click.Path(exists=True, file_okay=False))
owner_option = click.option("--owner", default="wharf", show_default=True, help=OWNER_HELP)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts")
drain_timeout_option = click.option(
    "--drain-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
    help="Scaling down (or a blue/green deploy's old colour): seconds to wait for the tasks to be removed to "
         "leave rotation and finish their sessions before they are killed")
haproxy_option = click.option(
    "--haproxy", "haproxies", multiple=True, envvar="WHARF_HAPROXY_SOCKET", metavar="URL|SOCKET",
    help="HAProxy whose statistics show drains and a blue/green deploy's new colour in rotation (stats page URL "
         "or admin socket; repeatable) [env WHARF_HAPROXY_SOCKET]")


def _bluegreen(ctx: click.Context, client: Any, haproxies: tuple[str, ...], drain_timeout: float, timeout: float,
               say: Callable[[str], None]) -> Callable[[Any], str]:
    """The runner of blue/green changes: Consul from the settings, these HAProxies."""
    from marathon_apps.bluegreen_run import BlueGreen
    from wharf.drain import from_settings
    from wharf.haproxy import StatsSource

    drain = from_settings(client, [StatsSource.parse(h) for h in haproxies], ctx.find_root().obj, drain_timeout, say)
    return BlueGreen(client, drain, timeout, say).run


@apps.command()
@dir_argument
@env_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write each app's Marathon JSON to OUT/<app id>.json")
@owner_option
@json_option
@click.option("--quiet", is_flag=True, help="Print nothing when every spec is valid")
def render(directory: str, env: str | None, out_dir: str | None, owner: str, as_json: bool, quiet: bool) -> None:
    """Render every app spec to Marathon JSON and validate it against Marathon's app contract."""
    from wharf.atomic import write_atomic

    loaded = _load(directory, env, owner)
    if out_dir:
        for app in loaded:
            write_atomic(Path(out_dir) / f"{app.id.strip('/')}.json",
                         json.dumps(app.definition, indent=2, sort_keys=True) + "\n")
    if as_json:
        output.echo_json([a.definition for a in loaded])
        return
    if quiet:
        return
    table = output.table("app", "file", "instances", "after")
    for app in loaded:
        table.add_row(app.id, app.spec.file, str(app.definition.get("instances", 1)), ", ".join(app.dependencies))
    output.print_table(table)
    click.echo(f"{len(loaded)} apps valid" + (f", written to {out_dir}" if out_dir else ""))


def _plan(ctx: click.Context, directory: str, env: str | None, owner: str, prune: bool) -> tuple[Any, Any]:
    from marathon_apps.plan import make_plan

    loaded = _load(directory, env, owner)
    client = _client(ctx)
    return client, make_plan(loaded, client.apps(), owner, prune)


@apps.command()
@dir_argument
@env_option
@click.option("--prune", is_flag=True, help="Also delete apps this owner has in Marathon that the repository lacks")
@owner_option
@json_option
@click.pass_context
def plan(ctx: click.Context, directory: str, env: str | None, prune: bool, owner: str, as_json: bool) -> None:
    """Show what a deploy would change in Marathon, in deploy order."""
    _, result = _plan(ctx, directory, env, owner, prune)
    if as_json:
        output.echo_json(result.to_json())
    else:
        output.print_plan(result)


def _reporter(as_json: bool, names: list[str]) -> Any:
    from marathon_apps.deploy import PlainReporter, RichReporter, SilentReporter

    if as_json:
        return SilentReporter()
    if sys.stdout.isatty():
        return RichReporter(names)
    return PlainReporter(lambda line: click.echo(line))


def _run_deploy(reporter: Any, work: Callable[[Any], Any]) -> Any:
    if hasattr(reporter, "__enter__"):
        with reporter:
            return work(reporter)
    return work(reporter)


@apps.command()
@dir_argument
@env_option
@click.option("--prune", is_flag=True, help="Also delete apps this owner has in Marathon that the repository lacks")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="Seconds each app may take to deploy and become healthy before it is rolled back")
@click.option("--commit", default=None, help="Commit id recorded in the wharf.commit label of each changed app")
@drain_timeout_option
@haproxy_option
@owner_option
@json_option
@click.pass_context
def deploy(ctx: click.Context, directory: str, env: str | None, prune: bool, timeout: float, commit: str | None,
           drain_timeout: float, haproxies: tuple[str, ...], owner: str, as_json: bool) -> None:
    """Send the changed apps in dependency order, wait until each is healthy, roll back a failure."""
    from marathon_apps.deploy import Deployer
    from marathon_apps.notices import events_of
    from wharf.sinks import Notices

    notices = Notices(ctx.find_root().obj)  # WHARF_NOTIFY_*: refused before anything changes
    client, result = _plan(ctx, directory, env, owner, prune)
    todo = result.todo()
    if not todo:
        if as_json:
            output.echo_json({"ok": True, "deployed": [], "rolled_back": [], "failed": {}, "not_attempted": [],
                        "unchanged": [c.app_id for c in result.changes]})
        else:
            click.echo(f"nothing to do: {len(result.changes)} apps unchanged")
        return
    reporter = _reporter(as_json, [c.app_id for c in todo])

    def work(r: Any) -> Any:
        bluegreen = None
        if any(c.kind == "bluegreen" for c in todo):
            bluegreen = _bluegreen(ctx, client, haproxies, drain_timeout, timeout, lambda line: None)
        return Deployer(client, r, timeout=timeout, commit=commit, bluegreen=bluegreen).run(result)

    outcome = _run_deploy(reporter, work)
    notices.tell(events_of(todo, outcome, commit))
    if as_json:
        output.echo_json(outcome.to_json())
    else:
        click.echo(output.summary(outcome))
    if not outcome.ok:
        failed = "; ".join(f"{app}: {why}" for app, why in outcome.failed.items())
        raise Failure(f"deploy failed: {failed}")


@apps.command()
@click.option("--owner", default=None, help="Only apps with this wharf.owner label")
@json_option
@click.pass_context
def status(ctx: click.Context, owner: str | None, as_json: bool) -> None:
    """Each app in Marathon: version, instances healthy/wanted, the commit that deployed it, its last task failure."""
    from marathon_apps.deploy import healthy_counts
    from marathon_apps.spec import COMMIT_LABEL, OWNER_LABEL

    rows = []
    for app in sorted(_client(ctx).apps(["apps.lastTaskFailure"]), key=lambda a: a["id"]):
        labels = app.get("labels") or {}
        if owner is not None and labels.get(OWNER_LABEL) != owner:
            continue
        healthy, wanted = healthy_counts(app)
        rows.append({"app": app["id"], "version": app.get("version"), "healthy": healthy, "instances": wanted,
                     "commit": labels.get(COMMIT_LABEL), "owner": labels.get(OWNER_LABEL),
                     "deploying": bool(app.get("deployments")), "last_task_failure": app.get("lastTaskFailure")})
    if as_json:
        output.echo_json(rows)
        return
    table = output.table("app", "version", "healthy", "commit", "owner", "")
    for row in rows:
        failed = row["last_task_failure"] and f"last failure: {row['last_task_failure']['message']}"
        notes = [n for n in ("deploying" if row["deploying"] else "", failed) if n]
        table.add_row(row["app"], row["version"] or "", f"{row['healthy']}/{row['instances']}",
                      (row["commit"] or "-")[:12], row["owner"] or "-", "; ".join(notes))
    output.print_table(table)


def _change_and_follow(client: Any, app_id: str, change: dict[str, Any], doing: str, timeout: float,
                       as_json: bool) -> None:
    """PATCH `change` into the app, say what is being done, and follow the deployment it started."""
    from marathon_apps.client import MarathonError

    try:
        deployment = client.patch_app(app_id, change)
    except MarathonError as exc:
        raise Failure(str(exc)) from None
    if as_json:
        output.echo_json({"app": app_id, **change, "deployment": deployment})
    else:
        click.echo(f"{app_id}: {doing} (deployment {deployment})")
    _follow_one(client, app_id, deployment, timeout, as_json)


def _follow_one(client: Any, app_id: str, deployment: str, timeout: float, as_json: bool) -> None:
    """Wait for one app's deployment to end and the app to be healthy (no rollback: it is one)."""
    from marathon_apps.deploy import healthy_counts, ready
    from wharf.errors import TimedOut
    from wharf.wait import wait_until

    def done() -> Any:
        app = client.app(app_id)
        return app if ready(app) and deployment not in {d.get("id") for d in client.deployments()} else None

    try:
        app = wait_until(done, timeout, 0.5, f"{app_id} to be deployed")
    except TimedOut:
        raise Failure(f"{app_id}: deployment {deployment} not done and healthy within {timeout:g}s") from None
    healthy, wanted = healthy_counts(app)
    if not as_json:
        click.echo(f"{app_id}: version {app.get('version')}, {healthy}/{wanted} healthy")


@apps.command()
@click.argument("app_id", metavar="APP")
@click.option("--to", "version", default=None, help="Version to go back to [default: the one before the current]")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for it")
@drain_timeout_option
@haproxy_option
@json_option
@click.pass_context
def rollback(ctx: click.Context, app_id: str, version: str | None, timeout: float, drain_timeout: float,
             haproxies: tuple[str, ...], as_json: bool) -> None:
    """Put an app back to an earlier version (by default the one before the current version). A
    blue/green app (named by its group's id) goes back by a blue/green deploy of the version its
    active colour replaced."""
    from wharf.sinks import Notices

    notices, client = Notices(ctx.find_root().obj), _client(ctx)
    app = client.app(app_id)
    if app is None:
        _rollback_bluegreen(ctx, client, app_id, version, timeout, drain_timeout, haproxies, as_json, notices)
        return
    versions = client.versions(app["id"])
    if version is None:
        current = app.get("version")
        older = sorted((v for v in versions if v < current), reverse=True)
        if not older:
            raise BadInput(f"APP: {app['id']} has no version before {current}")
        version = older[0]
    elif version not in versions:
        raise BadInput(f"--to: {app['id']} has no version {version} (it has {', '.join(sorted(versions)[-5:])})")
    notices.around("rollback", app["id"], (app.get("version"), version), lambda: _change_and_follow(
        client, app["id"], {"version": version}, f"rolling back to {version}", timeout, as_json))


def _rollback_bluegreen(ctx: click.Context, client: Any, app_id: str, version: str | None, timeout: float,
                        drain_timeout: float, haproxies: tuple[str, ...], as_json: bool, notices: Any) -> None:
    from marathon_apps.bluegreen import rollback_change
    from wharf.contracts.marathon_app import InvalidAppId, parse_app_id

    try:
        group = parse_app_id(app_id)
    except InvalidAppId as exc:
        raise BadInput(f"APP: {exc}") from None
    try:
        change = rollback_change(client.apps(), group)
    except ValueError as exc:
        raise BadInput(f"APP: {exc}") from None
    if change is None:
        raise BadInput(f"APP: no app {app_id} in Marathon")
    if version is not None:
        raise BadInput("--to: a blue/green app goes back to the version its active colour replaced; --to names "
                       "versions of one Marathon app (give a colour's id for that)")
    say = (lambda line: None) if as_json else (lambda line: click.echo(f"{group}: {line}"))
    colours = (change.live["id"] if change.live else None, change.desired["id"] if change.desired else None)
    account = notices.around("rollback", group, colours,
                             lambda: _bluegreen(ctx, client, haproxies, drain_timeout, timeout, say)(change))
    if as_json:
        output.echo_json({"app": group, "from": change.live["id"] if change.live else None,
                          "to": change.desired["id"] if change.desired else None, "result": account})
    else:
        click.echo(f"{group}: rolled back: {account}")


@apps.command()
@click.argument("app_id", metavar="APP")
@click.argument("instances", type=click.IntRange(min=0), metavar="N")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for it")
@drain_timeout_option
@haproxy_option
@json_option
@click.pass_context
def scale(ctx: click.Context, app_id: str, instances: int, timeout: float, drain_timeout: float,
          haproxies: tuple[str, ...], as_json: bool) -> None:
    """Set an app's instance count and wait until that many are healthy. Scaling down drains first:
    the tasks to remove leave rotation (Consul maintenance), finish their sessions (seen in HAProxy),
    then exactly those are killed."""
    from wharf.drain import from_settings
    from wharf.haproxy import StatsSource

    client = _client(ctx)
    sources = [StatsSource.parse(h) for h in haproxies]
    app = client.app(app_id)
    if app is None:
        raise BadInput(f"APP: no app {app_id} in Marathon")
    if instances >= int(app.get("instances", 0)):
        _change_and_follow(client, app["id"], {"instances": instances},
                           f"scaling {app.get('instances')} -> {instances}", timeout, as_json)
        return
    drain = from_settings(client, sources, ctx.find_root().obj, drain_timeout,
                          say=(lambda line: None) if as_json else click.echo)
    report = drain.scale_down(app["id"], instances)
    if as_json:
        output.echo_json(report.as_json())
    else:
        click.echo(f"{app['id']}: scaled {report.before} -> {instances}, killed {len(report.killed)} drained "
                   f"task(s) (deployment {report.deployment})")
    if report.deployment:
        _follow_one(client, app["id"], report.deployment, timeout, as_json)


# --- the Consul KV trigger -----------------------------------------------------------------------

@apps.command("sync-kv")
@dir_argument
@click.option("--prefix", required=True, help="KV prefix the apps go under (wharf owns every key below it)")
@env_option
@click.option("--commit", default=None, help="Commit id stored beside the apps, for the wharf.commit label")
@owner_option
@json_option
@click.pass_context
def sync_kv(ctx: click.Context, directory: str, prefix: str, env: str | None, commit: str | None, owner: str,
            as_json: bool) -> None:
    """Write the rendered apps to Consul KV in one transaction (only the keys that change)."""
    from marathon_apps import kv
    from wharf import kvprefix
    from wharf.consul_http import client_from

    base = kvprefix.prefix_of(prefix)
    loaded = _load(directory, env, owner)
    changed = kvprefix.sync(client_from(ctx.find_root().obj), kv.documents(loaded, base, commit), base, "apps")
    if as_json:
        output.echo_json({"prefix": base, "apps": len(loaded), "changed": changed})
        return
    click.echo("\n".join(kvprefix.sync_lines(changed, base, len(loaded), "apps")))


@apps.command("watch-kv")
@click.option("--prefix", required=True, help="KV prefix whose apps to deploy")
@click.option("--prune", is_flag=True, help="Delete apps this owner has in Marathon that the prefix lacks")
@click.option("--timeout", type=float, default=300.0, show_default=True,
              help="Seconds each app may take to deploy and become healthy before it is rolled back")
@click.option("--wait", "wait", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Longest blocking query on the prefix, in seconds")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, help="Serve Prometheus metrics here")
@owner_option
@click.pass_context
def watch_kv(ctx: click.Context, prefix: str, prune: bool, timeout: float, wait: float, metrics_port: int | None,
             owner: str) -> None:
    """Daemon: deploy the apps under a KV prefix whenever it changes (until SIGTERM)."""
    from marathon_apps import kv
    from wharf import kvprefix
    from wharf.consul_http import client_from

    settings = ctx.find_root().obj
    watcher = kv.KvWatcher(client_from(settings), _client(ctx), kvprefix.prefix_of(prefix), owner,
                           prune=prune, timeout=timeout, wait=wait, metrics_port=metrics_port)
    ctx.exit(watcher.run(settings))
