"""The contracts are written once: the README's label table is the declared one, the product rooms hold
no second copy of the label table, the backend-name, service-name or service-port rules, and the
contracts import no room."""

from __future__ import annotations

import ast
import csv
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.upstream import upstream
from wharf.contracts import consul_meta
from wharf.contracts.marathon_lb import (
    LABELS,
    app_name,
    label_problem,
    label_table,
    marathon_service_ports,
    registered_service_port,
    retry_on,
    route_name,
    service_name,
    service_ports,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "wharf" / "contracts"
PRODUCT_ROOMS = ("wharf", "marathon_apps", "chronos_jobs", "registrator", "consul_templates", "autoscale", "framework")
ROOMS = ("marathon_apps", "chronos_jobs", "registrator", "consul_templates", "autoscale", "framework", "devcluster",
         "tests", "bench")
#: names of the contract's rules; a room that defines one of them holds a second copy
RULE_NAMES = {"Label", "label_problem", "route_name", "app_name", "marathon_lb_name",
              "service_name", "marathon_name", "service_ports", "marathon_service_ports", "label_service_ports",
              "registered_service_port"}


def product_modules() -> Iterator[tuple[Path, ast.Module]]:
    for room in PRODUCT_ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")):
            if CONTRACTS not in path.parents:
                yield path, ast.parse(path.read_text(), str(path))


def where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"


# --- the README's table is the declared one ------------------------------------------------------

def test_readme_label_table_is_the_declared_table() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `HAPROXY_\{n\}_([A-Z_]+)` \| (.*?) \| (.*?) \|$", readme, re.MULTILINE)
    assert [(name, description) for name, _, description in rows] == [(label.name, label.description)
                                                                       for label in LABELS]
    assert label_table() in readme, "regenerate the README's table: python -m wharf.contracts.marathon_lb"


def test_declared_labels_are_marathon_lbs_own() -> None:
    """A label said to be marathon-lb's is in its labels.csv; one of wharf's own is not (so one
    marathon-lb later gives a meaning is noticed)."""
    with upstream("marathon-lb", "labels.csv").open() as f:
        known = {row["label"] for row in csv.DictReader(f)}
    theirs = {f"HAPROXY_{{n}}_{label.name}" for label in LABELS if label.marathon_lb}
    ours = {f"HAPROXY_{{n}}_{label.name}" for label in LABELS if not label.marathon_lb}
    assert theirs <= known
    assert ours == {"HAPROXY_{n}_RETRY_ON"} and not ours & known


# --- the rules themselves ------------------------------------------------------------------------

def test_names() -> None:
    assert app_name("/shop/web") == "shop_web"
    assert route_name("/shop/web", 10000) == "shop_web_10000"
    assert service_name("/shop/web") == "shop-web"


def test_service_ports_follow_marathon_lb() -> None:
    bridged = {"container": {"docker": {"portMappings": [{"containerPort": 80, "servicePort": 10080}]}},
               "portDefinitions": [{"port": 10001}]}
    assert marathon_service_ports(bridged) == {0: 10080}  # port mappings first, as marathon-lb
    assert marathon_service_ports({"ports": [10002, 0]}) == {0: 10002}  # the legacy field last
    labelled = {"portDefinitions": [{"port": 10001}, {"port": 10002}],
                "labels": {"HAPROXY_1_PORT": "8080", "HAPROXY_2_PORT": "9090", "HAPROXY_0_PORT": "nope"}}
    assert service_ports(labelled) == {0: 10001, 1: 8080, 2: 9090}  # labels win; a bad one is ignored
    assert registered_service_port(1, {0: 10001, 1: 10002}, labelled["labels"]) == 10002  # Marathon's first
    assert registered_service_port(2, {0: 10001}, labelled["labels"]) == 9090  # else the label's
    assert registered_service_port(0, {}, labelled["labels"]) is None


def test_label_problems_use_the_table_parsers() -> None:
    assert label_problem("HAPROXY_0_MODE", "udp") == "is not one of http, tcp"
    assert label_problem("HAPROXY_GROUP", "ok-group") is None
    assert label_problem("HAPROXY_0_UNKNOWN", "x") is None and label_problem("OTHER", "x") is None
    assert label_problem("HAPROXY_0_RETRY_ON", "conn-failure,503") is None
    assert label_problem("HAPROXY_1_RETRY_ON", "sometimes").startswith("is not none or HAProxy retry-on")
    assert label_problem("HAPROXY_1_RETRY_ON", "none 503") is not None  # none stands alone
    assert label_problem("HAPROXY_1_RETRY_ON", "") is not None


def test_retry_on_is_normalised_to_haproxys_spelling() -> None:
    assert retry_on(" Conn-Failure,503  503 empty-response") == "conn-failure 503 empty-response"
    assert retry_on("NONE") == "none"


def test_consul_meta_keys_are_consul_meta_keys() -> None:
    keys = [consul_meta.OWNER, consul_meta.CONTAINER_ID, consul_meta.MARATHON_APP_ID, consul_meta.MESOS_TASK_ID,
            consul_meta.PORT_INDEX, consul_meta.SERVICE_PORT]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", k) for k in keys) and len(set(keys)) == len(keys)
    assert consul_meta.haproxy_labels({"HAPROXY_0_VHOST": "a", "SERVICE_NAME": "b"}) == {"HAPROXY_0_VHOST": "a"}


# --- no second copy in the product rooms ---------------------------------------------------------

def test_no_room_defines_a_rule_of_the_contracts() -> None:
    found = [f"{where(path, node)} {node.name}" for path, tree in product_modules() for node in ast.walk(tree)
             if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name in RULE_NAMES]
    assert found == [], "use wharf.contracts.marathon_lb instead"


def test_no_room_holds_a_copy_of_the_label_table() -> None:
    """A copy would carry the table's descriptions or its parsers' reasons."""
    texts = {label.description for label in LABELS} | {
        "is not a list of host names", "is not a group name", "is not true or false", "is not a whole number"}
    found = [where(path, node) for path, tree in product_modules() for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in texts]
    assert found == [], "the label table lives in wharf.contracts.marathon_lb"


def _replaces_slash(node: ast.AST) -> bool:
    """`x.replace("/", "_")` or `x.replace("/", "-")`: the backend-name and service-name patterns."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "replace"
            and [a.value for a in node.args if isinstance(a, ast.Constant)] in (["/", "_"], ["/", "-"]))


def _haproxy_label_key(node: ast.AST) -> bool:
    """A port label's key built by hand (`f"HAPROXY_{i}_PORT"`) or matched by a pattern (`HAPROXY_(\\d+)_`)."""
    if isinstance(node, ast.JoinedStr):
        parts = [v.value for v in node.values if isinstance(v, ast.Constant)]
        return bool(parts) and parts[0] == "HAPROXY_" and any(p.endswith("_PORT") for p in parts[1:])
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and "HAPROXY_(" in node.value


def test_no_room_computes_names_or_service_ports_itself() -> None:
    found = [where(path, node) for path, tree in product_modules() for node in ast.walk(tree)
             if _replaces_slash(node) or _haproxy_label_key(node)]
    assert found == [], "names and service ports come from wharf.contracts.marathon_lb"


# --- the contracts stand on the ground floor -----------------------------------------------------

def test_contracts_import_no_room() -> None:
    for path in sorted(CONTRACTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] in ROOMS], f"{path.name} imports a room: {names}"
