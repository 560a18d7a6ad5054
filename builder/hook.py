"""The post-receive hook of a bare code repository: a push to the branch builds and writes back.

`wharf build hook install` writes it with `wharf.githooks.install_hooks`; it runs `wharf build hook
run`, which hands the pushed refs to `wharf.githooks.run_hook` with the one step `hook_step` makes:
each pushed commit of the branch is exported (`git archive`) and `wharf build` runs on that tree
with `--commit`, its output going back to the pusher. Pure.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from wharf.githooks import HookStep

__all__ = ["hook_script", "hook_step"]


def _literal(text: str) -> str:
    """`text` as a HookStep argument: its braces are not placeholders."""
    return text.replace("{", "{{").replace("}", "}}")


def hook_step(app: str, config: str, config_branch: str = "main", registry: str | None = None,
              kv: str | None = None) -> HookStep:
    """The step `run_hook` runs for each pushed commit: `wharf build {tree} --commit {commit} ...`."""
    sync = ["build", "{tree}", "--app", _literal(app), "--config-repo", _literal(config),
            "--config-branch", _literal(config_branch), "--commit", "{commit}"]
    if registry:
        sync += ["--registry", _literal(registry)]
    if kv:
        sync += ["--kv", _literal(kv)]
    return HookStep("build", ".", check=(), sync=(*sync, "--env", "{env}"))


def hook_script(python: str, args: Sequence[str], config: str | None = None) -> str:
    """The `post-receive` script: `python -m wharf build hook run ARGS` (with `WHARF_CONFIG`)."""
    env = f"WHARF_CONFIG={shlex.quote(config)} " if config else ""
    return ("#!/bin/sh\n"
            "# Installed by `wharf build hook install`; run it again to change these settings.\n"
            f"{env}exec {shlex.quote(python)} -m wharf build hook run {' '.join(shlex.quote(a) for a in args)}\n")
