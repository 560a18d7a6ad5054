"""The config repository every deploying room reads: specs and per-environment values.

A config repository holds one YAML spec per thing under a folder (`apps/`, `jobs/`), Jinja
templated with the values of one environment (`values/<env>.yaml`), plus optional `templates/`
for `{% include %}` and `{% import %}`. This module knows nothing of Marathon or Chronos:

    values = load_values(root, "dev")                 # {} when env is None
    specs = load_specs(root, "apps", values, "dev")   # raises SpecErrors naming file, line, field
    specs[0].name, specs[0].data, specs[0].line(("health", "path"))

Templates run in Jinja's `SandboxedEnvironment` with `StrictUndefined`: a missing value is an
error naming the file and line, never an empty string. The context is the environment's values
at top level, plus `env` (the environment's name) unless the values define `env` themselves.

The git side (hooks that check a push, then sync it) is `wharf.githooks`.

Pure except where a docstring says it reads or writes files.
"""

from __future__ import annotations

import functools
import hashlib
import re
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml
from jinja2.sandbox import SandboxedEnvironment

from wharf.errors import BadInput

__all__ = [
    "FieldPath", "Spec", "SpecError", "SpecErrors", "field_text", "load_specs", "load_values", "parse_yaml",
    "render_text", "spec_files",
]

FieldPath = tuple[str | int, ...]
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: ~10x faster


# --- errors --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SpecError:
    """One problem in one spec file: `apps/web.yaml:7: health.path: must be a string`."""

    file: str
    reason: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class SpecErrors(BadInput):
    """Bad specs: one line per problem (exit 2). `errors` keeps them as values."""

    def __init__(self, errors: Iterable[SpecError]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors) or "bad spec")


def field_text(path: Sequence[str | int]) -> str:
    """`("health", "checks", 0, "path")` -> `health.checks[0].path`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --- YAML with line numbers ----------------------------------------------------------------------

def _walk(node: yaml.Node, path: FieldPath, lines: dict[FieldPath, int], dups: list[tuple[FieldPath, int]]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            if name in seen:
                dups.append(((*path, name), key.start_mark.line + 1))
            seen.add(name)
            lines[(*path, name)] = key.start_mark.line + 1
            _walk(value, (*path, name), lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, dups)


def parse_yaml(text: str, file: str) -> tuple[Any, dict[FieldPath, int]]:
    """Parse one YAML document; return the data and the line (1-based) of every field path.

    Raises SpecErrors for a syntax error or a key given twice (YAML would silently keep the last).
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        raise SpecErrors([SpecError(file, reason, mark.line + 1 if mark else None)]) from None
    finally:
        loader.dispose()
    lines: dict[FieldPath, int] = {}
    dups: list[tuple[FieldPath, int]] = []
    if node is not None:
        _walk(node, (), lines, dups)
    if dups:
        raise SpecErrors([SpecError(file, "given twice", line, field_text(p)) for p, line in dups])
    return data, lines


# --- values and templates ------------------------------------------------------------------------

def load_values(root: Path, env: str | None) -> dict[str, Any]:
    """Read `values/<env>.yaml` under `root` (a mapping); `{}` when `env` is None. Reads a file."""
    if env is None:
        return {}
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", env):
        raise BadInput(f"--env: {env!r} is not a valid environment name")
    rel = f"values/{env}.yaml"
    path = root / rel
    if not path.is_file():
        known = sorted(p.stem for p in (root / "values").glob("*.yaml")) if (root / "values").is_dir() else []
        hint = f" (known: {', '.join(known)})" if known else ""
        raise BadInput(f"{rel}: no such file: --env {env} names no environment{hint}")
    data, _ = parse_yaml(path.read_text(), rel)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecErrors([SpecError(rel, f"expected a mapping of values, got {type(data).__name__}", 1)])
    return data


