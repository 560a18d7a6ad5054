"""The git side of a build: the code commit, and the write-back to the config repository.

`ConfigClone(config, branch)` clones the config repository into a temporary directory; `plan()`
finds the change the write-back rule (`builder.rule`) makes, rendered to check it sets the image;
`write()` commits it as `wharf <wharf@localhost>` and pushes it, never forced. When the push is
refused and the branch has moved on meanwhile (somebody else pushed), it fetches, applies the change
again on top of the new head and pushes again, at most `ATTEMPTS` times; a refusal of a branch that
did not move (a hook said no) is a failure and nothing changed.

Every git command runs without the variables git sets in a hook (`GIT_DIR`, ...), which would point
it at the repository that runs the hook rather than the one it is run in.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.rule import READER_FOLDERS, ImageChange, find_spec, plan_change
from wharf.atomic import write_atomic
from wharf.configrepo import parse_yaml, render_text
from wharf.errors import BadInput, Failure

__all__ = ["ATTEMPTS", "AUTHOR", "ConfigClone", "WriteBackResult", "code_commit", "git", "git_env", "push_summary",
           "remote_lines"]

ATTEMPTS = 5
AUTHOR = ("wharf", "wharf@localhost")
#: what git sets for a hook, or a caller for one repository, that points git at a repository
REPO_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR",
                  "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH", "GIT_NAMESPACE", "GIT_PREFIX",
                  "GIT_IMPLICIT_WORK_TREE", "GIT_SHALLOW_FILE", "GIT_GRAFT_FILE", "GIT_CONFIG",
                  "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_REPLACE_REF_BASE", "GIT_NO_REPLACE_OBJECTS",
                  "GIT_INTERNAL_SUPER_PREFIX")
Say = Callable[[str], None]


def git_env(author: bool = False) -> dict[str, str]:
    """This process's environment without git's repository variables; with `author`, wharf's name."""
    env = {k: v for k, v in os.environ.items()
           if k not in REPO_VARIABLES and not k.startswith(("GIT_PUSH_OPTION", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))}
    if author:
        env.update(GIT_AUTHOR_NAME=AUTHOR[0], GIT_AUTHOR_EMAIL=AUTHOR[1], GIT_COMMITTER_NAME=AUTHOR[0],
                   GIT_COMMITTER_EMAIL=AUTHOR[1])
    return env


def git(args: list[str], cwd: Path | None = None, author: bool = False) -> subprocess.CompletedProcess[str]:
    """Run one git command (never raising for its exit code: callers word the failure)."""
    return subprocess.run(["git", *args], cwd=cwd, env=git_env(author), capture_output=True, text=True,
                          check=False, timeout=600)


def _said(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stderr or result.stdout).split()) or f"exit {result.returncode}"


def code_commit(directory: Path) -> str:
    """The commit checked out in the code work tree `directory`; BadInput when it is no git work tree
    or has changes not committed (the image's tag names the commit it was built from)."""
    head = git(["-C", str(directory), "rev-parse", "--verify", "HEAD"])
    if head.returncode != 0:
        raise BadInput(f"{directory}: not a git work tree with a commit ({_said(head)}); give --commit for a "
                       "tree exported from one")
    dirty = git(["-C", str(directory), "status", "--porcelain", "--", "."]).stdout.splitlines()
    if dirty:
        raise BadInput(f"{directory}: {len(dirty)} uncommitted change(s) (first: {dirty[0][3:]}): commit them "
                       "first; the image's tag names the commit it is built from")
    return head.stdout.strip()


def push_summary(porcelain: str, branch: str) -> tuple[bool, str]:
    """From `git push --porcelain`'s output: whether the branch was updated, and git's summary of it
    (`[rejected] (fetch first)`, `[remote rejected] (pre-receive hook declined)`)."""
    for line in porcelain.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[1].endswith(f":refs/heads/{branch}"):
            return parts[0] != "!", parts[2].strip()
    return False, "git gave no answer for the branch"


def remote_lines(stderr: str) -> list[str]:
    """What the remote's hooks said (`remote: ...` lines), without the prefix; blank ones dropped."""
    return [line[len("remote:"):].strip() for line in stderr.splitlines()
            if line.startswith("remote:") and line[len("remote:"):].strip()]


@dataclass(frozen=True)
class WriteBackResult:
    """The config commit that sets the image (`commit`), the `change`, whether wharf `pushed` one (no
    when the branch held the image already), and the `attempts` it took."""

    commit: str
    change: ImageChange
    pushed: bool
    attempts: int


def repo_texts(root: Path, env: str | None, app_id: str) -> dict[str, str]:
    """The files the write-back rule reads: the app's spec and every spec, job and template (which
    may read the same value), and the environment's values. Reads files."""
    texts: dict[str, str] = {}
    for folder in READER_FOLDERS:
        base = root / folder
        if base.is_dir():
            for path in sorted(p for p in base.rglob("*") if p.is_file()):
                try:
                    texts[path.relative_to(root).as_posix()] = path.read_text()
                except UnicodeDecodeError:
                    continue  # not a template
    values = root / "values" / f"{env}.yaml"
    if env and "/" not in env and values.is_file():
        texts[f"values/{env}.yaml"] = values.read_text()
    find_spec(app_id, texts)
    return texts


