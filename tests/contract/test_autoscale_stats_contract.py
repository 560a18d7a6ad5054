"""The stats parser against real `show stat` output: HAProxy 2.6's, and marathon-lb's test CSV."""

from __future__ import annotations

import pytest

from autoscale.stats import backend_readings, parse_stat_csv
from tests.upstream import upstream

pytestmark = pytest.mark.contract


def test_haproxy_26_backend_row_has_no_req_rate_so_rate_is_used() -> None:
    text = upstream("haproxy", "runtime-api-2.6", "show_stat.csv").read_text()
    rows = parse_stat_csv(text)
    assert {(r.pxname, r.svname) for r in rows} >= {("fe", "FRONTEND"), ("be_web", "BACKEND")}
    backend = next(r for r in rows if r.svname == "BACKEND")
    assert backend.fields["req_rate"] == "" and backend.fields["rate"] == "0"
    (reading,) = backend_readings(rows, "h1", 0.0).values()
    assert reading.source == "h1#be_web" and reading.total == 1 and reading.rate == 0.0


def test_marathon_lb_stats_with_repeated_headers() -> None:
    text = upstream("marathon-lb", "tests", "haproxy_stats.csv").read_text()
    readings = backend_readings(parse_stat_csv(text), "lb", 0.0)
    assert {"www", "git", "demo"} <= set(readings)
    assert all(r.total is not None for r in readings.values())
