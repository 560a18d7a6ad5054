"""One name, one thing: no two public classes of the product and the dev cluster share a name, so a
name read anywhere (a traceback, a review, a grep) says which thing it is."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.unit.test_layers import ABOVE, GROUND, PRODUCT_ROOMS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SCANNED = (GROUND, *PRODUCT_ROOMS, ABOVE)
#: public class names deliberately defined twice (one thing under one name in two places), each with why
ALIASES: dict[str, str] = {}


def public_classes(root: Path) -> dict[str, list[str]]:
    """Each public top-level class name in `root`'s rooms, with where it is defined (`path:line`)."""
    found: dict[str, list[str]] = defaultdict(list)
    for room in SCANNED:
        for path in sorted((root / room).rglob("*.py")):
            for node in ast.parse(path.read_text(), str(path)).body:
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    found[node.name].append(f"{path.relative_to(root).as_posix()}:{node.lineno}")
    return found


def clashes(root: Path) -> dict[str, list[str]]:
    return {name: where for name, where in public_classes(root).items() if len(where) > 1 and name not in ALIASES}


def test_no_two_public_classes_share_a_name() -> None:
    assert clashes(ROOT) == {}, "name each for what it holds (DeployPlan, JobPlan, ...), or list a deliberate alias"


def test_every_alias_is_still_defined_twice() -> None:
    classes = public_classes(ROOT)
    assert [name for name in ALIASES if len(classes.get(name, ())) < 2] == []


def test_the_name_scan_finds_a_clash(tmp_path: Path) -> None:
    files = {"marathon_apps/plan.py": "class Plan:\n    pass\n",
             "devcluster/chronos/plan.py": "from __future__ import annotations\n\n\nclass Plan(tuple):\n    pass\n",
             "registrator/model.py": "class _Plan:\n    pass\n\n\ndef f():\n    class Plan:\n        pass\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert clashes(tmp_path) == {"Plan": ["marathon_apps/plan.py:1", "devcluster/chronos/plan.py:4"]}
