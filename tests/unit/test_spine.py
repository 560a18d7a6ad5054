"""One spine: each mechanism the rooms share exists once, on the ground floor (DESIGN.md, "Layout").

These tests read the product's source (its syntax trees, never running it) and fail when a room
grows a second copy of a shared mechanism. Each check is a function of its own."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_layers import GROUND, PRODUCT_ROOMS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
#: the product's rooms (the dev cluster stands above them and runs its own servers and clients)
PRODUCT = (GROUND, *PRODUCT_ROOMS)


@functools.cache
def product_files() -> list[tuple[str, ast.Module, str]]:
    """(path relative to the checkout, syntax tree, source) of every module of the product."""
    return [(path.relative_to(ROOT).as_posix(), ast.parse(path.read_text()), path.read_text())
            for room in PRODUCT for path in sorted((ROOT / room).rglob("*.py"))]


# --- HTTP: every Marathon, Chronos and framework call goes through wharf/http.py ----------------

HTTP_CLIENT = "wharf/http.py"
SESSIONS = {"Session", "session"}
CALLS = {"request", "get", "post", "put", "delete", "patch", "head", "options"}
#: product files that call another system with `requests` directly, and what they call
OTHER_SYSTEMS = {
    "wharf/haproxy.py": "HAProxy's stats page",
}
#: words in a direct call that show it is aimed at Marathon, Chronos or the framework's API
THEIRS = ("marathon", "chronos", "framework", "/v1/", "/v2/")


def requests_calls(tree: ast.Module) -> Iterator[tuple[ast.Call, str]]:
    """Each call of a `requests` function or class in `tree`, with the function's name: through
    the module (`requests.get`, `requests.api.get`, `requests.sessions.Session`, any alias) or a
    name imported from it (`from requests import Session`)."""
    modules, names = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {a.asname or "requests" for a in node.names if a.name.split(".")[0] == "requests"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "requests":
            names.update({a.asname or a.name: a.name for a in node.names})
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in names:
            yield node, names[func.id]
        elif isinstance(func, ast.Attribute) and ast.unparse(func.value) in modules | {"requests.api",
                                                                                       "requests.sessions"}:
            yield node, func.attr


def test_requests_calls_are_found_however_they_are_written() -> None:
    source = """
