"""The autoscaler's command line: the base policy of every app, every flag checked, and
marathon-lb-autoscale's flags (`--intervals-past-threshold` too) with their meaning."""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from typing import Any

import pytest
from click.testing import CliRunner, Result

from autoscale.cli import _base_policy
from autoscale.daemon import Autoscaler
from autoscale.decide import History, Reading, decide
from autoscale.marathon import MarathonApps, ScaledApp
from autoscale.mlb import MlbOptions, MlbState, mlb_step
from autoscale.policy import Policy
from autoscale.stats import StatsSource
from wharf.cli import cli
from wharf.log import fields_of

pytestmark = pytest.mark.unit

TARGET_ONLY = {"wharf.autoscale.target_rps": "100"}
WIRING = ["--marathon", "http://127.0.0.1:9", "--haproxy", "/run/wharf-test/admin.sock"]


def stats_csv(rps: float, backend: str = "shop_web_10000") -> str:
    """HAProxy's `show stat` with one backend serving `rps` requests per second."""
    return ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,rate,req_rate,req_tot,type\n"
            f"{backend},BACKEND,0,0,1,2,,450,6,{rps:g},1200,1\n")


class FakeMarathon:
    """Marathon's apps as the autoscaler reads them; scale calls are recorded and applied."""

    def __init__(self, apps: Sequence[ScaledApp], stop_after: int | None = None, daemon: Autoscaler | None = None):
        self.by_id = {a.id: a for a in apps}
        self.scaled: list[tuple[str, int]] = []
        self.calls, self.stop_after, self.daemon = 0, stop_after, daemon

    def apps(self) -> list[ScaledApp]:
        self.calls += 1
        if self.daemon is not None and self.calls == self.stop_after:
            self.daemon.stop()
        return list(self.by_id.values())

    def scale(self, app_id: str, instances: int) -> None:
        self.scaled.append((app_id, instances))
        app = self.by_id[app_id]
        self.by_id[app_id] = ScaledApp(app.id, instances, app.labels, app.service_ports)


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`wharf autoscale run --once` against a fake Marathon and an HAProxy whose stats are set here."""
    state: dict[str, Any] = {"marathon": FakeMarathon([]), "csv": stats_csv(0)}
    monkeypatch.setattr(MarathonApps, "apps", lambda self: state["marathon"].apps())
    monkeypatch.setattr(MarathonApps, "scale", lambda self, app_id, n: state["marathon"].scale(app_id, n))
    monkeypatch.setattr(StatsSource, "read", lambda self: state["csv"])
    return state


def autoscale(*args: str) -> Result:
    return CliRunner().invoke(cli, ["autoscale", *args])


def test_command_line_max_instances_caps_an_app_whose_labels_set_only_the_target(cluster: dict[str, Any]) -> None:
    cluster["marathon"] = FakeMarathon([ScaledApp("/shop/web", 2, TARGET_ONLY, (10000,))])
    cluster["csv"] = stats_csv(1200)  # 12 instances' worth at 100 rps each
    result = autoscale("run", "--once", *WIRING, "--max-instances", "3")
    assert result.exit_code == 0, result.output
    assert cluster["marathon"].scaled == [("/shop/web", 3)], "--max-instances bounds a label-driven app"


def test_command_line_tolerance_changes_a_label_driven_apps_decision(cluster: dict[str, Any]) -> None:
    cluster["csv"] = stats_csv(1150)  # 115 rps per instance over 10
    cluster["marathon"] = FakeMarathon([ScaledApp("/shop/web", 10, TARGET_ONLY, (10000,))])
    assert autoscale("run", "--once", *WIRING).exit_code == 0
    assert cluster["marathon"].scaled == [("/shop/web", 11)], "over the default band 90-110: 11 hold it"
    cluster["marathon"] = FakeMarathon([ScaledApp("/shop/web", 10, TARGET_ONLY, (10000,))])
    assert autoscale("run", "--once", *WIRING, "--tolerance", "0.2").exit_code == 0
    assert cluster["marathon"].scaled == [], "inside the band 80-120 that --tolerance 0.2 gives"


def test_labels_override_the_command_line_per_app(cluster: dict[str, Any]) -> None:
    labels = {**TARGET_ONLY, "wharf.autoscale.max": "5"}
    cluster["marathon"] = FakeMarathon([ScaledApp("/shop/web", 2, labels, (10000,)),
                                        ScaledApp("/blog", 2, TARGET_ONLY, (10001,))])
    cluster["csv"] = stats_csv(1200) + stats_csv(1200, "blog_10001").split("\n", 1)[1]
    assert autoscale("run", "--once", *WIRING, "--max-instances", "3").exit_code == 0
    assert sorted(cluster["marathon"].scaled) == [("/blog", 3), ("/shop/web", 5)]


def test_marathon_lb_autoscale_command_line_is_accepted_unchanged(cluster: dict[str, Any]) -> None:
    cluster["marathon"] = FakeMarathon([ScaledApp("/shop/web", 2, {}, (10000,))])
    result = autoscale("run", "--once", *WIRING, "--target-rps", "1000", "--apps", "shop_web_10000",
                       "--interval", "60", "--samples", "10", "--cooldown", "5", "--threshold-percent", "0.5",
                       "--threshold-instances", "3", "--intervals-past-threshold", "3",
                       "--min-instances", "1", "--max-instances", "20", "--haproxy_frontend_or_backend", "FRONTEND",
                       "--marathonCredentials", "ops:s3cret", "--haproxyCredentials", "stats:s3cret")
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output


RUN = ["run", "--once", *WIRING]
STATUS = ["status", "--json", *WIRING]
SIMULATE = ["simulate", "trace.csv"]


@pytest.mark.parametrize(("args", "message"), [
    pytest.param([*RUN, "--interval", "0"], "--interval: must be > 0, got 0", id="interval-zero"),
    pytest.param([*RUN, "--interval", "-5"], "--interval: must be > 0, got -5", id="interval-negative"),
    pytest.param([*RUN, "--tolerance", "5"], "--tolerance: must be in (0, 1), got 5", id="tolerance-5"),
    pytest.param([*RUN, "--tolerance", "0"], "--tolerance: must be in (0, 1), got 0", id="tolerance-0"),
    pytest.param([*RUN, "--samples", "0"], "--samples: must be >= 1, got 0", id="samples"),
    pytest.param([*RUN, "--cooldown", "-1"], "--cooldown: must be >= 0, got -1", id="cooldown"),
    pytest.param([*RUN, "--threshold-percent", "1"], "--threshold-percent: must be in [0, 1), got 1",
                 id="threshold-percent"),
    pytest.param([*RUN, "--threshold-instances", "0"], "--threshold-instances: must be >= 1, got 0",
                 id="threshold-instances"),
    pytest.param([*RUN, "--intervals-past-threshold", "0"], "--intervals-past-threshold: must be >= 1, got 0",
                 id="intervals-past-threshold"),
    pytest.param([*RUN, "--min-instances", "-1"], "--min-instances: must be >= 0, got -1", id="min"),
    pytest.param([*RUN, "--max-instances", "0"], "--max-instances: must be >= 1, got 0", id="max"),
    pytest.param([*RUN, "--min-instances", "5", "--max-instances", "2"],
                 "--max-instances: max must be >= min (--min-instances 5), got 2", id="max-under-min"),
    pytest.param([*RUN, "--max-step", "0"], "--max-step: must be >= 1, got 0", id="max-step"),
    pytest.param([*RUN, "--scale-up-stabilization", "-1"], "--scale-up-stabilization: must be >= 0, got -1",
                 id="scale-up-stabilization"),
    pytest.param([*RUN, "--scale-down-stabilization", "-1"], "--scale-down-stabilization: must be >= 0, got -1",
                 id="scale-down-stabilization"),
    pytest.param([*RUN, "--target-rps", "0"], "--target-rps: must be > 0, got 0", id="target-rps"),
    pytest.param([*RUN, "--target-rps", "nan"], "--target-rps: must be > 0, got nan", id="target-rps-nan"),
    pytest.param([*RUN, "--metrics-port", "70000"], "--metrics-port: must be a port, 1-65535, got 70000",
                 id="metrics-port"),
    pytest.param([*STATUS, "--target-rps", "-1"], "--target-rps: must be > 0, got -1", id="status-target-rps"),
    pytest.param([*STATUS, "--min-instances", "-2"], "--min-instances: must be >= 0, got -2", id="status-min"),
    pytest.param([*STATUS, "--window", "-1"], "--window: must be >= 0, got -1", id="status-window"),
    pytest.param([*SIMULATE, "--interval", "0"], "--interval: must be > 0, got 0", id="simulate-interval"),
    pytest.param([*SIMULATE, "--startup", "-1"], "--startup: must be >= 0, got -1", id="simulate-startup"),
    pytest.param([*SIMULATE, "--overload-factor", "0"], "--overload-factor: must be > 0, got 0",
                 id="simulate-overload-factor"),
])
def test_each_bad_flag_exits_2_naming_it_and_starts_nothing(cluster: dict[str, Any], args: list[str],
                                                             message: str) -> None:
    cluster["marathon"] = FakeMarathon([ScaledApp("/shop/web", 2, TARGET_ONLY, (10000,))])
    result = autoscale(*args)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [f"Error: {message}"], "one line naming the flag and why"
    assert cluster["marathon"].calls == 0 and cluster["marathon"].scaled == [], "nothing started"


def test_the_daemon_refuses_an_interval_that_would_spin() -> None:
    with pytest.raises(ValueError, match="interval must be > 0"):
        Autoscaler(MarathonApps(["http://127.0.0.1:9"]), [], interval=0)


def counts(rates: Sequence[float], policy: Policy, start: int, tick: float = 60.0) -> list[int]:
    """The instance count after each tick, one decision per tick applied at once."""
    count, history, out = start, History(), []
    for i, rps in enumerate(rates, 1):
        decision = decide([Reading(i * tick, "h1#web_10000", None, rps)], count, policy, i * tick, history)
        count, history = decision.target, decision.history
        out.append(count)
    return out


def mlb_counts(rates: Sequence[float], options: MlbOptions, start: int) -> list[int]:
    """The same for marathon-lb-autoscale's rule."""
    count, state, out = start, MlbState(), []
    for i, rps in enumerate(rates, 1):
        target, state, _ = mlb_step(state, rps, count, i * options.interval, options)
        count = count if target is None else target
        out.append(count)
    return out


