"""`wharf build`: build a code tree's image, push it, write its tag back to the config repository;
`wharf build hook install` makes a push of a bare code repository do that."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from wharf.errors import BadInput

#: a git remote that is no local path: `scheme://...` or scp-like `user@host:path`
_REMOTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|[^/:]+:(?!$)")


class BuildGroup(click.Group):
    """`wharf build DIR ...` runs the build; `wharf build hook ...` is the git hook's group."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default: click.Command | None = None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        """A subcommand by its name (`hook`); anything else is the build's own arguments."""
        if args and args[0] in self.commands or self.default is None:
            return super().resolve_command(ctx, args)
        return self.default.name, self.default, args

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The build's usage and options, then the subcommands."""
        assert self.default is not None
        self.default.format_usage(ctx, formatter)
        self.default.format_help_text(ctx, formatter)
        self.default.format_options(ctx, formatter)
        self.format_commands(ctx, formatter)


class _AsTheGroup(click.Context):
    """The build's own context, named as its group is: `wharf build DIR`, not `wharf build build DIR`."""

    @property
    def command_path(self) -> str:
        return self.parent.command_path if self.parent is not None else super().command_path


def config_repo(value: str) -> str:
    """A config repository as git is given it: a URL as it is, a local path made absolute."""
    if _REMOTE.match(value):
        return value
    path = Path(value).expanduser()
    if not path.exists():
        raise BadInput(f"--config-repo: {value}: no such repository")
    return str(path.resolve())


def registry_of(ctx: click.Context, given: str | None) -> str:
    """`--registry`, else the `registry` setting (`WHARF_REGISTRY`, wharf.yaml)."""
    from builder.image import parse_registry

    value = given or ctx.find_root().obj["registry"]
    if not value:
        raise BadInput("--registry: no registry given (set WHARF_REGISTRY or --registry HOST:PORT)")
    return parse_registry(value)


@click.group(cls=BuildGroup, context_settings={"ignore_unknown_options": True})
def build() -> None:
    """Build a code tree's image, push it, and write its tag back to the config repository."""


@click.command("build")
@click.argument("directory", type=click.Path(exists=True, file_okay=False), metavar="DIR")
@click.option("--app", required=True, help="The Marathon app whose image this is (/shop/web)")
@click.option("--config-repo", "config", required=True, metavar="CONFIG.git",
              help="The config repository (a path or URL git can push to)")
@click.option("--env", default=None, help="Environment whose values/<env>.yaml may hold the image")
@click.option("--registry", default=None, metavar="HOST:PORT", help="Registry to push to [env WHARF_REGISTRY]")
@click.option("--config-branch", default="main", show_default=True, help="The config repository's branch")
@click.option("--commit", default=None, metavar="SHA", help="The code commit DIR holds (a tree exported from it)")
@click.option("--docker-host", default=None, help="Docker engine [env DOCKER_HOST]")
@click.option("--kv", default=None, metavar="PREFIX",
              help="Also keep the image in Consul KV at PREFIX/images/<app path> (CONSUL_HTTP_ADDR)")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of progress lines")
@click.pass_context
def build_run(ctx: click.Context, directory: str, app: str, config: str, env: str | None, registry: str | None,
              config_branch: str, commit: str | None, docker_host: str | None, kv: str | None, as_json: bool) -> None:
    """Build DIR's Dockerfile as <registry>/<app path>:<short commit>, push it, and write the tag back to
    the app's spec (a literal image) or values/<env>.yaml (an image read from a value), whose hooks
    then deploy it. One line names the step that failed (exit 1; bad input 2, nothing changed)."""
    from builder.build import BuildFailed, BuildRequest, run_build
    from wharf.consul_http import client_from
    from wharf.notify import Event
    from wharf.sinks import Notices

    notices = Notices(ctx.find_root().obj)  # WHARF_NOTIFY_*: refused before anything is built
    request = BuildRequest(Path(directory).resolve(), app, config_repo(config), registry_of(ctx, registry), env,
                           config_branch, commit, docker_host, kv)
    say = (lambda line: None) if as_json else (lambda line: click.echo(line, err=True))
    try:
        report = run_build(request, say, client_from(ctx.find_root().obj) if kv is not None else None)
    except BuildFailed as failed:
        done = failed.report
        notices.tell([Event("build", app, "failed", (None, done.image or None), (None, done.code_commit or None),
                            failed.message)])
        if as_json:
            click.echo(json.dumps({**done.as_json(), "error": failed.message}, indent=2))
        raise
    notices.tell([Event("build", app, "ok", (None, report.image), (report.config_commit, report.code_commit))])
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))


