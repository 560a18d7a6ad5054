"""The house's floors (DESIGN.md, "Layout"; README, "Rooms"), read from the source tree.

The ground floor (`wharf/`, its `contracts/` too) imports no room. A product room imports the ground
floor, itself, the standard library and third-party packages, never another room. The dev cluster
and its demos stand above the product: they may import any of it, and nothing in the product imports
them, not even by name (`"devcluster.cli:dev"` in a table of commands is an import all the same).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GROUND = "wharf"
PRODUCT_ROOMS = ("framework", "marathon_apps", "chronos_jobs", "registrator", "consul_templates", "autoscale",
                 "observe", "builder")
ABOVE = "devcluster"
#: every top-level package of this checkout; whatever else a module imports is stdlib or third-party
FIRST_PARTY = frozenset({GROUND, *PRODUCT_ROOMS, ABOVE, "tests", "bench"})
#: the rooms each room may import besides the ground floor (which everyone may import)
MAY_IMPORT = {GROUND: frozenset(), **{room: frozenset({room}) for room in PRODUCT_ROOMS},
              ABOVE: frozenset({ABOVE, *PRODUCT_ROOMS})}
#: a string naming a first-party module, as an import-by-name table or `import_module` would
MODULE_NAME = re.compile(r"(?P<top>[a-z_]+)(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?")
DEMO = re.compile(r"demos?")


def docstrings(tree: ast.Module) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body and isinstance(node.body[0], ast.Expr)}


def imports(rel: str, tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, module) of everything `tree` (at `rel`, a path in the checkout) imports: `import` and
    `from` statements (relative ones resolved), and every other string naming a first-party module
    (`importlib.import_module("x.y")`, `"x.y:attr"` in a table of commands)."""
    package = rel.removesuffix(".py").split("/")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
    skip = docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            for word in node.value.split():
                found = MODULE_NAME.fullmatch(word.strip("'\"`,;()"))
                if found and found["top"] in FIRST_PARTY:
                    yield node.lineno, found[0].partition(":")[0]


def room_of(rel: str) -> str:
    return rel.split("/")[0]


def modules(root: Path, rooms: tuple[str, ...]) -> Iterator[tuple[str, ast.Module]]:
    for room in rooms:
        for path in sorted((root / room).rglob("*.py")):
            yield path.relative_to(root).as_posix(), ast.parse(path.read_text(), str(path))


def layer_breaks(root: Path) -> list[str]:
    """Every import in `root`'s rooms that goes sideways or down the wrong way."""
    found = []
    for rel, tree in modules(root, tuple(MAY_IMPORT)):
        room = room_of(rel)
        for line, module in imports(rel, tree):
            top = module.split(".")[0]
            if top in FIRST_PARTY and top != GROUND and top not in MAY_IMPORT[room]:
                found.append(f"{rel}:{line}: {room} imports {module}")
    return found


def test_every_room_imports_only_what_its_floor_allows() -> None:
    assert layer_breaks(ROOT) == [], ("the ground floor imports no room; a product room imports wharf and "
                                      "itself; only the dev cluster imports the product")


def test_the_product_does_not_import_the_dev_cluster() -> None:
    found = [f"{rel}:{line}: {module}" for rel, tree in modules(ROOT, (GROUND, *PRODUCT_ROOMS))
             for line, module in imports(rel, tree) if module.split(".")[0] == ABOVE]
    assert found == [], "the dev cluster stands above the product: let it contribute (setup.cfg's entry points)"


#: the CLI's edge: the only modules that may know click (each room's command group and its printing)
CLI_EDGE = re.compile(r"(cli|output)\.py")


def test_click_is_known_only_at_the_cli_edge() -> None:
    """wharf's errors are plain exceptions with a message and an exit code; only the command groups
    (and the printing they use) import click, and `wharf.cli` turns an error into click's."""
    found = [f"{rel}:{line}: imports {module}" for rel, tree in modules(ROOT, (GROUND, *PRODUCT_ROOMS))
             for line, module in imports(rel, tree)
             if module.split(".")[0] == "click" and not CLI_EDGE.fullmatch(rel.rsplit("/", 1)[-1])]
    assert not found, "\n".join(found)
    from wharf.errors import WharfError

    assert not any(c.__module__.startswith("click") for c in WharfError.__mro__)


def test_the_demos_live_with_the_dev_cluster() -> None:
    in_product = [p.relative_to(ROOT).as_posix() for room in (GROUND, *PRODUCT_ROOMS)
                  for p in (ROOT / room).rglob("*.py") if any(DEMO.fullmatch(part.removesuffix(".py"))
                                                              for part in p.relative_to(ROOT).parts)]
    imported = [f"{rel}:{line}: {module}" for rel, tree in modules(ROOT, (GROUND, *PRODUCT_ROOMS))
                for line, module in imports(rel, tree) if any(DEMO.fullmatch(part) for part in module.split("."))]
    assert in_product == [] and imported == [], (in_product, imported)
    assert (ROOT / ABOVE / "demos").is_dir()


#: what the house looked like before the floors were kept apart, and mistakes like those
BAD = {
    "wharf/cli.py": 'ROOMS = {"dev": "devcluster.cli:dev", "apps": "marathon_apps.cli:apps"}\n',
    "wharf/contracts/names.py": "from marathon_apps.spec import App\n",
    "autoscale/demo.py": "from devcluster.cluster import Cluster\nfrom wharf.wait import wait_until\n",
    "consul_templates/apply.py": "import importlib\nimportlib.import_module('devcluster.haproxy')\n",
    "registrator/services.py": "from ..marathon_apps import spec\nfrom . import model\n",
    "framework/cli.py": "import chronos_jobs.client as c\nfrom framework.tasks import TaskSpec\n",
    "marathon_apps/deploy.py": '"""As `registrator.worker` does (a docstring names, not imports)."""\nimport yaml\n',
    "devcluster/cluster.py": "from consul_templates.apply import parse_show_proc\nfrom tests.polling import poll\n",
}


def test_the_layer_scan_finds_every_way_up_down_or_sideways(tmp_path: Path) -> None:
    for rel, text in BAD.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert layer_breaks(tmp_path) == [
        "wharf/cli.py:1: wharf imports devcluster.cli",
        "wharf/cli.py:1: wharf imports marathon_apps.cli",
        "wharf/contracts/names.py:1: wharf imports marathon_apps.spec",
        "framework/cli.py:1: framework imports chronos_jobs.client",
        "registrator/services.py:1: registrator imports marathon_apps",
        "consul_templates/apply.py:2: consul_templates imports devcluster.haproxy",
        "autoscale/demo.py:1: autoscale imports devcluster.cluster",
        "devcluster/cluster.py:2: devcluster imports tests.polling",
    ]


def test_every_error_the_product_defines_is_in_wharfs_error_tree() -> None:
    """One error family: each exception class of the ground floor and the product rooms (their CLI
    edges aside) derives from `WharfError` (bad input exits 2, a failure 1), whatever else it also is
    (a ValueError, say)."""
    import importlib
    import inspect

    from wharf.errors import WharfError

    outside = []
    for rel, _ in modules(ROOT, (GROUND, *PRODUCT_ROOMS)):
        if rel.endswith("__main__.py") or CLI_EDGE.fullmatch(rel.rsplit("/", 1)[-1]):
            continue  # runs the command when imported; the CLI's edge speaks click's errors
        module = importlib.import_module(rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__"))
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__
                    and not issubclass(value, WharfError)):
                outside.append(f"{rel}: {name}")
    assert not outside, "\n".join(outside)
