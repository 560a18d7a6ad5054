"""The test suite itself, run as a new user runs it: in a shell after `eval "$(wharf dev env)"`, with
`-m` to pick a tier, and in a clone that has no `../shared/upstream` beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The nested runs start their own services, whatever the caller's shell points at.
CALLERS = ("WHARF_", "MARATHON_", "MESOS_", "CHRONOS_", "CONSUL_", "DOCKER_")
# What `wharf dev env` prints for a running cluster, in the same forms.
DEV_ENV = {
    "WHARF_ZK": "127.0.0.1:2181", "MESOS_MASTER": "zk://127.0.0.1:2181/mesos",
    "MARATHON_URL": "http://127.0.0.1:8080", "CHRONOS_URL": "http://127.0.0.1:4400",
    "CONSUL_HTTP_ADDR": "127.0.0.1:8500", "CONSUL_HTTP_TOKEN": "0123456789abcdef0123456789abcdef",
    "DOCKER_HOST": "unix:///nonexistent/docker.sock",
    "WHARF_HAPROXY_HTTP": "127.0.0.1:1", "WHARF_HAPROXY_SOCKET": "/nonexistent/admin.sock",
    "WHARF_HAPROXY_MASTER_SOCKET": "/nonexistent/master.sock", "WHARF_HAPROXY_CONFIG": "/nonexistent/haproxy.cfg",
    "WHARF_NGINX_HTTP": "127.0.0.1:1", "WHARF_NGINX_PREFIX": "/nonexistent", "WHARF_NGINX_CONF": "/nonexistent.conf",
    "WHARF_LOG_FORMAT": "json", "WHARF_LOG_LEVEL": "debug", "WHARF_CONFIG": "/nonexistent/wharf.yaml",
}


def pytest_run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None,
               timeout: float = 600) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(CALLERS)}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def test_every_test_has_the_tier_of_its_directory() -> None:
    result = pytest_run("--collect-only", "-q", "-m", "not unit and not integration and not contract", "tests")
    assert result.returncode == 5, result.stdout[-3000:] + result.stderr[-3000:]  # 5: nothing selected
    assert "deselected" in result.stdout


def test_unit_tests_pass_in_a_shell_pointed_at_a_dev_cluster() -> None:
    result = pytest_run("-q", "-m", "unit", "tests/unit", env=DEV_ENV)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]


BEHAVIOUR = [  # tests of what the stand-ins do that also check their traffic against an artifact
    "tests/contract/test_mesos_standin.py::test_zookeeper_holds_master_info_as_real_masters_write_it",
    "tests/contract/test_marathon_standin.py::test_bad_input_gets_marathons_errors",
    "tests/contract/test_chronos_standin.py::test_graph_csv_shows_nodes_and_links",
    "tests/integration/test_devcluster.py::test_marathon_runs_a_healthy_container_app_with_its_labels_on_docker",
]
CHECKS = [  # tests made only of checks against an artifact
    "tests/contract/test_mesos_standin.py::test_the_proto_reader_knows_the_messages",
    "tests/contract/test_chronos_standin.py::test_every_documented_job_is_accepted_and_listed_back",
]


def test_a_clone_without_the_upstream_artifacts_still_runs_the_behaviour_tests(tmp_path: Path) -> None:
    clone = tmp_path / "lonely" / "wharf"  # no lonely/shared beside it
    shutil.copytree(REPO / "tests", clone / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "setup.cfg", clone / "setup.cfg")
    report = tmp_path / "report.xml"
    result = pytest_run(f"--junitxml={report}",
                        f"--basetemp={tmp_path / 'base'}", *BEHAVIOUR, *CHECKS, cwd=clone)
    out = result.stdout[-5000:] + result.stderr[-3000:]
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        kinds = [child.tag for child in case if child.tag in ("skipped", "failure", "error")]
        outcomes[name] = kinds[0] if kinds else "passed"
    assert outcomes == {**{t: "passed" for t in BEHAVIOUR}, **{t: "skipped" for t in CHECKS}}, out
    assert result.returncode == 0, out
    assert "upstream artifact not found" in result.stdout and "checks against it are left out" in result.stdout