build_run.context_class = _AsTheGroup
build.default = build_run


@build.group("hook")
def hook() -> None:
    """The post-receive hook of a bare code repository: a push to the branch builds and writes back."""


@hook.command("install")
@click.argument("repo", type=click.Path(exists=True, file_okay=False), metavar="CODE.git")
@click.option("--config-repo", "config", required=True, metavar="CONFIG.git", help="The config repository")
@click.option("--app", required=True, help="The Marathon app whose image the code repository builds")
@click.option("--env", default=None, help="Environment whose values/<env>.yaml may hold the image")
@click.option("--branch", default="main", show_default=True, help="The code branch whose pushes build")
@click.option("--config-branch", default="main", show_default=True, help="The config repository's branch")
@click.option("--registry", default=None, metavar="HOST:PORT", help="Registry (else the pusher's WHARF_REGISTRY)")
@click.option("--kv", default=None, metavar="PREFIX", help="Also keep the image in Consul KV (see wharf build --kv)")
@click.option("--config", "settings_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="wharf.yaml the hook reads (registry etc.); else the pusher's environment")
def hook_install(repo: str, config: str, app: str, env: str | None, branch: str, config_branch: str,
                 registry: str | None, kv: str | None, settings_file: str | None) -> None:
    """Install a post-receive hook: each push to BRANCH exports the pushed tree and runs `wharf build` on it.
    The app's image must be writable by the write-back rule now (checked on a clone of the config)."""
    from builder.build import kv_prefix
    from builder.configgit import ConfigClone
    from builder.hook import hook_script
    from builder.image import parse_registry
    from wharf import githooks
    from wharf.contracts.marathon_model import parse_app_id

    app_id, where = parse_app_id(app), config_repo(config)
    args = ["--branch", branch, "--app", app_id, "--config-repo", where, "--config-branch", config_branch]
    args += (["--env", env] if env else []) + (["--registry", parse_registry(registry)] if registry else [])
    args += ["--kv", kv_prefix(kv)] if kv is not None else []
    with ConfigClone(where, config_branch) as clone:
        change = clone.plan(app_id, env, "127.0.0.1:1/wharf-hook-check:0000000")
    config_env = str(Path(settings_file).resolve()) if settings_file else None
    for path in githooks.install_hooks(Path(repo), {"post-receive": hook_script(sys.executable, args, config_env)}):
        click.echo(f"installed {path}")
    click.echo(f"pushes to {branch} build {app_id}; its image is written back at {change.where} of {where}")


@hook.command("run", hidden=True)
@click.option("--branch", default="main")
@click.option("--app", required=True)
@click.option("--config-repo", "config", required=True)
@click.option("--env", default=None)
@click.option("--config-branch", default="main")
@click.option("--registry", default=None)
@click.option("--kv", default=None)
@click.pass_context
def hook_run(ctx: click.Context, branch: str, app: str, config: str, env: str | None, config_branch: str,
             registry: str | None, kv: str | None) -> None:
    """What the installed hook runs: the pushed refs come on standard input."""
    from builder.hook import hook_step
    from wharf import githooks

    def invoke(argv: list[str]) -> int:
        """`wharf ARGV` in a child process whose output goes to the pusher."""
        return subprocess.run([sys.executable, "-m", "wharf", *argv], check=False).returncode

    updates = githooks.parse_ref_updates(sys.stdin.read())
    git_dir = Path(os.environ.get("GIT_DIR", ".")).resolve()
    step = hook_step(app, config, config_branch, registry, kv)
    code = githooks.run_hook("post-receive", updates, branch, [step], env, invoke, git_dir,
                             say=lambda line: click.echo(line, err=True))
    ctx.exit(code)
