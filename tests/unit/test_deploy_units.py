"""The deploy files hold: each systemd unit's `ExecStart` is a real `wharf` command with flags it
accepts (its defaults file's variables expanded), `systemd-analyze verify` passes on every unit, and
shellcheck on every script of `vagrant/`."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from wharf.cli import cli

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "systemd").glob("*.service"))
DEFAULTS = REPO / "systemd" / "default"
INSTALLED_WHARF = "/opt/wharf/.venv/bin/wharf"
DAEMONS = {
    "wharf-registrator": ("registrator", "run"),
    "wharf-render": ("render", "run"),
    "wharf-autoscale": ("autoscale", "run"),
    "wharf-apps-watch-kv": ("apps", "watch-kv"),
    "wharf-jobs-watch-kv": ("jobs", "watch-kv"),
    "wharf-ui": ("ui",),
}


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Every `Key=value` of a unit file, by key, in order (sections merged: the keys do not clash)."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def environment_file(path: Path) -> dict[str, str]:
    """`NAME="value"` lines as systemd's EnvironmentFile= reads them (comments and quotes dropped)."""
    variables: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith(("#", ";")):
            name, _, value = line.partition("=")
            variables[name.strip()] = shlex.split(value)[0] if value.strip() else ""
    return variables


def exec_argv(unit: Path) -> list[str]:
    """The unit's ExecStart as systemd runs it with the shipped defaults: `$NAME` split on whitespace,
    `${NAME}` one word."""
    settings = unit_settings(unit)
    variables = dict(v.split("=", 1) for e in settings.get("Environment", []) for v in shlex.split(e))
    for spec in settings.get("EnvironmentFile", []):
        shipped = DEFAULTS / Path(spec.lstrip("-")).name
        assert shipped.is_file(), f"{unit.name}: no example for {spec} in systemd/default/"
        variables.update(environment_file(shipped))
    argv: list[str] = []
    for word in shlex.split(settings["ExecStart"][0]):
        if match := re.fullmatch(r"\$(\w+)", word):
            argv.extend(variables[match[1]].split())
        elif match := re.fullmatch(r"\$\{(\w+)\}", word):
            argv.append(variables[match[1]])
        else:
            argv.append(word)
    return argv


def parse(argv: list[str]) -> tuple[tuple[str, ...], click.Context]:
    """Resolve `wharf ...` down to its command and parse that command's flags, running nothing."""
    ctx = click.Context(cli, info_name="wharf")
    command: click.Command = cli
    path: list[str] = []
    words = list(argv)
    while isinstance(command, click.Group):
        assert words and not words[0].startswith("-"), f"wharf {' '.join(path)}: no subcommand in {argv}"
        name = words.pop(0)
        found = command.get_command(ctx, name)
        assert found is not None, f"wharf {' '.join(path)}: no command {name!r}"
        path.append(name)
        command = found
        if isinstance(command, click.Group):
            ctx = click.Context(command, info_name=name, parent=ctx)
    return tuple(path), command.make_context(path[-1], words, parent=ctx)


def test_there_is_one_unit_per_daemon() -> None:
    assert sorted(u.stem for u in UNITS) == sorted(DAEMONS)


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.stem)
def test_exec_start_is_a_wharf_command_with_flags_it_accepts(unit: Path) -> None:
    argv = exec_argv(unit)
    assert argv[0] == INSTALLED_WHARF
    path, ctx = parse(argv[1:])
    assert path == DAEMONS[unit.stem]
    if "metrics_port" in ctx.params:
        assert ctx.params["metrics_port"], f"{unit.name}: no --metrics-port in its defaults"
    if path == ("render", "run"):
        assert len(ctx.params["templates"]) == len(ctx.params["dests"]), "each --template needs its --dest"


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.stem)
def test_each_unit_restarts_stops_on_sigterm_and_reads_the_shared_settings(unit: Path) -> None:
    settings = unit_settings(unit)
    assert settings["Restart"] == ["always"] and settings["KillSignal"] == ["SIGTERM"]
    assert "WHARF_CONFIG=/etc/wharf/wharf.yaml" in settings["Environment"]
    assert settings["EnvironmentFile"] == [f"-/etc/default/{unit.stem}"]
    assert "network-online.target" in settings["Wants"][0] and "network-online.target" in settings["After"][0]
    assert settings["NoNewPrivileges"] == ["yes"]


def test_every_metrics_port_is_its_own() -> None:
    ports = [m for f in DEFAULTS.iterdir() for m in re.findall(r"--metrics-port (\d+)", f.read_text())]
    assert len(ports) == len(set(ports)) == len(DAEMONS) - 1  # wharf ui serves /metrics on --listen


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_passes_on_every_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart's binary exists: point copies at this checkout's wharf.
    wharf = REPO / ".venv" / "bin" / "wharf"
    if not wharf.exists():
        pytest.skip(f"{wharf.relative_to(REPO)} is missing (run make bootstrap)")
    copies = []
    for unit in UNITS:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace(INSTALLED_WHARF, str(wharf)))
        copies.append(str(copy))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *copies],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def vagrant_scripts() -> list[Path]:
    vagrant = REPO / "vagrant"
    return sorted(p for p in vagrant.rglob("*") if p.is_file()
                  and (p.suffix == ".sh" or p.read_bytes().startswith(b"#!/bin/sh")
                       or p.read_bytes().startswith(b"#!/bin/bash")))


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_passes_on_every_vagrant_script() -> None:
    scripts = vagrant_scripts()
    assert scripts, "no scripts under vagrant/"
    result = subprocess.run(["shellcheck", "--external-sources", *map(str, scripts)],
                            cwd=REPO / "vagrant" / "provision", capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