import requests
import requests as r
from requests import Session as S, get
requests.Session(); r.session(); S(); get("u"); requests.api.put("u"); requests.sessions.Session()
requests.ConnectionError(); other.get("u")
"""
    found = sorted(name for _, name in requests_calls(ast.parse(source)))
    assert found == ["ConnectionError", "Session", "Session", "Session", "get", "put", "session"]


def test_only_the_http_client_opens_requests_sessions() -> None:
    opened = [f"{path}:{call.lineno}" for path, tree, _ in product_files() if path != HTTP_CLIENT
              for call, name in requests_calls(tree) if name in SESSIONS]
    assert not opened, f"call through wharf.http.HttpClient instead of a session of your own: {opened}"


def test_marathon_chronos_and_the_framework_are_called_only_through_the_http_client() -> None:
    direct = []
    for path, tree, source in product_files():
        if path == HTTP_CLIENT:
            continue
        for call, name in requests_calls(tree):
            if name not in CALLS:
                continue
            text = (ast.get_source_segment(source, call) or "").lower()
            if path not in OTHER_SYSTEMS or any(word in text for word in THEIRS):
                direct.append(f"{path}:{call.lineno}: {text.splitlines()[0]}")
    assert not direct, ("Marathon, Chronos and the framework's API are called through wharf.http.HttpClient "
                        "(wharf.marathon for Marathon); a call to another system goes in OTHER_SYSTEMS, "
                        f"saying what it calls: {direct}")


def string_literals(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, text) of each string literal that is not a docstring; an f-string by its first part."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            yield node.lineno, str(node.values[0].value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value


@pytest.mark.parametrize(("prefix", "home"), [("/v2/", "wharf/marathon.py"),
                                              ("/v1/scheduler", "chronos_jobs/client.py")])
def test_one_client_builds_each_systems_paths(prefix: str, home: str) -> None:
    """A path of Marathon's API (Chronos's) written anywhere but in its one client is the start of a
    second client."""
    elsewhere = [f"{path}:{line}: {text}" for path, tree, _ in product_files() if path != home
                 for line, text in string_literals(tree) if text.startswith(prefix)]
    assert not elsewhere, f"call {home}'s client instead of building {prefix} paths: {elsewhere}"


def test_the_product_does_not_import_the_marathon_package() -> None:
    """The `marathon` package is a test dependency (it holds the stand-in to the real client)."""
    imports = []
    for path, tree, _ in product_files():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imports += [f"{path}:{node.lineno}" for a in node.names if a.name.split(".")[0] == "marathon"]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and \
                    (node.module or "").split(".")[0] == "marathon":
                imports.append(f"{path}:{node.lineno}")
    assert not imports, f"the product imports the marathon package: {imports}"


# --- Consul: one blocking-query loop, wharf/watch.py's ConsulWatch ------------------------------

WATCH_MODULE = "wharf/watch.py"
CONSUL_HEADERS = {"X-Consul-Index", "X-Consul-ContentHash"}
INDEX_RULES = {"next_index", "next_hash"}


def _runs_here(node: ast.AST) -> Iterator[ast.AST]:
    """`node` and what runs with it: not the bodies of functions, lambdas or classes defined in it."""
    todo = [node]
    while todo:
        item = todo.pop()
        yield item
        todo.extend(c for c in ast.iter_child_nodes(item)
                    if not isinstance(c, ast.Lambda | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))


def _blocks(node: ast.AST) -> bool:
    """A blocking query made right here: py-consul's `index=` with `wait=`, a `("hash"|"index", …)`
    query parameter, or Consul's index or content-hash header read."""
    if isinstance(node, ast.Call) and {"index", "wait"} <= {k.arg for k in node.keywords}:
        return True
    if isinstance(node, ast.Tuple) and node.elts and isinstance(node.elts[0], ast.Constant):
        return node.elts[0].value in ("index", "hash")
    return isinstance(node, ast.Constant) and node.value in CONSUL_HEADERS


