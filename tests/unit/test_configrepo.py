"""The config repository: values, sandboxed strict templates, specs with file/line/field errors, hooks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from wharf import configrepo, githooks
from wharf.configrepo import SpecError, SpecErrors
from wharf.errors import BadInput
from wharf.githooks import HookStep, RefUpdate

pytestmark = pytest.mark.unit


def repo(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_values_of_the_named_environment_fill_the_template(tmp_path: Path) -> None:
    root = repo(tmp_path, {"values/dev.yaml": "replicas: 2\nimage: busybox\n",
                           "apps/shop/web.yaml": "instances: {{ replicas }}\nimage: {{ image }}:{{ env }}\n"})
    (spec,) = configrepo.load_specs(root, "apps", configrepo.load_values(root, "dev"), "dev")
    assert spec.file == "apps/shop/web.yaml" and spec.name == "shop/web"
    assert spec.data == {"instances": 2, "image": "busybox:dev"}
    assert spec.line(("image",)) == 2


def test_unknown_environment_names_the_known_ones(tmp_path: Path) -> None:
    root = repo(tmp_path, {"values/dev.yaml": "a: 1\n", "values/prod.yaml": "a: 2\n"})
    with pytest.raises(BadInput, match=r"values/qa.yaml: no such file.*known: dev, prod"):
        configrepo.load_values(root, "qa")


def test_a_missing_value_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    root = repo(tmp_path, {"apps/api.yaml": "cpus: 0.1\n\nmem: {{ memory }}\n"})
    with pytest.raises(SpecErrors) as info:
        configrepo.load_specs(root, "apps", {})
    (error,) = info.value.errors
    assert error.file == "apps/api.yaml" and error.line == 3
    assert "undefined value" in error.reason and "memory" in error.reason
    assert str(error).startswith("apps/api.yaml:3: undefined value")


def test_template_syntax_errors_name_the_line(tmp_path: Path) -> None:
    root = repo(tmp_path, {"apps/api.yaml": "a: 1\n{% if x %}\nb: 2\n"})
    with pytest.raises(SpecErrors) as info:
        configrepo.load_specs(root, "apps", {"x": True})
    assert info.value.errors[0].line is not None and "template error" in info.value.errors[0].reason


def test_templates_are_sandboxed(tmp_path: Path) -> None:
    root = repo(tmp_path, {"apps/api.yaml": "cmd: {{ ''.__class__.__mro__[1].__subclasses__() }}\n"})
    with pytest.raises(SpecErrors, match="apps/api.yaml:1: .*unsafe|apps/api.yaml:1: .*undefined"):
        configrepo.load_specs(root, "apps", {})


def test_includes_come_from_templates_dir(tmp_path: Path) -> None:
    root = repo(tmp_path, {"templates/res.j2": "cpus: {{ cpu }}\nmem: 64\n",
                           "apps/api.yaml": "{% include 'res.j2' %}\ninstances: 1\n"})
    (spec,) = configrepo.load_specs(root, "apps", {"cpu": 0.5})
    assert spec.data == {"cpus": 0.5, "mem": 64, "instances": 1}


def test_every_bad_file_is_reported_not_only_the_first(tmp_path: Path) -> None:
    root = repo(tmp_path, {"apps/a.yaml": "x: [1\n", "apps/b.yaml": "- 1\n", "apps/c.yaml": "k: 1\nk: 2\n",
                           "apps/ok.yaml": "k: 1\n"})
    with pytest.raises(SpecErrors) as info:
        configrepo.load_specs(root, "apps", {})
    text = str(info.value)
    assert [e.file for e in info.value.errors] == ["apps/a.yaml", "apps/b.yaml", "apps/c.yaml"]
    assert "not valid YAML" in text and "expected a mapping, got list" in text
    assert "apps/c.yaml:2: k: given twice" in text


def test_spec_error_points_at_nearest_known_field() -> None:
    spec = configrepo.Spec("apps/x.yaml", "x", {"health": {"http": 1}}, {(): 1, ("health",): 4, ("health", "http"): 5})
    assert spec.error(("health", "http"), "must be a string") == SpecError("apps/x.yaml", "must be a string", 5,
                                                                           "health.http")
    assert spec.error(("health", "port", 0), "bad").line == 4
    assert configrepo.field_text(("a", 0, "b")) == "a[0].b"


def test_hook_step_arguments() -> None:
    step = HookStep("apps", "apps", ("apps", "render", "{tree}", "--env", "{env}"),
                    ("apps", "deploy", "{tree}", "--commit", "{commit}"))
    assert step.argv("check", Path("/t"), "dev", "c0") == ["apps", "render", "/t", "--env", "dev"]
    assert step.argv("check", Path("/t"), None, "c0") == ["apps", "render", "/t"]
    assert step.argv("sync", Path("/t"), None, "c0") == ["apps", "deploy", "/t", "--commit", "c0"]
    assert step.argv("sync", Path("/t"), None, "c0", kv="wharf") == ["apps", "deploy", "/t", "--commit", "c0"]


def test_with_a_kv_prefix_each_shipped_step_writes_into_kv_and_still_checks_first() -> None:
    apps, jobs = githooks.STEPS
    assert apps.argv("sync", Path("/t"), "dev", "c0", kv="wharf/shop") == [
        "apps", "sync-kv", "/t", "--prefix", "wharf/shop/apps", "--commit", "c0", "--env", "dev"]
    assert jobs.argv("sync", Path("/t"), None, "c0", kv="wharf/shop") == [
        "jobs", "sync-kv", "/t", "--prefix", "wharf/shop/jobs", "--commit", "c0"]
    assert apps.argv("check", Path("/t"), "dev", "c0", kv="wharf/shop") == apps.argv("check", Path("/t"), "dev", "c0")


def test_ref_updates_and_unknown_steps() -> None:
    assert githooks.parse_ref_updates("a b refs/heads/main\n\n") == [RefUpdate("a", "b", "refs/heads/main")]
    with pytest.raises(BadInput, match="unknown step 'nope'"):
        githooks.steps_named(["apps", "nope"])


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_run_hook_checks_each_step_on_the_pushed_tree_of_the_branch(tmp_path: Path) -> None:
    work = repo(tmp_path / "work", {"apps/a.yaml": "x: 1\n", "README": "no jobs here\n"})
    _git("init", "-q", "-b", "main", cwd=work)
    _git("add", ".", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one", cwd=work)
    sha = _git("rev-parse", "HEAD", cwd=work)
    seen: list[list[str]] = []

    def invoke(argv: list[str]) -> int:
        tree = Path(argv[2])
        assert (tree / "apps" / "a.yaml").read_text() == "x: 1\n"
        seen.append(argv[:2] + argv[3:])
        return 0

    steps = [HookStep("apps", "apps", ("apps", "render", "{tree}"), ("apps", "deploy", "{tree}", "{commit}")),
             HookStep("jobs", "jobs", ("jobs", "render", "{tree}"), ("jobs", "sync", "{tree}"))]
    updates = [RefUpdate(githooks.ZERO, sha, "refs/heads/main"), RefUpdate(githooks.ZERO, sha, "refs/heads/x"),
               RefUpdate(sha, githooks.ZERO, "refs/heads/main")]
    lines: list[str] = []
    assert githooks.run_hook("pre-receive", updates, "main", steps, None, invoke, work / ".git", lines.append) == 0
    assert githooks.run_hook("post-receive", updates, "main", steps, None, invoke, work / ".git",
                               lines.append) == 0
    assert seen == [["apps", "render"], ["apps", "deploy", sha]]  # jobs/ absent: its step is skipped
    assert githooks.run_hook("pre-receive", updates[:1], "main", steps, None, lambda _: 2, work / ".git",
                               lines.append) == 2
    assert lines[-1] == "wharf: apps: push rejected"


def test_install_hooks_needs_a_bare_repository(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a bare git repository"):
        githooks.install_hooks(tmp_path, {"pre-receive": "x"})
    _git("init", "-q", "--bare", str(tmp_path / "r.git"), cwd=tmp_path)
    scripts = githooks.hook_scripts("/usr/bin/python3", ["--env", "dev"], config="/etc/wharf.yaml")
    paths = githooks.install_hooks(tmp_path / "r.git", scripts)
    assert [p.name for p in paths] == ["pre-receive", "post-receive"]
    text = paths[0].read_text()
    assert "WHARF_CONFIG=/etc/wharf.yaml exec /usr/bin/python3 -m wharf apps hook run pre-receive --env dev" in text
    assert paths[0].stat().st_mode & 0o111
