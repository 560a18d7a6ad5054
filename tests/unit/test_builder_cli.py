"""`wharf build` and `wharf build hook install` on bad input: one line, exit 2, nothing built or changed
(the write-back rule is checked on a clone of the config repository before the Docker engine is asked)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from wharf.cli import cli

pytestmark = pytest.mark.unit


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A code work tree with a commit, a bare config repository whose /web reads `{{ web.image }}`, a
    bare code repository."""
    code, config, work = tmp_path / "code", tmp_path / "config.git", tmp_path / "work"
    git("init", "-q", "-b", "main", str(code), cwd=tmp_path)
    (code / "Dockerfile").write_text("FROM wharf/busybox:latest\n")
    git("add", "-A", cwd=code)
    git("commit", "-q", "-m", "code", cwd=code)
    git("init", "-q", "--bare", "-b", "main", str(config), cwd=tmp_path)
    git("init", "-q", "-b", "main", str(work), cwd=tmp_path)
    (work / "apps").mkdir()
    (work / "apps" / "web.yaml").write_text("image: '{{ web.image }}'\ncmd: run\n")
    (work / "apps" / "api.yaml").write_text("cmd: run\n")
    (work / "values").mkdir()
    (work / "values" / "dev.yaml").write_text("web: {image: a/b:1}\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "config", cwd=work)
    git("push", "-q", str(config), "main", cwd=work)
    git("init", "-q", "--bare", "-b", "main", str(tmp_path / "code.git"), cwd=tmp_path)
    return code, config, tmp_path / "code.git"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_help_shows_the_build_and_its_hook() -> None:
    result = CliRunner().invoke(cli, ["build", "--help"], prog_name="wharf")
    code, out = result.exit_code, result.stdout
    assert code == 0 and out.startswith("Usage: wharf build [OPTIONS] DIR\n")
    assert "--config-repo CONFIG.git" in out and "hook" in out


def test_no_registry_is_bad_input(repos: tuple[Path, Path, Path]) -> None:
    code_dir, config, _ = repos
    code, _, err = run("build", str(code_dir), "--app", "/web", "--config-repo", str(config))
    assert code == 2 and err.strip() == ("Error: --registry: no registry given (set WHARF_REGISTRY or --registry "
                                         "HOST:PORT)")
    code, _, err = run("build", str(code_dir), "--app", "/web", "--config-repo", str(config / "nope"),
                       env={"WHARF_REGISTRY": "127.0.0.1:5000"})
    assert code == 2 and err.strip() == f"Error: --config-repo: {config / 'nope'}: no such repository"


@pytest.mark.parametrize(("app", "env", "line"), [
    ("/web", None, "write-back failed: apps/web.yaml:1: image reads the value web.image: give --env to name the "
                   "values/<env>.yaml to change"),
    ("/api", "dev", "write-back failed: apps/api.yaml: no top-level `image:` line: wharf writes back only an image "
                    "set there, as a literal or one value ({{ image }}, {{ web.image }})"),
])
def test_a_spec_the_rule_refuses_stops_before_any_build(repos: tuple[Path, Path, Path], app: str, env: str | None,
                                                        line: str) -> None:
    code_dir, config, _ = repos
    before = git("rev-parse", "main", cwd=config)
    args = ["build", str(code_dir), "--app", app, "--config-repo", str(config), "--json"] + (
        ["--env", env] if env else [])
    code, out, err = run(*args, env={"WHARF_REGISTRY": "127.0.0.1:5000"})
    assert code == 2 and err.strip() == f"Error: {line}"
    report = json.loads(out)
    assert report["error"] == line and report["steps"] == [{"step": "write-back", "ok": False,
                                                           "seconds": report["steps"][0]["seconds"]}]
    assert report["image"] == f"127.0.0.1:5000{app}:{git('rev-parse', 'HEAD', cwd=code_dir)[:7]}"
    assert git("rev-parse", "main", cwd=config) == before


def test_a_dirty_work_tree_is_bad_input(repos: tuple[Path, Path, Path]) -> None:
    code_dir, config, _ = repos
    (code_dir / "Dockerfile").write_text("FROM scratch\n")
    code, _, err = run("build", str(code_dir), "--app", "/web", "--config-repo", str(config), "--registry", "r:1")
    assert code == 2 and "1 uncommitted change(s) (first: Dockerfile)" in err


def test_hook_install_checks_the_rule_then_writes_the_hook(repos: tuple[Path, Path, Path]) -> None:
    _, config, code_bare = repos
    code, _, err = run("build", "hook", "install", str(code_bare), "--config-repo", str(config), "--app", "/api")
    assert code == 2 and "apps/api.yaml: no top-level `image:` line" in err
    assert not (code_bare / "hooks" / "post-receive").exists()
    code, out, _ = run("build", "hook", "install", str(code_bare), "--config-repo", str(config), "--app", "web",
                       "--env", "dev", "--registry", "127.0.0.1:5000")
    assert code == 0, out
    assert out.splitlines()[-1] == (f"pushes to main build /web; its image is written back at values/dev.yaml:1 "
                                    f"(web.image) of {config}")
    script = (code_bare / "hooks" / "post-receive").read_text()
    assert os.access(code_bare / "hooks" / "post-receive", os.X_OK)
    assert script.splitlines()[-1].endswith(f"-m wharf build hook run --branch main --app /web --config-repo "
                                            f"{config} --config-branch main --env dev --registry 127.0.0.1:5000")
