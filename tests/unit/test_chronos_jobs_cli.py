"""`wharf jobs render` and `graph` over a repository on disk: values, templates, errors (no Chronos)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from wharf.cli import cli

pytestmark = pytest.mark.unit


def repo(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"CHRONOS_URL": ""})
    return result.exit_code, result.output


FILES = {
    "values/prod.yaml": "hour: '03'\nimage: wharf/busybox:latest\n",
    "jobs/extract.yaml": "schedule: R/2030-01-01T{{ hour }}:00:00Z/P1D\nimage: '{{ image }}'\n"
                         "command: echo {{ env }}\nenv: {STAGE: '{{ env }}'}\n",
    "jobs/report.yaml": "name: report\nparents: [extract]\ncommand: echo report\n",
}


def test_render_uses_the_environments_values_and_orders_parents_first(tmp_path: Path) -> None:
    code, out = invoke("jobs", "render", str(repo(tmp_path, FILES)), "--env", "prod", "--json")
    assert code == 0, out
    extract, report = json.loads(out)
    assert extract["name"] == "extract"  # from the file's name
    assert extract["schedule"] == "R/2030-01-01T03:00:00Z/P1D"
    assert extract["container"]["image"] == "wharf/busybox:latest"
    assert extract["environmentVariables"] == [{"name": "STAGE", "value": "prod"},
                                               {"name": "WHARF_OWNER", "value": "wharf"}]
    assert report["parents"] == ["extract"]


def test_a_missing_value_names_file_and_line(tmp_path: Path) -> None:
    root = repo(tmp_path, {**FILES, "values/dev.yaml": "image: x\n"})
    code, out = invoke("jobs", "render", str(root), "--env", "dev")
    assert code == 2
    assert "jobs/extract.yaml:1: undefined value: 'hour' is undefined" in out


def test_every_bad_file_is_named_at_once_and_plan_needs_chronos(tmp_path: Path) -> None:
    root = repo(tmp_path, {"jobs/a.yaml": "schedule: R5x/2030-01-01T00:00:00Z/P1D\ncommand: x\n",
                           "jobs/b.yaml": "command: x\nparents: [a]\nschedule: R//P1D\n"})
    code, out = invoke("jobs", "render", str(root))
    assert code == 2
    assert "jobs/a.yaml:1: schedule: 'R5x/2030-01-01T00:00:00Z/P1D': bad repeat count 'R5x'" in out
    assert "jobs/b.yaml:2: parents: give exactly one of 'schedule'" in out
    code, out = invoke("jobs", "plan", str(repo(tmp_path / "ok", {"jobs/a.yaml": FILES["jobs/report.yaml"]})))
    assert code == 2 and "--chronos-url: not set" in out


def test_graph_of_a_repository(tmp_path: Path) -> None:
    code, out = invoke("jobs", "graph", str(repo(tmp_path, FILES)), "--env", "prod")
    assert code == 0, out
    assert out == "extract  R/2030-01-01T03:00:00Z/P1D\n└── report\n"
    code, out = invoke("jobs", "graph", str(tmp_path), "--env", "prod", "--format", "dot")
    assert '"extract" -> "report";' in out