class _Sources(jinja2.BaseLoader):
    """Spec sources by content hash: a spec's compiled template is found again in Jinja's bytecode
    cache whatever directory the file was checked out to (a push exports each tree afresh)."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}

    def add(self, text: str) -> str:
        name = "spec-" + hashlib.sha256(text.encode()).hexdigest()
        self.sources[name] = text
        return name

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, None, Callable[[], bool]]:
        if template not in self.sources:
            raise jinja2.TemplateNotFound(template)
        return self.sources[template], None, lambda: True  # no file name: tracebacks say "<template>"


@functools.lru_cache(maxsize=8)
def _environment(root: Path | None) -> tuple[SandboxedEnvironment, _Sources]:
    sources = _Sources()
    templates = root / "templates" if root is not None else None
    loaders: list[jinja2.BaseLoader] = [sources]
    if templates is not None and templates.is_dir():
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    # The bytecode cache lives in a directory of this user's own (Jinja checks owner and mode).
    environment = SandboxedEnvironment(undefined=jinja2.StrictUndefined, loader=jinja2.ChoiceLoader(loaders),
                                       keep_trailing_newline=True, autoescape=False, cache_size=5000,
                                       bytecode_cache=jinja2.FileSystemBytecodeCache())
    return environment, sources


def _template_line(exc: BaseException) -> int | None:
    """The spec-file line a Jinja runtime error happened on (Jinja rewrites tracebacks to templates)."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == "<template>":
            line = lineno
    return line


def render_text(text: str, values: Mapping[str, Any], file: str, env: str | None = None,
                root: Path | None = None) -> str:
    """Render one spec's Jinja source with `values` (and `env`), sandboxed and strict.

    `root` enables `{% include %}` from the repository's `templates/`. Raises SpecErrors naming
    the file, the line and Jinja's reason.
    """
    context = dict(values)
    if env is not None:
        context.setdefault("env", env)
    environment, sources = _environment(root)
    try:
        return environment.get_template(sources.add(text)).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise SpecErrors([SpecError(file, f"template error: {exc.message}", exc.lineno)]) from None
    except jinja2.TemplateError as exc:  # UndefinedError, SecurityError, TemplateNotFound, ...
        reason = exc.message or type(exc).__name__
        kind = "undefined value" if isinstance(exc, jinja2.UndefinedError) else "template error"
        raise SpecErrors([SpecError(file, f"{kind}: {reason}", _template_line(exc))]) from None
    except Exception as exc:  # a filter given the wrong type, a division by zero, ...
        raise SpecErrors([SpecError(file, f"template error: {type(exc).__name__}: {exc}",
                                    _template_line(exc))]) from None


# --- specs ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Spec:
    """One rendered spec file: `file` relative to the repository (`apps/shop/web.yaml`), `name` its
    path under the folder without the suffix (`shop/web`), `data` the parsed mapping."""

    file: str
    name: str
    data: dict[str, Any]
    lines: Mapping[FieldPath, int] = field(default_factory=dict, repr=False, compare=False)

    def line(self, path: Sequence[str | int] = ()) -> int | None:
        """The line of `path`, or of its nearest parent that the file has."""
        parts = tuple(path)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get(())

    def error(self, path: Sequence[str | int], reason: str) -> SpecError:
        """A SpecError at `path` of this spec (`()` for the whole file)."""
        return SpecError(self.file, reason, self.line(path), field_text(path) or None)


def spec_files(root: Path, folder: str) -> list[Path]:
    """Every `*.yaml` / `*.yml` under `root/folder`, sorted. Reads the directory."""
    base = root / folder
    if not base.is_dir():
        return []
    return sorted(p for p in base.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))


def load_spec(root: Path, path: Path, folder: str, values: Mapping[str, Any], env: str | None) -> Spec:
    """Render and parse one spec file (reads it); raises SpecErrors."""
    rel = path.relative_to(root).as_posix()
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecErrors([SpecError(rel, f"cannot read: {exc}")]) from None
    data, lines = parse_yaml(render_text(source, values, rel, env, root), rel)
    if not isinstance(data, dict):
        got = "nothing" if data is None else type(data).__name__
        raise SpecErrors([SpecError(rel, f"expected a mapping, got {got}", 1)])
    name = path.relative_to(root / folder).with_suffix("").as_posix()
    return Spec(rel, name, data, lines)


def load_specs(root: Path, folder: str, values: Mapping[str, Any], env: str | None = None) -> list[Spec]:
    """Render and parse every spec under `root/folder` (reads them).

    Every file is tried; if any fails, SpecErrors lists all the problems found.
    """
    specs: list[Spec] = []
    errors: list[SpecError] = []
    for path in spec_files(root, folder):
        try:
            specs.append(load_spec(root, path, folder, values, env))
        except SpecErrors as exc:
            errors.extend(exc.errors)
    if errors:
        raise SpecErrors(errors)
    return specs
