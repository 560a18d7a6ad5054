"""The config repository's `jobs/`: every spec rendered with the environment's values, read as a job
spec and checked, through `wharf.configrepo` (the same rendering and values as the apps).

Bad input is one line per problem naming the file, the line, the field and the reason
(`configrepo.SpecErrors`, exit 2), raised before anything is sent anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chronos_jobs import graph, spec
from wharf import configrepo
from wharf.errors import BadInput

__all__ = ["FOLDER", "JobFile", "check_graph", "load"]

FOLDER = "jobs"


@dataclass(frozen=True)
class JobFile:
    """One job of the repository: the rendered spec it came from and its Chronos body."""

    source: configrepo.Spec
    job: dict[str, Any]

    @property
    def path(self) -> str:
        return self.source.file


def load(directory: Path, env: str | None = None) -> dict[str, JobFile]:
    """Every job under `directory/jobs/`, by name, each checked on its own (not yet the graph).

    Every file is tried; SpecErrors lists every problem found.
    """
    if not directory.is_dir():
        raise BadInput(f"{directory}: not a directory")
    values = configrepo.load_values(directory, env)
    found: dict[str, JobFile] = {}
    errors: list[configrepo.SpecError] = []
    for source in configrepo.load_specs(directory, FOLDER, values, env):
        try:
            body = spec.to_chronos(source.data, default_name=source.name)
        except spec.JobSpecError as error:
            errors.append(source.error(error.path, error.reason))
            continue
        name = body["name"]
        if name in found:
            errors.append(source.error(("name",), f"job '{name}' is also defined in {found[name].path}"))
            continue
        found[name] = JobFile(source, body)
    if errors:
        raise configrepo.SpecErrors(errors)
    return found


def check_graph(files: Mapping[str, JobFile], chronos: Mapping[str, Mapping[str, Any]] | None,
                removed: Iterable[str] = ()) -> None:
    """`graph.check` over the repository's jobs, its error naming the job's file and line."""
    try:
        graph.check({name: f.job for name, f in files.items()}, chronos, removed)
    except graph.GraphError as error:
        raise configrepo.SpecErrors([files[error.job].source.error((error.field,), error.reason)]) from None
