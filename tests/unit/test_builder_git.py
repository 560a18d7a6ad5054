"""The write-back's git side (builder/configgit.py) on local repositories in temporary directories:
the commit wharf makes, a concurrent push retried on top, a refusal that changes nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from builder.configgit import ConfigClone, code_commit, push_summary, remote_lines
from builder.hook import hook_script, hook_step
from wharf.errors import BadInput, Failure

pytestmark = pytest.mark.unit

NEW = "127.0.0.1:5000/web:abc1234"
CODE = "abc1234" + "0" * 33
SPEC = "# the front end\nimage: {{ web.image }}  # from values\ncmd: run\n"
VALUES = "# dev\nweb:\n  image: wharf/busybox:latest  # the last build\n  mem: 32\n"


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit_files(work: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", message, cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


@pytest.fixture
def config(tmp_path: Path) -> tuple[Path, Path]:
    """A bare config repository (with one commit) and another work tree of it, somebody else's."""
    bare, other = tmp_path / "config.git", tmp_path / "other"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    git("clone", "-q", str(bare), str(other), cwd=tmp_path)
    git("checkout", "-q", "-b", "main", cwd=other)
    commit_files(other, {"apps/web.yaml": SPEC, "values/dev.yaml": VALUES, "apps/api.yaml": "image: a/api:1\n"},
                 "first")
    git("push", "-q", "origin", "main", cwd=other)
    return bare, other


def head(bare: Path) -> str:
    return git("rev-parse", "refs/heads/main", cwd=bare)


def test_the_change_is_committed_as_wharf_and_pushed(config: tuple[Path, Path]) -> None:
    bare, _ = config
    before = head(bare)
    with ConfigClone(str(bare)) as clone:
        result = clone.write("/web", "dev", NEW, CODE)
    assert result.pushed and result.attempts == 1 and result.commit == head(bare) != before
    assert git("log", "-1", "--format=%an <%ae>|%cn <%ce>|%s|%b", cwd=bare) == (
        f"wharf <wharf@localhost>|wharf <wharf@localhost>|/web: image → {NEW}|Built by `wharf build` from code "
        f"commit {CODE}.\nChanged values/dev.yaml:3 (web.image), which was wharf/busybox:latest.")
    assert git("show", "main:values/dev.yaml", cwd=bare) + "\n" == VALUES.replace("wharf/busybox:latest", NEW)
    assert git("diff", "--name-only", before, "main", cwd=bare) == "values/dev.yaml"
    with ConfigClone(str(bare)) as clone:  # again: it holds the image already
        again = clone.write("/web", "dev", NEW, CODE)
    assert not again.pushed and again.commit == head(bare) == result.commit


def test_a_concurrent_push_is_retried_on_top_of_it(config: tuple[Path, Path]) -> None:
    bare, other = config
    said: list[str] = []
    theirs: list[str] = []

    def somebody_pushes(attempt: int) -> None:
        if attempt == 1:  # between wharf's clone and its push
            theirs.append(commit_files(other, {"apps/api.yaml": "image: a/api:2\n"}, "api: 2"))
            git("push", "-q", "origin", "main", cwd=other)

    with ConfigClone(str(bare)) as clone:
        base = clone.head()
        result = clone.write("/web", "dev", NEW, CODE, say=said.append, before_push=somebody_pushes)
    assert result.pushed and result.attempts == 2
    assert git("log", "--format=%H", cwd=bare).splitlines() == [result.commit, theirs[0], base]  # nothing lost
    assert git("show", "main:apps/api.yaml", cwd=bare) == "image: a/api:2"
    assert NEW in git("show", "main:values/dev.yaml", cwd=bare)
    assert said == [f"write-back: {bare} moved on meanwhile ({base[:7]} → {theirs[0][:7]}); applying the change "
                    "again on top of it"]


def test_it_gives_up_when_the_branch_keeps_moving(config: tuple[Path, Path]) -> None:
    bare, other = config

    def always(attempt: int) -> None:
        commit_files(other, {"apps/api.yaml": f"image: a/api:{attempt + 10}\n"}, f"api {attempt}")
        git("push", "-q", "origin", "main", cwd=other)

    with ConfigClone(str(bare)) as clone, pytest.raises(Failure) as failed:
        clone.write("/web", "dev", NEW, CODE, attempts=3, before_push=always)
    assert failed.value.message == (f"write-back failed: {bare} moved on 3 times while wharf pushed; gave up "
                                    "(nothing was overwritten)")
    assert git("log", "-1", "--format=%s", cwd=bare) == "api 3"


