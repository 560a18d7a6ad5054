"""The `wharf` command: every room's group is listed and loads, and a command loads only its own room."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from wharf.cli import cli, rooms

pytestmark = pytest.mark.unit


def test_help_lists_every_room_and_each_one_loads() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    # the entry points as installed: an install older than setup.cfg's would list none
    assert set(rooms()) == {"apps", "autoscale", "build", "dev", "framework", "jobs", "registrator", "render", "trace",
                             "ui"}
    for name in rooms():
        assert f"  {name} " in result.output
        sub = CliRunner().invoke(cli, [name, "--help"])
        assert sub.exit_code == 0, (name, sub.output)
        assert "Usage: " in sub.output and name in sub.output


def test_an_unknown_command_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(cli, ["rendr"])
    assert result.exit_code == 2 and "No such command 'rendr'" in result.output


def test_a_command_imports_only_its_own_room() -> None:
    code = ("import sys; from wharf.cli import cli\n"
            "try:\n    cli(['render', 'once', '--help'], prog_name='wharf')\nexcept SystemExit:\n    pass\n"
            "others = ('kazoo', 'docker', 'marathon_apps', 'framework', 'matplotlib')\n"
            "print(sorted(m for m in others if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
