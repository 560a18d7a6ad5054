"""The config repository's `jobs/`: every `jobs/*.yaml` rendered, read as a job spec and checked.

Bad input is one line naming the file, the line, the field and the reason (`wharf.errors.BadInput`),
raised before anything is sent anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chronos_jobs import graph, spec
from wharf.errors import BadInput

__all__ = ["JobFile", "bad_input", "check_graph", "load"]

JOBS_DIR = "jobs"


@dataclass(frozen=True)
class JobFile:
    """One job of the repository: the file it came from, its Chronos body, its fields' lines."""

    path: str
    job: dict[str, Any]
    lines: Mapping[str, int] = field(default_factory=dict, compare=False)

    def line(self, dotted: str) -> int | None:
        return self.lines.get(dotted.split(".")[0].split("[")[0])


def bad_input(path: str, line: int | None, field_name: str, reason: str) -> BadInput:
    where = f"{path}:{line}" if line else path
    return BadInput(f"{where}: {field_name}: {reason}")


def _field_lines(text: str) -> dict[str, int]:
    """Top-level key -> 1-based line in a YAML document (best effort: {} if it does not compose)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {key.value: key.start_mark.line + 1 for key, _ in node.value if isinstance(key, yaml.ScalarNode)}


def _render(directory: Path, path: Path, env: str | None) -> tuple[str, Any]:
    text = path.read_text()
    try:
        return text, yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise bad_input(str(path.relative_to(directory)), mark.line + 1 if mark else None, "yaml",
                        str(getattr(error, "problem", error))) from None


def load(directory: Path, env: str | None = None) -> dict[str, JobFile]:
    """Every job of `directory/jobs/*.yaml`, by name, each checked on its own (not yet the graph)."""
    jobs_dir = directory / JOBS_DIR
    if not directory.is_dir():
        raise BadInput(f"{directory}: not a directory")
    found: dict[str, JobFile] = {}
    for path in sorted(jobs_dir.glob("*.yaml")) if jobs_dir.is_dir() else []:
        shown = str(path.relative_to(directory))
        text, data = _render(directory, path, env)
        lines = _field_lines(text)
        try:
            body = spec.to_chronos(data)
        except spec.SpecError as error:
            raise bad_input(shown, lines.get(error.field.split(".")[0].split("[")[0]), error.field,
                            error.reason) from None
        name = body["name"]
        if name in found:
            raise bad_input(shown, lines.get("name"), "name",
                            f"job '{name}' is also defined in {found[name].path}")
        found[name] = JobFile(shown, body, lines)
    return found


def check_graph(files: Mapping[str, JobFile], chronos: Mapping[str, Mapping[str, Any]] | None,
                removed: list[str] | None = None) -> None:
    """`graph.check` over the repository's jobs, its error naming the job's file and line."""
    try:
        graph.check({name: f.job for name, f in files.items()}, chronos, removed or ())
    except graph.GraphError as error:
        bad = files[error.job]
        raise bad_input(bad.path, bad.line(error.field), error.field, error.reason) from None