def test_a_refusal_by_the_config_repository_changes_nothing(config: tuple[Path, Path]) -> None:
    bare, _ = config
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'config is frozen today' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = head(bare)
    with ConfigClone(str(bare)) as clone, pytest.raises(Failure) as failed:
        clone.write("/web", "dev", NEW, CODE)
    assert failed.value.message == (f"write-back failed: {bare} refused the push, [remote rejected] (pre-receive hook "
                                    "declined): config is frozen today")
    assert head(bare) == before


def test_bad_input_is_found_on_the_clone_before_anything_is_written(config: tuple[Path, Path]) -> None:
    bare, _ = config
    before = head(bare)
    with ConfigClone(str(bare)) as clone:
        with pytest.raises(BadInput, match="apps/web.yaml:2: image reads the value web.image: give --env"):
            clone.plan("/web", None, NEW)
        with pytest.raises(BadInput, match="apps/nope.yaml: no such file"):
            clone.plan("/nope", "dev", NEW)
    assert head(bare) == before
    with pytest.raises(Failure, match=f"write-back failed: cannot clone {bare} \\(branch prod\\): "):
        ConfigClone(str(bare), "prod").__enter__()


def test_an_override_in_the_spec_is_caught_by_rendering(config: tuple[Path, Path]) -> None:
    bare, other = config
    commit_files(other, {"apps/web.yaml": "{% set web = {'image': 'pinned:1'} %}\n" + SPEC}, "pin")
    git("push", "-q", "origin", "main", cwd=other)
    with ConfigClone(str(bare)) as clone, pytest.raises(BadInput) as refused:
        clone.plan("/web", "dev", NEW)
    assert "renders image 'pinned:1', not" in refused.value.message


def test_git_variables_of_a_hook_do_not_leak_into_the_clone(config: tuple[Path, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    bare, _ = config
    elsewhere = tmp_path / "code.git"
    git("init", "-q", "--bare", str(elsewhere), cwd=tmp_path)
    monkeypatch.setenv("GIT_DIR", str(elsewhere))  # as git sets it for the code repository's hook
    with ConfigClone(str(bare)) as clone:
        assert clone.write("/web", "dev", NEW, CODE).pushed


def test_the_code_commit_is_head_of_a_clean_work_tree(tmp_path: Path) -> None:
    work = tmp_path / "code"
    git("init", "-q", str(work), cwd=tmp_path)
    with pytest.raises(BadInput, match="not a git work tree with a commit"):
        code_commit(work)
    sha = commit_files(work, {"Dockerfile": "FROM scratch\n"}, "code")
    assert code_commit(work) == sha
    (work / "page.html").write_text("new")
    with pytest.raises(BadInput, match=r"1 uncommitted change\(s\) \(first: page.html\)"):
        code_commit(work)


def test_push_answers_are_read_from_porcelain() -> None:
    ok = "To /x/config.git\n \tHEAD:refs/heads/main\t1a2b..3c4d\nDone\n"
    moved = "To /x\n!\tHEAD:refs/heads/main\t[rejected] (fetch first)\nDone\n"
    hooked = "To /x\n!\tHEAD:refs/heads/main\t[remote rejected] (pre-receive hook declined)\nDone\n"
    assert push_summary(ok, "main") == (True, "1a2b..3c4d")
    assert push_summary(moved, "main") == (False, "[rejected] (fetch first)")
    assert push_summary(hooked, "main") == (False, "[remote rejected] (pre-receive hook declined)")
    assert push_summary(ok, "prod") == (False, "git gave no answer for the branch")
    assert remote_lines("remote: a  \nremote:\nerror: x\nremote: b\n") == ["a", "b"]


def test_the_hook_runs_wharf_build_on_the_pushed_tree() -> None:
    step = hook_step("/web", "/srv/config{x}.git", "main", "127.0.0.1:5000")
    assert step.argv("sync", Path("/tmp/t"), "dev", "c0ffee") == [
        "build", "/tmp/t", "--app", "/web", "--config-repo", "/srv/config{x}.git", "--config-branch", "main",
        "--commit", "c0ffee", "--registry", "127.0.0.1:5000", "--env", "dev"]
    assert "--env" not in step.argv("sync", Path("/t"), None, "c0ffee")
    kept = hook_step("/web", "/c.git", kv="wharf/{dev}")
    assert kept.argv("sync", Path("/t"), None, "c0ffee")[-2:] == ["--kv", "wharf/{dev}"]
    script = hook_script("/venv/bin/python", ["--app", "/web", "--config-repo", "/a b"], "/etc/wharf.yaml")
    assert script.splitlines()[-1] == ("WHARF_CONFIG=/etc/wharf.yaml exec /venv/bin/python -m wharf build hook run "
                                       "--app /web --config-repo '/a b'")