def test_intervals_past_threshold_grows_only_after_that_many_intervals_in_a_row() -> None:
    policy = Policy(**_base_policy({"target_rps": 100.0, "interval": 60.0, "intervals_past_threshold": 3}))
    rates = [400.0] * 4 + [600.0] * 2 + [400.0] + [600.0] * 3  # 150 per instance over 4: past the band
    assert counts(rates, policy, start=4) == [4] * 9 + [6], "two past, one inside: the count starts again"
    mlb = MlbOptions(target_rps=100, samples=1, cooldown=0, threshold_percent=0.1, intervals_past_threshold=3)
    assert mlb_counts(rates, mlb, start=4) == [4] * 9 + [6], "as marathon-lb-autoscale does"
    assert counts(rates, Policy(target_rps=100), start=4)[4] == 6, "without it wharf grows at once"


def test_intervals_past_threshold_holds_a_shrink_as_long() -> None:
    policy = Policy(**_base_policy({"target_rps": 100.0, "interval": 60.0, "intervals_past_threshold": 5}))
    assert (policy.scale_up_stabilization, policy.scale_down_stabilization) == (300, 300)
    rates = [400.0] * 4 + [200.0] * 5  # 50 per instance over 4: under the band
    assert counts(rates, policy, start=4) == [4] * 8 + [2]
    assert counts(rates, Policy(target_rps=100), start=4) == [4] * 5 + [2] * 4, "the default: two decisions agree"
    longer = _base_policy({"interval": 60.0, "samples": 10, "intervals_past_threshold": 3})
    assert longer == {"scale_up_stabilization": 180, "scale_down_stabilization": 600}, "a longer window stays"
    explicit = _base_policy({"interval": 60.0, "intervals_past_threshold": 3, "scale_up_stabilization": 0})
    assert explicit["scale_up_stabilization"] == 0, "wharf's own flags in seconds win"


