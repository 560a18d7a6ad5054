"""No 2,000-line modules (patroni's lesson): every module of the product and of the dev cluster is small.

The rule, counted from the source alone:
- a module is at most `MAX_MODULE_LINES` lines, counted as `wc -l` counts them (newlines);
- a function or method is at most `MAX_FUNCTION_LINES` lines, from its `def` line to its last line,
  decorators excluded. A nested function counts on its own and inside the one that holds it.

Every `.py` file under the product's rooms, `wharf/` and `devcluster/` (its stand-ins and demos
included) is checked; a failure lists every offender with its size.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.unit.test_layers import ABOVE, GROUND, PRODUCT_ROOMS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ROOMS = (GROUND, *PRODUCT_ROOMS, ABOVE)
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def checked_files() -> list[Path]:
    """Every Python file of the rooms, sorted."""
    return sorted(path for room in ROOMS for path in (ROOT / room).rglob("*.py"))


def module_lines(source: str) -> int:
    """Lines as `wc -l` counts them: newline characters."""
    return source.count("\n")


def function_sizes(source: str) -> list[tuple[str, int, int]]:
    """(qualified name, line of its `def`, lines from `def` to its end) of every function and method."""
    sizes: list[tuple[str, int, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                sizes.append((name, child.lineno, (child.end_lineno or child.lineno) - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return sizes


def offenders() -> tuple[list[str], list[str]]:
    """(modules over the limit, functions over the limit), each as `path: size` lines."""
    modules, functions = [], []
    for path in checked_files():
        source = path.read_text()
        where = path.relative_to(ROOT).as_posix()
        if module_lines(source) > MAX_MODULE_LINES:
            modules.append(f"{where}: {module_lines(source)} lines")
        for name, line, size in function_sizes(source):
            if size > MAX_FUNCTION_LINES:
                functions.append(f"{where}:{line} {name}: {size} lines")
    return modules, functions


def test_the_rule_counts_as_documented() -> None:
    source = ("@decorator\ndef f():\n    def g():\n        pass\n    return g\n\n\n"
              "class C:\n    def m(self):\n        pass\n")
    assert module_lines(source) == 10
    assert function_sizes(source) == [("f", 2, 4), ("f.g", 3, 2), ("C.m", 9, 2)]


def test_every_room_is_checked() -> None:
    files = {path.relative_to(ROOT).parts[0] for path in checked_files()}
    assert files == set(ROOMS)


def test_no_module_and_no_function_is_too_long() -> None:
    modules, functions = offenders()
    report: list[str] = []
    if modules:
        report += [f"modules over {MAX_MODULE_LINES} lines:", *modules]
    if functions:
        report += [f"functions over {MAX_FUNCTION_LINES} lines (def to end, decorators excluded):", *functions]
    assert not report, "split these along their seams:\n" + "\n".join(report)
