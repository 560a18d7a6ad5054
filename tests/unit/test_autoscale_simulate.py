"""`wharf autoscale simulate`: bundled traces, the figures, the plot, the JSON shape, bad traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoscale.policy import Policy
from autoscale.simulate import Model, parse_trace, simulate_wharf
from wharf.cli import cli
from wharf.errors import BadInput

pytestmark = pytest.mark.unit
TRACES = Path(__file__).resolve().parents[2] / "autoscale" / "traces"


def simulate(*args: str) -> tuple[int, str]:
    """Exit code and stdout (the figures); log lines go to stderr and are not part of them."""
    result = CliRunner().invoke(cli, ["autoscale", "simulate", *args])
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_simulate_a_bundled_trace_prints_figures_and_writes_a_png(tmp_path: Path) -> None:
    png = tmp_path / "spike.png"
    code, out = simulate(str(TRACES / "spike.csv"), "--compare-mlb", "--plot", str(png))
    assert code == 0, out
    header, wharf_row, mlb_row, floor_row = out.splitlines()[:4]
    assert header.split() == ["run", "overload_seconds", "instance_seconds", "scale_events"]
    assert wharf_row.split()[0] == "wharf" and mlb_row.split()[0] == "mlb" and floor_row.split()[0] == "floor"
    assert int(wharf_row.split()[1]) < int(mlb_row.split()[1]), "wharf is overloaded for less time"
    assert floor_row.split()[1] == "0", "the floor is never overloaded"
    assert "projected 1950.8 rps within 120s: scale up to 18" in out, "each event is printed with its reason"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["spike.png"], "no temp file left behind"


def test_simulate_json_has_the_documented_shape() -> None:
    code, out = simulate(str(TRACES / "ramp.csv"), "--json", "--policy", "target_rps=100,max=15")
    assert code == 0, out
    data = json.loads(out)
    assert set(data) == {"wharf", "mlb"}
    for run in data.values():
        assert set(run) == {"overload_seconds", "instance_seconds", "scale_events"}
        assert all(set(e) == {"t", "from", "to", "reason"} for e in run["scale_events"])
        assert max(e["to"] for e in run["scale_events"]) == 15, "the policy's max holds in both runs"


def test_a_bad_trace_is_one_line_naming_file_line_and_field(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("t,rps\n0,10\n60,lots\n")
    code, out = simulate(str(trace))
    assert code == 2 and out.strip().endswith(f"{trace}: line 3: rps: not a number: 'lots'")
    code, out = simulate(str(tmp_path / "missing.csv"))
    assert code == 2 and "missing.csv: cannot read" in out
    code, out = simulate(str(TRACES / "ramp.csv"), "--policy", "target_rps=0")
    assert code == 2 and "target_rps must be > 0" in out


@pytest.mark.parametrize(("text", "message"), [
    ("time,rps\n0,1\n", "line 1: header must be 't,rps'"),
    ("t,rps\n0,1\n0,2\n", "line 3: t: must increase"),
    ("t,rps\n0,-5\n", "line 2: rps: must be a finite number >= 0"),
    ("t,rps\n", "no rows after the header"),
])
def test_parse_trace_errors(text: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        parse_trace(text, "x.csv")


def test_trace_rates_hold_until_the_next_row() -> None:
    assert parse_trace("t,rps\n0,10\n3,20\n") == [10, 10, 10, 20, 20, 20]


def test_instances_serve_after_the_startup_delay() -> None:
    load = [100.0] * 120 + [500.0] * 240
    result = simulate_wharf(load, Policy(target_rps=100), Model(interval=60, startup=60))
    (event,) = result.events
    assert (event.t, event.before, event.after) == (180, 1, 5)
    assert result.asked[180] == 5 and result.serving[180] == 1 and result.serving[240] == 5
    assert result.overload_seconds == 120, "from the load's rise to the new instances serving"
