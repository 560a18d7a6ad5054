"""Unit tests see none of the caller's settings: not the variables `eval "$(wharf dev env)"` exports,
nor any other that wharf, its clients or the standard endpoints read, nor a `wharf.yaml` where they
were started."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from wharf import settings

PREFIXES = ("WHARF_", "MARATHON_", "MESOS_", "CHRONOS_", "CONSUL_", "DOCKER_", "LIBPROCESS_")


def callers_variables(environ: dict[str, str] | os._Environ[str]) -> list[str]:
    """The variables of ``environ`` that could change what wharf or a client under test does."""
    named = {s.env for s in settings.SETTINGS if s.env}
    return sorted(k for k in environ if k.startswith(PREFIXES) or k in named)


@pytest.fixture(scope="session")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(autouse=True)
def no_callers_settings(monkeypatch: pytest.MonkeyPatch, empty_dir: Path) -> Iterator[None]:
    for name in callers_variables(os.environ):
        monkeypatch.delenv(name)
    monkeypatch.chdir(empty_dir)
    yield