def test_an_app_with_bad_labels_is_logged_once_and_the_others_go_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wharf.autoscale")
    source = StatsSource("/run/wharf-test/admin.sock")
    good = ScaledApp("/shop/web", 2, TARGET_ONLY, (10000,))
    bad = ScaledApp("/blog", 1, {**TARGET_ONLY, "wharf.autoscale.min": "many"}, (10001,))
    csv = stats_csv(1200) + stats_csv(900, "blog_10001").split("\n", 1)[1]
    daemon = Autoscaler(MarathonApps(["http://127.0.0.1:9"]), [source], policy={"max_instances": 3}, interval=0.01)
    fake = FakeMarathon([good, bad], stop_after=3, daemon=daemon)
    daemon.marathon = fake  # type: ignore[assignment]
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(StatsSource, "read", lambda self: csv)
            assert daemon.run() == 0
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    assert fake.calls == 3, "three cycles"
    assert fake.scaled == [("/shop/web", 3)], "the good app is scaled, held by the command line's max"
    skipped = [r for r in caplog.records if r.getMessage() == "app not scaled"]
    assert len(skipped) == 1, "the bad app is logged once, not every cycle"
    assert fields_of(skipped[0])["problem"] == "app /blog: wharf.autoscale.min: not an integer: 'many'"
    assert not [r for r in caplog.records if r.getMessage() == "cycle failed"]