def rendered_image(root: Path, texts: Mapping[str, str], spec_file: str, env: str | None) -> Any:
    """The `image` the spec renders to with these texts (the values of `env`, if any), as a deploy
    renders it."""
    values_text = texts.get(f"values/{env}.yaml") if env else None
    values = (parse_yaml(values_text, f"values/{env}.yaml")[0] or {}) if values_text is not None else {}
    data, _ = parse_yaml(render_text(texts[spec_file], values, spec_file, env, root), spec_file)
    return data.get("image") if isinstance(data, dict) else None


class ConfigClone:
    """A clone of the config repository's `branch` in a temporary directory (a context manager)."""

    def __init__(self, config: str, branch: str = "main") -> None:
        self.config, self.branch = config, branch
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.work = Path()

    def __enter__(self) -> ConfigClone:
        self._tmp = tempfile.TemporaryDirectory(prefix="wharf-build-")
        self.work = Path(self._tmp.name) / "config"
        cloned = git(["clone", "-q", "--no-tags", "--single-branch", "--branch", self.branch, "--", self.config,
                      str(self.work)])
        if cloned.returncode != 0:
            self.__exit__(None, None, None)
            raise Failure(f"write-back failed: cannot clone {self.config} (branch {self.branch}): {_said(cloned)}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def head(self) -> str:
        """The commit the clone's work tree is at."""
        return git(["rev-parse", "HEAD"], self.work).stdout.strip()

    def plan(self, app_id: str, env: str | None, image: str) -> ImageChange:
        """The change that sets `app_id`'s image at the clone's head; BadInput when the rule refuses
        or the spec would not render `image` after it. Reads files."""
        texts = repo_texts(self.work, env, app_id)
        change = plan_change(app_id, texts, env, image)
        if change.texts:
            rendered = rendered_image(self.work, {**texts, **change.texts}, change.site.file, env)
            if rendered != image:
                raise BadInput(f"{change.site.file}:{change.site.line}: after changing {change.where} the spec "
                               f"renders image {rendered!r}, not {image!r} (does a {{% set %}} or an include "
                               "override it?)")
        return change

    def _commit(self, change: ImageChange, app_id: str, image: str, code: str) -> None:
        for file, text in change.texts.items():
            write_atomic(self.work / file, text)
        message = (f"{app_id}: image → {image}\n\nBuilt by `wharf build` from code commit {code}.\n"
                   f"Changed {change.where}, which was {change.old}.\n")
        for args in (["add", "--", *change.texts], ["-c", "commit.gpgsign=false", "commit", "-q", "--no-verify",
                                                     "-m", message]):
            done = git(args, self.work, author=True)
            if done.returncode != 0:
                raise Failure(f"write-back failed: git {args[0]} in the clone of {self.config}: {_said(done)}")

    def _push(self, say: Say) -> tuple[bool, str, list[str]]:
        """`git push` (never forced), relaying what the remote's hooks say as they say it."""
        proc = subprocess.Popen(["git", "push", "--porcelain", "origin", f"HEAD:refs/heads/{self.branch}"],
                                cwd=self.work, env=git_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stderr is not None and proc.stdout is not None
        errors = []
        for line in proc.stderr:
            errors.append(line)
            if line.startswith("remote:") and line[7:].strip():
                say(f"config: {line[7:].strip()}")
        porcelain = proc.stdout.read()
        proc.wait()
        ok, summary = push_summary(porcelain, self.branch)
        said = remote_lines("".join(errors)) or [" ".join("".join(errors).split())]
        return ok and proc.returncode == 0, summary, said

    def _fetch(self) -> str:
        fetched = git(["fetch", "-q", "--no-tags", "origin", f"refs/heads/{self.branch}"], self.work)
        if fetched.returncode != 0:
            raise Failure(f"write-back failed: the push was refused, and fetching {self.config} failed: "
                          f"{_said(fetched)}")
        return git(["rev-parse", "FETCH_HEAD"], self.work).stdout.strip()

    def write(self, app_id: str, env: str | None, image: str, code: str, say: Say = lambda line: None,
              attempts: int = ATTEMPTS, before_push: Callable[[int], None] | None = None) -> WriteBackResult:
        """Commit and push the change that sets `app_id`'s image, again on top of the branch's new
        head when it moved on meanwhile. `before_push(attempt)` runs just before each push."""
        for attempt in range(1, attempts + 1):
            base = self.head()
            change = self.plan(app_id, env, image)
            if not change.texts:
                return WriteBackResult(base, change, False, attempt)
            self._commit(change, app_id, image, code)
            if before_push is not None:
                before_push(attempt)
            ok, summary, said = self._push(say)
            if ok:
                return WriteBackResult(self.head(), change, True, attempt)
            now = self._fetch()
            if now == base:
                why = "; ".join(s for s in said if s)
                raise Failure(f"write-back failed: {self.config} refused the push, {summary}" + (f": {why}" if why
                                                                                                  else ""))
            say(f"write-back: {self.config} moved on meanwhile ({base[:7]} → {now[:7]}); applying the change "
                "again on top of it")
            reset = git(["reset", "-q", "--hard", now], self.work)
            if reset.returncode != 0:
                raise Failure(f"write-back failed: git reset in the clone of {self.config}: {_said(reset)}")
        raise Failure(f"write-back failed: {self.config} moved on {attempts} times while wharf pushed; gave up "
                      "(nothing was overwritten)")
