"""`wharf apps hook`: the git hooks on a bare config repository that make a push deploy."""

from __future__ import annotations

import sys
from pathlib import Path

import click

ENV_HELP = "Environment whose values/<env>.yaml fills the templates"
env_option = click.option("--env", "env", default=None, metavar="ENV", help=ENV_HELP)


@click.group()
def hook() -> None:
    """Git hooks on a bare config repository: check a push before accepting it, deploy it after."""


@hook.command("install")
@click.argument("repo", type=click.Path(exists=True, file_okay=False), metavar="REPO.git")
@env_option
@click.option("--branch", default="main", show_default=True, help="The branch whose pushes deploy")
@click.option("--step", "steps", multiple=True, help="Only these steps (default: every room's: apps, ...)")
@click.option("--kv", default=None, metavar="PREFIX",
              help="Write each push into Consul KV (PREFIX/apps, PREFIX/jobs) instead of deploying it")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False), default=None,
              help="wharf.yaml the hooks read (MARATHON_URL etc.); else the pusher's environment")
def hook_install(repo: str, env: str | None, branch: str, steps: tuple[str, ...], kv: str | None,
                 config: str | None) -> None:
    """Install pre-receive (render and validate; reject bad pushes) and post-receive (deploy, or with
    --kv write into Consul KV for `wharf apps|jobs watch-kv`) hooks."""
    from wharf import githooks
    from wharf.kvprefix import prefix_of

    chosen = githooks.steps_named(steps) if steps else list(githooks.STEPS)
    base = prefix_of(kv, "--kv") if kv is not None else None
    args = ["--branch", branch] + (["--env", env] if env else []) + (["--kv", base] if base else [])
    for step in chosen:
        args += ["--step", step.name]
    scripts = githooks.hook_scripts(sys.executable, args, str(Path(config).resolve()) if config else None)
    for path in githooks.install_hooks(Path(repo), scripts):
        click.echo(f"installed {path}")
    click.echo(f"pushes to {branch} run: {', '.join(s.name for s in chosen)}" + (f" (env {env})" if env else ""))
    for step in chosen if base else ():
        click.echo(f"{step.name} go into Consul KV under {base}/{step.folder}: deploy them with "
                   f"`wharf {step.name} watch-kv --prefix {base}/{step.folder}`")


def invoke_wharf(argv: list[str]) -> int:
    """Run one `wharf` command in this process and return its exit code (as a hook step)."""
    from wharf.cli import cli

    try:
        result = cli.main(args=argv, prog_name="wharf", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 1
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.stdout.flush()
    return int(result) if isinstance(result, int) else 0


@hook.command("run", hidden=True)
@click.argument("kind", type=click.Choice(["pre-receive", "post-receive"]))
@env_option
@click.option("--branch", default="main")
@click.option("--step", "steps", multiple=True)
@click.option("--kv", default=None)
@click.pass_context
def hook_run(ctx: click.Context, kind: str, env: str | None, branch: str, steps: tuple[str, ...],
             kv: str | None) -> None:
    """What the installed hooks run: the pushed refs come on standard input."""
    import os

    from wharf import githooks

    updates = githooks.parse_ref_updates(sys.stdin.read())
    chosen = githooks.steps_named(steps) if steps else list(githooks.STEPS)
    git_dir = Path(os.environ.get("GIT_DIR", ".")).resolve()
    code = githooks.run_hook(kind, updates, branch, chosen, env, invoke_wharf, git_dir,
                             say=lambda line: click.echo(line, err=True), kv=kv)
    ctx.exit(code)
