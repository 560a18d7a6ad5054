"""The apps of a config repository: render every spec, expand, validate, check the graph."""

from __future__ import annotations

from pathlib import Path

from marathon_apps import graph
from marathon_apps.spec import DEFAULT_OWNER, App, expand_all
from wharf.configrepo import SpecError, SpecErrors, load_specs, load_values

FOLDER = "apps"


def graph_errors(apps: list[App]) -> list[SpecError]:
    """Dependencies on apps the repository does not have, and dependency cycles."""
    by_id = {a.id: a for a in apps}
    deps = {a.id: list(a.dependencies) for a in apps}
    errors = []
    for app_id, gone in graph.missing(deps).items():
        spec = by_id[app_id].spec
        where = ("after",) if "after" in spec.data else ("dependencies",)
        for dep in gone:
            errors.append(spec.error(where, f"depends on {dep}, which is not an app of this repository"))
    cycle = graph.find_cycle(deps)
    if cycle:
        spec = by_id[cycle[0]].spec
        where = ("after",) if "after" in spec.data else ("dependencies",)
        errors.append(spec.error(where, f"dependency cycle: {' -> '.join(cycle)} "
                                        f"({', '.join(by_id[a].spec.file for a in cycle[:-1])})"))
    return errors


def load_apps(root: Path, env: str | None = None, owner: str = DEFAULT_OWNER) -> list[App]:
    """Every app of the repository at `root`, valid and in deploy order; raises SpecErrors listing
    every problem (file, line, field, reason). Reads the files."""
    if not (root / FOLDER).is_dir():
        raise SpecErrors([SpecError(f"{FOLDER}/", f"no {FOLDER}/ folder in {root}")])
    specs = load_specs(root, FOLDER, load_values(root, env), env)
    apps: list[App] = []
    errors: list[SpecError] = []
    for app, problems in expand_all(specs, owner):
        errors.extend(problems)
        if app is not None:
            apps.append(app)
    seen: dict[str, str] = {}
    for app in apps:
        if app.id in seen:  # web.yaml and web.yml
            errors.append(app.spec.error((), f"app {app.id} is also defined by {seen[app.id]}"))
        seen[app.id] = app.spec.file
    if not errors:
        errors = graph_errors(apps)
    if errors:
        raise SpecErrors(errors)
    rank = {a: i for i, a in enumerate(graph.order({a.id: list(a.dependencies) for a in apps}))}
    return sorted(apps, key=lambda a: rank[a.id])