def _callee(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _functions(body: list[ast.stmt]) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in body:
        if isinstance(node, ast.ClassDef):
            yield from _functions(node.body)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def consul_loops(root: Path) -> list[str]:
    """Every place in the product, outside `wharf/watch.py`, that repeats a Consul blocking query
    itself: a loop (or a daemon's `run_cycle`, which the skeleton's loop repeats) that makes one or
    calls a function that makes one; and consul-template's index rules used or written again."""
    trees = {p.relative_to(root).as_posix(): ast.parse(p.read_text(), str(p))
             for room in PRODUCT for p in sorted((root / room).rglob("*.py"))}
    trees.pop(WATCH_MODULE, None)
    blocking = {f.name for tree in trees.values() for f in _functions(tree.body)
                if any(_blocks(n) for n in ast.walk(f))}
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            repeated = isinstance(node, ast.While | ast.For | ast.AsyncFor) or (
                isinstance(node, ast.FunctionDef) and node.name == "run_cycle")
            if repeated and any(_blocks(n) or _callee(n) in blocking for n in _runs_here(node)):
                found.append(f"{path}:{node.lineno}: repeats a Consul blocking query; use wharf.watch.ConsulWatch")
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else (
                node.name if isinstance(node, ast.FunctionDef | ast.alias) else None)
            if name in INDEX_RULES:
                found.append(f"{path}:{getattr(node, 'lineno', 0)}: Consul's index rules belong to {WATCH_MODULE}")
    return found


def test_the_product_has_one_consul_blocking_query_loop() -> None:
    assert (ROOT / WATCH_MODULE).is_file()
    assert consul_loops(ROOT) == []


HAND_ROLLED = {
    "registrator/agent.py": '''
class Agent:
    def watch(self, content_hash, wait):
        params = [("hash", content_hash), ("wait", wait)]
        return self.c.http.get(self.read, "/v1/agent/services", params=params)

def follow(agent, stopping):
    content_hash = None
    while not stopping.is_set():
        content_hash, services = agent.watch(content_hash, "5s")
''',
    "marathon_apps/kvwatch.py": '''
class KvWatcher(Daemon):
    def run_cycle(self):
        self.seen, entries = self.consul.kv.get(self.prefix, recurse=True, index=self.seen, wait="30s")
''',
    "consul_templates/loop.py": '''
from wharf.watch import next_index

def run(fetch, last):
    for _ in range(3):
        last, news = next_index(last, fetch(last))
''',
    "autoscale/fine.py": '''
def fetchers(client, prefixes):  # lambdas handed to a ConsulWatch: no loop of their own
    return [lambda index: client.kv.get(p, index=index, wait="30s") for p in prefixes]
''',
}


def test_the_consul_scan_finds_hand_rolled_blocking_loops(tmp_path: Path) -> None:
    for path, text in HAND_ROLLED.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    found = consul_loops(tmp_path)
    assert any(f.startswith("registrator/agent.py:9: repeats") for f in found), found
    assert any(f.startswith("marathon_apps/kvwatch.py:3: repeats") for f in found), found
    assert any(f.startswith("consul_templates/loop.py:2: Consul's index rules") for f in found), found
    assert any(f.startswith("consul_templates/loop.py:6: Consul's index rules") for f in found), found
    assert not [f for f in found if f.startswith("autoscale/")], found


# --- files: one atomic writer, wharf/atomic.py ----------------------------------------------------

ATOMIC_WRITER = "wharf/atomic.py"
#: the rooms and the dev cluster, which replaces files (its stand-ins' state) the same way
WRITERS_SCANNED = (*PRODUCT, "devcluster")


def renames(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, call) of each rename over a file: `os.replace`, `os.rename`, `os.renames`,
    `shutil.move`, or a one-argument `.replace(target)` / `.rename(target)` (pathlib's; `str.replace`
    takes two arguments)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute | ast.Name):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id
        owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
        if (owner, name) in {("os", "replace"), ("os", "rename"), ("os", "renames"), ("shutil", "move")} or (
                owner and name in {"replace", "rename"} and len(node.args) == 1 and not node.keywords):
            yield node.lineno, ast.unparse(node)


def test_the_rename_scan_finds_every_spelling() -> None:
    source = """
import os, shutil
os.replace(tmp, path); os.rename(a, b); shutil.move(a, b); Path(tmp).replace(path); tmp.rename(dest)
text.replace("a", "b"); dataclasses.replace(x, y=1); when.replace(tzinfo=None)
"""
    assert [call.split("(")[0] for _, call in renames(ast.parse(source))] == [
        "os.replace", "os.rename", "shutil.move", "Path", "tmp.rename"]


def test_only_the_atomic_writer_renames_files() -> None:
    """A temp file renamed over a target anywhere else is a second atomic writer (and likely one
    that forgets the fsync, the permissions or the clean-up): call wharf.atomic.write_atomic."""
    found = [f"{path.relative_to(ROOT).as_posix()}:{line}: {call}"
             for room in WRITERS_SCANNED for path in sorted((ROOT / room).rglob("*.py"))
             if path.relative_to(ROOT).as_posix() != ATOMIC_WRITER
             for line, call in renames(ast.parse(path.read_text()))]
    assert not found, f"write files through {ATOMIC_WRITER}'s write_atomic: {found}"


# --- graphs: one topological sort, wharf/toposort.py ----------------------------------------------

