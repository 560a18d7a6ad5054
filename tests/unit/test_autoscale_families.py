"""Cheaper than marathon-lb-autoscale and safer, on every generated load shape; the
forecast behind it, the startup delay learned from Marathon, the floor, and the family table."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoscale.daemon import Autoscaler
from autoscale.decide import History, Reading, decide
from autoscale.families import FAMILY, SHAPES
from autoscale.forecast import forecast, noise_of
from autoscale.marathon import MarathonApps, ScaledApp
from autoscale.policy import Policy
from autoscale.score import score
from autoscale.simulate import Model, floor_counts, simulate_wharf
from autoscale.startup import Startup
from autoscale.stats import StatsSource
from wharf.cli import cli
from wharf.log import fields_of

pytestmark = pytest.mark.unit
POLICY = Policy(target_rps=100)  # what `--target-rps 100` gives
REPLAY = Model(interval=60, startup=60, overload_factor=1.2)  # the replay it is judged by
ONE_OF_EACH = ("ramp-50", "spikes-12m-x2", "diurnal-4000", "noise-3pct", "flash-x3-30m")


def test_the_family_has_every_shape_and_a_seed_draws_the_same_trace() -> None:
    assert {m.shape for m in FAMILY} == set(SHAPES) == {m.shape for m in FAMILY if m.name in ONE_OF_EACH}
    member = FAMILY[0]
    assert member.load(7) == member.load(7) and member.load(7) != member.load(8)


@pytest.mark.parametrize("name", ONE_OF_EACH)
def test_on_each_shape_a_third_of_the_overload_and_no_more_instance_seconds(name: str) -> None:
    member = next(m for m in FAMILY if m.name == name)
    result = score(name, member.shape, member.load(0), POLICY, REPLAY)
    wharf, mlb = result.wharf, result.mlb
    assert wharf.overload_seconds * 3 <= mlb.overload_seconds, (wharf.overload_seconds, mlb.overload_seconds)
    assert wharf.instance_seconds <= mlb.instance_seconds, (wharf.instance_seconds, mlb.instance_seconds)
    assert result.floor <= wharf.instance_seconds, "nothing never overloaded pays less than the floor"


def test_the_floor_asks_one_startup_ahead_and_drops_at_once() -> None:
    load = [100.0] * 120 + [500.0] * 120 + [100.0] * 120
    counts = floor_counts(load, 100, Model(interval=60, startup=60))
    assert counts == [1] * 60 + [5] * 180 + [1] * 120


def test_a_ramp_is_a_trend_a_step_is_a_new_level() -> None:
    ramp = forecast([(60.0 * i, 1000 + 50.0 * i) for i in range(6)])
    assert ramp is not None and ramp.slope == pytest.approx(50 / 60) and ramp.level == pytest.approx(1250 + 25)
    assert ramp.peak(120) == pytest.approx(1275 + 100)
    step = forecast([(60.0 * i, 400.0) for i in range(5)] + [(300.0, 2000.0)])
    assert step is not None and (step.slope, step.level) == (0.0, 2000.0)
    assert noise_of([100, 102, 98, 101, 99, 500, 502, 498, 501]) < 5, "a step is not noise"


def test_the_rate_haproxy_sees_now_tells_a_jump_the_interval_only_half_caught() -> None:
    samples = [(60.0 * i, r) for i, r in enumerate([400.0, 410.0, 395.0, 405.0, 398.0, 1200.0])]
    assert forecast(samples, latest=2000.0).level == 2000.0  # type: ignore[union-attr]
    assert forecast(samples, latest=1230.0).level == 1200.0, "within the noise: the counters' rate"  # type: ignore[union-attr]
    assert forecast(samples, latest=300.0).level == 1200.0, "a drop waits for the counters"  # type: ignore[union-attr]


def test_a_falling_load_is_seen_falling_and_followed_down_without_overload() -> None:
    rates = [2000.0] * 4 + [2000.0 - 100 * i for i in range(1, 16)]
    count, history, total, previous, counts = 20, History(), 0, Reading(0, "h", 0, 2000.0), []
    for i, rps in enumerate(rates, start=1):
        total += int(rps * 60)
        reading = Reading(60.0 * i, "h", total, rps)
        decision = decide([previous, reading], count, POLICY, 60.0 * i, history)
        count, history, previous = decision.target, decision.history, reading
        counts.append(count)
        assert rps / count <= POLICY.upper_band, f"{count} left {rps} rps over the band"
    assert counts == sorted(counts, reverse=True)
    assert counts[-1] == 5, "follows the load down to what the band needs (500 rps: 5)"
    band = [-(-int(r) // 110) for r in rates]
    assert all(c <= b + 1 for c, b in zip(counts[6:], band[6:], strict=True)), "one step behind at most"


def test_dry_run_reasons_show_the_projected_load_and_the_horizon() -> None:
    readings = [Reading(0, "h", 0, 900.0), Reading(60, "h", 60 * 1000, 1000.0)]
    history = History(samples=((-120.0, 800.0), (-60.0, 850.0), (0.0, 900.0)))
    decision = decide(readings, 9, POLICY, 60, history, startup=240)
    # rising 50 a minute: 1025 now (the rate stands for the interval's middle), 250 more in 300 s
    assert decision.projected == pytest.approx(1275)
    assert "rising 50.0 rps/min" in decision.reason and "within 300s" in decision.reason
    assert decision.target == 12, decision.reason


def test_the_startup_delay_is_measured_from_the_scale_request_to_healthy_tasks() -> None:
    startup = Startup().asked(0, 5, 2)
    startup = startup.observe(30, 5, 3)
    assert startup.seconds is None and startup.pending == (0, 5), "still starting"
    startup = startup.observe(90, 5, 5)
    assert (startup.seconds, startup.pending) == (90, None)
    assert startup.asked(100, 8, 5).observe(130, 8, 8).seconds == 60, "halfway to the new measurement"
    assert startup.asked(100, 3, 5).pending is None, "a scale-down measures nothing"


def test_a_slow_start_is_learned_and_the_decision_looks_further_ahead() -> None:
    load = [500.0] * 600 + [1500.0] * 1800 + [1600.0] * 1800
    result = simulate_wharf(load, POLICY, Model(interval=60, startup=170))
    first, *later = result.events
    assert "within 120s" in first.reason, "before any start is seen: one interval"
    # 170 s, seen by the cycle after: 180 s, plus the next interval
    assert later and all("within 240s" in e.reason for e in later), [e.reason for e in later]


def _stats(total: int, rate: float) -> str:
    return ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,rate,req_rate,req_tot,type\n"
            f"web_10000,BACKEND,0,0,1,2,,{total},{rate:g},{rate:g},{total},1\n")


class Apps:
    """Marathon as the daemon sees it: one app whose healthy tasks the test sets."""

    def __init__(self) -> None:
        self.app = ScaledApp("/web", 2, {"wharf.autoscale.target_rps": "100"}, (10000,), healthy=2)
        self.scaled: list[int] = []

    def apps(self) -> list[ScaledApp]:
        return [self.app]

    def scale(self, app_id: str, instances: int) -> None:
        self.scaled.append(instances)


def test_the_daemon_learns_the_startup_delay_from_marathon_and_logs_the_projection(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wharf.autoscale")
    clock = {"now": 0.0, "csv": _stats(0, 1000)}
    daemon = Autoscaler(MarathonApps(["http://127.0.0.1:9"]), [StatsSource("/run/wharf-test/admin.sock")],
                        interval=60, clock=lambda: clock["now"])
    apps = Apps()
    daemon.marathon = apps  # type: ignore[assignment]
    monkeypatch.setattr(StatsSource, "read", lambda self: clock["csv"])

    def cycle(now: float, instances: int, healthy: int, deploying: bool = False) -> None:
        clock["now"], clock["csv"] = now, _stats(int(1000 * now), 1000)
        apps.app = ScaledApp("/web", instances, apps.app.labels, (10000,), deploying, healthy)
        daemon.run_cycle()

    cycle(0, 2, 2)
    assert apps.scaled == [10], "1000 rps: 10 hold it inside the band"
    cycle(60, 10, 4, deploying=True)
    assert daemon.startup["/web"].seconds is None
    cycle(150, 10, 10)
    assert daemon.startup["/web"].seconds == 150
    decided = [fields_of(r) for r in caplog.records if r.getMessage() in ("scaled", "decided")]
    assert decided[0]["projected"] == 1000.0 and decided[-1]["startup"] == 150.0
    assert "within 300s" in decided[-1]["reason"], "the next interval plus the startup learned"


def test_a_dry_run_shows_the_projected_load(monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wharf.autoscale")
    monkeypatch.setattr(StatsSource, "read", lambda self: _stats(0, 1000))
    daemon = Autoscaler(MarathonApps(["http://127.0.0.1:9"]), [StatsSource("/run/wharf-test/admin.sock")],
                        dry_run=True)
    apps = Apps()
    daemon.marathon = apps  # type: ignore[assignment]
    daemon.run_cycle()
    (record,) = [r for r in caplog.records if r.getMessage() == "would scale"]
    assert fields_of(record)["projected"] == 1000.0 and "projected 1000.0 rps" in fields_of(record)["reason"]
    assert apps.scaled == [] and daemon.startup["/web"].pending is None, "nothing asked, nothing measured"


def test_each_app_has_gauges_of_its_counts_bounds_and_whether_it_is_pinned_until_it_goes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import REGISTRY

    def gauge(name: str) -> float | None:
        return REGISTRY.get_sample_value(f"wharf_autoscale_app_{name}", {"app": "/web"})

    monkeypatch.setattr(StatsSource, "read", lambda self: _stats(0, 1000))
    daemon = Autoscaler(MarathonApps(["http://127.0.0.1:9"]), [StatsSource("/run/wharf-test/admin.sock")],
                        policy={"max_instances": 4})
    apps = Apps()
    daemon.marathon = apps  # type: ignore[assignment]
    daemon.run_cycle()
    assert apps.scaled == [4], "1000 rps at 100 each wants 10; the maximum is 4"
    assert (gauge("instances"), gauge("healthy_instances"), gauge("min_instances"), gauge("max_instances"),
            gauge("pinned")) == (2, 2, 1, 4, 1)
    apps.app = ScaledApp("/web", 4, {**apps.app.labels, "wharf.autoscale.max": "20"}, (10000,), healthy=None)
    daemon.run_cycle()
    assert (gauge("instances"), gauge("healthy_instances"), gauge("max_instances"), gauge("pinned")) == (
        4, None, 20, 0), "Marathon gave no healthy count: none shown"
    apps.app = ScaledApp("/web", 4, {}, (10000,), healthy=4)  # no longer autoscaled
    daemon.run_cycle()
    assert [gauge(n) for n in ("instances", "min_instances", "max_instances", "pinned")] == [None] * 4


def test_each_decision_is_stored_and_a_failing_store_is_logged_once_never_stopping_a_decision(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wharf.autoscale")
    monkeypatch.setattr(StatsSource, "read", lambda self: _stats(0, 1000))
    stored: dict[str, str] = {}
    down = {"now": False}

    def publish(key: str, value: str) -> None:
        if down["now"]:
            raise ConnectionError("Consul refused the connection")
        stored[key] = value

    daemon = Autoscaler(MarathonApps(["http://127.0.0.1:9"]), [StatsSource("/run/wharf-test/admin.sock")],
                        publish=publish)
    apps = Apps()
    daemon.marathon = apps  # type: ignore[assignment]
    daemon.run_cycle()
    record = json.loads(stored["wharf/autoscale/decisions/web"])
    assert (record["app"], record["action"], record["current"], record["target"]) == ("/web", "up", 2, 10)
    assert record["rps"] == 1000.0 and record["target_rps"] == 100.0 and record["max"] is None
    down["now"] = True
    daemon.run_cycle()
    daemon.run_cycle()
    assert apps.scaled == [10, 10, 10], "the decisions stand while their store fails"
    assert [r.getMessage() for r in caplog.records].count("decision not stored") == 1


def simulate(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["autoscale", "simulate", *args])
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_simulate_without_a_trace_prints_one_table_over_the_family_and_the_bundled_traces() -> None:
    code, out = simulate("--seeds", "1", "--overload-factor", "1.2")
    assert code == 0, out
    lines = out.splitlines()
    for member in FAMILY:
        assert any(line.startswith(f"{member.name}/0 ") for line in lines), member.name
    for name in ("ramp.csv", "spike.csv", "diurnal.csv"):
        assert any(line.startswith(name) for line in lines)
    families = lines[lines.index("families (generated traces summed):") + 1:]
    assert [line.split()[0] for line in families[:len(SHAPES)]] == list(SHAPES)
    assert families[-1].startswith("goal met on ")


def test_simulate_family_json_and_svg_plots(tmp_path: Path) -> None:
    code, out = simulate("--seeds", "1", "--json", "--plot", str(tmp_path / "plots"))
    assert code == 0, out
    data = json.loads(out)
    assert set(data) == {"policy", "traces"} and len(data["traces"]) == len(FAMILY) + 3
    for trace in data["traces"]:
        assert set(trace) == {"trace", "shape", "wharf", "mlb", "floor_instance_seconds", "overload_met",
                              "instances_met"}
        wharf = trace["wharf"]
        assert trace["floor_instance_seconds"] <= wharf["instance_seconds"] or wharf["overload_seconds"] > 0, \
            "only an overloaded run pays less than the floor"
    plots = sorted((tmp_path / "plots").iterdir())
    assert len(plots) == len(FAMILY) + 3 and all(p.read_text().startswith("<svg") for p in plots)
    assert "floor" in plots[0].read_text() and "polyline" in plots[0].read_text()


def test_one_trace_plots_to_svg_without_any_dependency_and_png_needs_matplotlib(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trace = Path(__file__).resolve().parents[2] / "autoscale" / "traces" / "ramp.csv"
    code, out = simulate(str(trace), "--plot", str(tmp_path / "ramp.svg"))
    assert code == 0, out
    assert (tmp_path / "ramp.svg").read_text().count("<polyline") == 3, "load, floor, wharf"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out = simulate(str(trace), "--plot", str(tmp_path / "ramp.png"))
    assert code == 2 and out.strip().splitlines() == [
        "Error: --plot: a PNG needs the matplotlib package, which is not installed (pip install 'wharf[plot]'), "
        "or give a .svg path"]
    assert not (tmp_path / "ramp.png").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "0"], "Error: --seeds: must be >= 1, got 0"),
    (["--plot", __file__], f"Error: --plot: {__file__}: not a directory (without TRACE it names a directory)"),
])
def test_bad_family_flags_exit_2_with_one_line(args: list[str], message: str) -> None:
    code, out = simulate(*args)
    assert code == 2 and out.strip().splitlines() == [message]
