"""The git hooks of a config repository: a push is checked before it is accepted, and synced after.

`install_hooks(repo, hook_scripts(...))` writes `pre-receive` and `post-receive` hooks that call
`wharf apps hook run`; `run_hook(...)` exports each pushed commit of the branch and runs every
`HookStep` whose folder the tree has: `check` before the push is accepted (a failure rejects it),
`sync` after. A room adds its step to `STEPS`. With a Consul KV prefix, a step's `kv` runs instead
of its `sync`: the pushed tree goes into KV (`{kv}`), for a watcher there to deploy.

Pure except where a docstring says it reads or writes (files, git).
"""

from __future__ import annotations

import io
import shlex
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wharf.atomic import write_atomic
from wharf.errors import BadInput

__all__ = [
    "STEPS", "HookStep", "RefUpdate", "ZERO", "export_tree", "hook_scripts", "install_hooks",
    "parse_ref_updates", "run_hook", "steps_named",
]

ZERO = "0" * 40  # git's id for "no commit" (a created or deleted ref)


@dataclass(frozen=True)
class HookStep:
    """What one room does on a push: `check` (before accepting) and `sync` (after) are `wharf`
    argument lists, with `{tree}`, `{env}` and `{commit}` filled in; `kv` is the `sync` that writes
    to Consul KV under `{kv}` instead. Skipped when the pushed tree has no `folder`. With no
    environment set, `{env}` and the option just before it are dropped."""

    name: str
    folder: str
    check: tuple[str, ...]
    sync: tuple[str, ...]
    kv: tuple[str, ...] = ()

    def argv(self, kind: str, tree: Path, env: str | None, commit: str, kv: str | None = None) -> list[str]:
        """The `wharf` arguments of the `check` or `sync` (the `kv` one when a prefix `kv` is given)."""
        template = self.check if kind == "check" else self.kv if kv is not None and self.kv else self.sync
        out: list[str] = []
        for arg in template:
            if arg == "{env}" and env is None:
                out.pop()  # the option naming it goes too
                continue
            out.append(arg.format(tree=str(tree), env=env or "", commit=commit, kv=kv or ""))
        return out


#: Every room's hook step, in the order they run. Add a room's step here.
STEPS: list[HookStep] = [
    HookStep("apps", "apps",
             check=("apps", "render", "{tree}", "--env", "{env}", "--quiet"),
             sync=("apps", "deploy", "{tree}", "--env", "{env}", "--commit", "{commit}"),
             kv=("apps", "sync-kv", "{tree}", "--prefix", "{kv}/apps", "--commit", "{commit}", "--env", "{env}")),
    # jobs: the check asks Chronos too (parents may live there), so a broken graph never lands
    HookStep("jobs", "jobs",
             check=("jobs", "plan", "{tree}", "--env", "{env}", "--quiet"),
             sync=("jobs", "sync", "{tree}", "--env", "{env}"),
             kv=("jobs", "sync-kv", "{tree}", "--prefix", "{kv}/jobs", "--commit", "{commit}", "--env", "{env}")),
]


def steps_named(names: Iterable[str]) -> list[HookStep]:
    """The steps of `STEPS` with these names, in `STEPS` order; an unknown name is bad input."""
    wanted = list(names)
    known = {s.name for s in STEPS}
    for name in wanted:
        if name not in known:
            raise BadInput(f"--step: unknown step {name!r} (known: {', '.join(sorted(known))})")
    return [s for s in STEPS if s.name in wanted]


@dataclass(frozen=True)
class RefUpdate:
    """One line a pre-/post-receive hook reads: `<old> <new> <ref>`."""

    old: str
    new: str
    ref: str


def parse_ref_updates(text: str) -> list[RefUpdate]:
    """Parse the hook's standard input."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append(RefUpdate(*parts))
    return out


def hook_scripts(python: str, kind_args: Sequence[str], config: str | None = None) -> dict[str, str]:
    """The `pre-receive` and `post-receive` scripts: each runs `python -m wharf apps hook run KIND ARGS`."""
    env = f"WHARF_CONFIG={shlex.quote(config)} " if config else ""
    args = " ".join(shlex.quote(a) for a in kind_args)
    out = {}
    for kind in ("pre-receive", "post-receive"):
        out[kind] = ("#!/bin/sh\n"
                     "# Installed by `wharf apps hook install`; run it again to change these settings.\n"
                     f"{env}exec {shlex.quote(python)} -m wharf apps hook run {kind} {args}\n")
    return out


def install_hooks(repo: Path, scripts: Mapping[str, str]) -> list[Path]:
    """Write the hook scripts into a bare repository's `hooks/` (atomically, executable)."""
    hooks = repo / "hooks"
    if not (repo / "HEAD").is_file() or not (repo / "objects").is_dir():
        raise BadInput(f"{repo}: not a bare git repository (no HEAD and objects/)")
    written = []
    for name, text in scripts.items():
        path = hooks / name
        write_atomic(path, text, 0o755)
        written.append(path)
    return written


def export_tree(git_dir: Path | None, commit: str, dest: Path) -> None:
    """Unpack the tree of `commit` into `dest` with `git archive` (works in a bare repository and in
    a pre-receive quarantine, whose environment git sets)."""
    cmd = ["git"] + ([f"--git-dir={git_dir}"] if git_dir else []) + ["archive", "--format=tar", commit]
    result = subprocess.run(cmd, capture_output=True, check=False)
    if result.returncode != 0:
        raise BadInput(f"{commit}: cannot read the pushed tree: {result.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
        tar.extractall(dest, filter="data")


def run_hook(kind: str, updates: Sequence[RefUpdate], branch: str, steps: Sequence[HookStep],
             env: str | None, invoke: Callable[[list[str]], int], git_dir: Path | None = None,
             say: Callable[[str], None] = lambda line: print(line, file=sys.stderr), kv: str | None = None) -> int:
    """Run a `pre-receive` (check) or `post-receive` (sync, or with a prefix `kv` each step's `kv`)
    hook over the pushed updates.

    Only updates of `refs/heads/<branch>` that do not delete it count. `invoke(argv)` runs one
    `wharf` command and returns its exit code. Returns the hook's exit code: for pre-receive
    non-zero rejects the push.
    """
    action = "check" if kind == "pre-receive" else "sync"
    ref = f"refs/heads/{branch}"
    worst = 0
    for update in updates:
        if update.ref != ref or update.new == ZERO:
            continue
        with tempfile.TemporaryDirectory(prefix="wharf-push-") as tmp:
            tree = Path(tmp)
            export_tree(git_dir, update.new, tree)
            for step in steps:
                if not (tree / step.folder).is_dir():
                    continue
                into = f" into Consul KV under {kv}/" if kv is not None and action == "sync" and step.kv else ""
                say(f"wharf: {step.name}: {action} {update.new[:12]}{into}" + (f" (env {env})" if env else ""))
                code = invoke(step.argv(action, tree, env, update.new, kv))
                if code != 0:
                    worst = max(worst, code)
                    if kind == "pre-receive":
                        say(f"wharf: {step.name}: push rejected")
                        return worst
                    say(f"wharf: {step.name}: {action} failed (exit {code}); later steps not run")
                    return worst
    return worst