TOPOSORT = "wharf/toposort.py"
SORT_NAMES = ("topo", "levels", "waves", "depths", "order")
#: loops that take each node once everything it comes after is done, and why that is not a sort
RUNNERS = {
    "marathon_apps/deploy.py": "the deploy itself: a change starts once those it comes after are deployed "
                               "and healthy, which is known only as they finish (the plan's order is toposort's)",
}


def _all_done(call: ast.AST) -> bool:
    """`all(d in done for d in ...)`: every dependency of a node is among the done ones."""
    return isinstance(call, ast.Call) and ast.unparse(call.func) == "all" and len(call.args) == 1 and isinstance(
        call.args[0], ast.GeneratorExp) and isinstance(call.args[0].elt, ast.Compare) and any(
        isinstance(op, ast.In) for op in call.args[0].elt.ops)


def _cut_from_path(node: ast.AST) -> bool:
    """`path[path.index(n):]`: the cycle a depth-first search met, cut out of its path."""
    if not (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice)):
        return False
    lower = node.slice.lower
    return isinstance(lower, ast.Call) and ast.unparse(lower.func) == ast.unparse(node.value) + ".index"


def hand_sorts(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, why) of what looks like a topological sort of its own: graphlib or heapq; Kahn's
    "ready" step (a loop picking the nodes whose dependencies `all` are done); a cycle cut out of a
    depth-first path (`path[path.index(n):]`); a function named like a sort that loops or recurses."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if {m.split(".")[0] for m in modules} & {"graphlib", "heapq"}:
                yield node.lineno, "imports graphlib or heapq"
        elif isinstance(node, ast.While | ast.For) and any(
                isinstance(c, ast.comprehension) and any(_all_done(i) for cond in c.ifs for i in ast.walk(cond))
                for c in ast.walk(node)):
            yield node.lineno, "a loop picking the nodes whose dependencies are all done"
        elif _cut_from_path(node):
            yield node.lineno, "a cycle cut out of a depth-first path"
        elif isinstance(node, ast.FunctionDef) and any(word in node.name.lower() for word in SORT_NAMES):
            inner = list(ast.walk(node))
            if any(isinstance(n, ast.While | ast.For) for n in inner) or any(
                    isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == node.name
                    for n in inner):
                yield node.lineno, f"{node.name}() sorts by itself"


#: the three sorts wharf had before wharf/toposort.py, as they were written
EARLIER_SORTS = {
    "kahn": '''
def levels(deps):
    depth, remaining = {}, set(deps)
    while remaining:
        ready = sorted(a for a in remaining if all(d in depth or d not in deps for d in deps[a]))
        remaining -= set(ready)
''',
    "heap": '''
import heapq
def run_order(jobs):
    ready = [n for n, p in jobs.items() if not p]
    heapq.heapify(ready)
''',
    "dfs": '''
def deepest(edges):
    path, pending = [root], [iter(edges[root])]
    while pending:
        child = next(pending[-1], None)
        if child in path:
            raise Cycle(path[path.index(child):] + [child])
''',
}


@pytest.mark.parametrize("name", sorted(EARLIER_SORTS))
def test_the_sort_scan_finds_the_earlier_sorts(name: str) -> None:
    assert list(hand_sorts(ast.parse(EARLIER_SORTS[name])))


def test_only_wharf_sorts_dependency_graphs() -> None:
    """Deploy waves, job order and the Marathon stand-in's depths all come from wharf.toposort."""
    found = [f"{path.relative_to(ROOT).as_posix()}:{line}: {why}"
             for room in WRITERS_SCANNED for path in sorted((ROOT / room).rglob("*.py"))
             if path.relative_to(ROOT).as_posix() not in {TOPOSORT, *RUNNERS}
             for line, why in hand_sorts(ast.parse(path.read_text()))]
    assert not found, f"use {TOPOSORT} (levels, order, find_cycle): {found}"
