"""wharf's job specs against Chronos's own examples (`../shared/upstream/chronos`).

Chronos's integration-test jobs are YAML job definitions, so they are job specs as they stand: each
is accepted, and together they form a graph wharf can check and order. Every documented job body,
less the fields only Chronos writes (counters, last run times), is accepted too. And what the
Chronos stand-in stores and lists for each of them — defaults filled in, numbers normalised — is
not a change to wharf's plan, so a second sync of any of them sends nothing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from chronos_jobs import graph, plan, spec
from devcluster.chronos import jobs as standin_jobs
from tests.upstream import UPSTREAM

pytestmark = pytest.mark.contract

CHRONOS = UPSTREAM / "chronos"
if not (CHRONOS / "docs-examples").is_dir():
    pytest.skip(f"upstream Chronos examples not found at {CHRONOS}", allow_module_level=True)

INTEGRATION = sorted((CHRONOS / "integration-tests" / "jobs").glob("*/*.yaml"))
DOCUMENTED = ["scheduled_job_iso8601.json", "dependent_job.json", "docker_job.json", "sample_job_full.json"]
# written by Chronos, not by whoever defines a job (and `async`/`executor*`, which Chronos 3 dropped)
CHRONOS_WRITES = {"successCount", "errorCount", "lastSuccess", "lastError", "async", "executor", "executorFlags"}
NOW = datetime(2016, 12, 6, tzinfo=UTC)  # the examples' schedules start around 2012-2016


def documented(name: str) -> dict[str, Any]:
    body = json.loads((CHRONOS / "docs-examples" / name).read_text())
    return {key: value for key, value in body.items() if key not in CHRONOS_WRITES}


def stored(body: dict[str, Any]) -> dict[str, Any]:
    """The job as the Chronos stand-in lists it after a POST of `body`."""
    return standin_jobs.to_json(standin_jobs.parse_job(body, spec.endpoint(body), now=NOW))


@pytest.mark.parametrize("path", INTEGRATION, ids=lambda p: p.stem)
def test_chronos_integration_jobs_are_specs(path: Path) -> None:
    body = spec.to_chronos(yaml.safe_load(path.read_text()))
    assert plan.diff_fields(body, stored(body)) == []


def test_chronos_integration_jobs_form_a_graph() -> None:
    bodies = [spec.to_chronos(yaml.safe_load(path.read_text())) for path in INTEGRATION]
    jobs = {body["name"]: body for body in bodies}
    graph.check(jobs, chronos={})
    ordered = graph.order(jobs)
    assert ordered.index("hourly-sleep1m") < ordered.index("hourly-dependent-sleep1m")


@pytest.mark.parametrize("name", DOCUMENTED)
def test_documented_jobs_are_specs_and_their_stored_form_is_no_change(name: str) -> None:
    given = documented(name)
    body = spec.to_chronos({**given, **{k: float(v) for k, v in given.items() if k in ("cpus", "mem")}})
    current = stored(body) if "parents" not in body else None
    if current is not None:
        assert plan.diff_fields(body, current) == []
    else:  # its parents are not in the examples: Chronos (and the stand-in) would refuse it alone
        with pytest.raises(graph.GraphError, match="does not exist"):
            graph.check({body["name"]: body}, chronos={})
