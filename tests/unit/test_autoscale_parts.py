"""Policies from labels, marathon-lb names, app selection, stats parsing, marathon-lb-autoscale's rule."""

from __future__ import annotations

import math

import pytest

from autoscale.marathon import ScaledApp, select
from autoscale.mlb import MlbOptions, MlbState, mlb_step
from autoscale.policy import Policy, from_labels, from_spec
from autoscale.stats import StatsSource, backend_readings, parse_stat_csv, split_credentials, stats_url
from wharf.contracts.marathon_lb import app_name
from wharf.errors import BadInput

pytestmark = pytest.mark.unit

LABELS = {"wharf.autoscale.target_rps": "250", "wharf.autoscale.min": "2", "wharf.autoscale.max": "12",
          "wharf.autoscale.scale_up_stabilization": "30", "wharf.autoscale.scale_down_stabilization": "600",
          "wharf.autoscale.max_step": "3", "HAPROXY_0_VHOST": "shop.example.com"}


def test_policy_from_labels_over_the_command_line() -> None:
    policy = from_labels(LABELS, Policy(target_rps=100, tolerance=0.2))
    assert policy == Policy(target_rps=250, min_instances=2, max_instances=12, tolerance=0.2,
                            scale_up_stabilization=30, scale_down_stabilization=600, max_step=3)
    assert from_labels({"wharf.autoscale.max": "4"}, Policy(target_rps=100)).max_instances == 4


@pytest.mark.parametrize(("labels", "message"), [
    ({"wharf.autoscale.target_rps": "lots"}, "app /shop/web: wharf.autoscale.target_rps: not a number: 'lots'"),
    ({"wharf.autoscale.target_rps": "100", "wharf.autoscale.min": "1.5"}, "wharf.autoscale.min: not an integer"),
    ({"wharf.autoscale.target_rps": "100", "wharf.autoscale.min": "5", "wharf.autoscale.max": "2"},
     "max must be >= min"),
    ({"wharf.autoscale.min": "1"}, "wharf.autoscale.target_rps: missing"),
])
def test_bad_labels_name_the_app_the_label_and_the_reason(labels: dict[str, str], message: str) -> None:
    with pytest.raises(BadInput, match=message.replace(".", r"\.").replace("(", r"\(")) as err:
        from_labels(labels, where="app /shop/web")
    assert err.value.exit_code == 2


def test_policy_spec_for_simulate() -> None:
    assert from_spec("target_rps=50,max=9,tolerance=0.2") == Policy(target_rps=50, max_instances=9, tolerance=0.2)
    with pytest.raises(BadInput, match="--policy: speed: unknown policy key"):
        from_spec("target_rps=50,speed=3")


def test_marathon_lb_names_and_service_ports() -> None:
    assert app_name("/shop/web") == "shop_web"
    app = ScaledApp.from_marathon({"id": "/shop/web", "instances": 3, "labels": LABELS,
                                   "portDefinitions": [{"port": 10000}, {"port": 10001}], "deployments": []})
    assert app.backends() == ["shop_web_10000", "shop_web_10001"]
    bridged = ScaledApp.from_marathon({"id": "/api", "instances": 1, "deployments": [{"id": "d1"}], "container": {
        "type": "DOCKER", "docker": {"image": "x"}, "portMappings": [{"containerPort": 80, "servicePort": 10005}]}})
    assert bridged.backends() == ["api_10005"] and bridged.deploying
    labelled = ScaledApp.from_marathon({"id": "/api", "instances": 1, "portDefinitions": [{"port": 10005}],
                                        "labels": {"HAPROXY_0_PORT": "8080"}})
    assert labelled.backends() == ["api_8080"]


def test_select_by_marathon_lb_name_and_by_labels() -> None:
    apps = [ScaledApp("/shop/web", 2, {}, (10000,)), ScaledApp("/shop_web", 1, {}, (10002,)),
            ScaledApp("/blog", 1, LABELS, (10001,)), ScaledApp("/other", 1, {}, (10003,))]
    selection = select(apps, ["shop_web_10000", "nothing_10009"], Policy(target_rps=100))
    by_id = {s.app.id: s for s in selection.scaled}
    assert set(by_id) == {"/shop/web", "/blog"}, "the exact backend name, not an underscore guess"
    assert by_id["/shop/web"].backends == ("shop_web_10000",) and by_id["/shop/web"].policy.target_rps == 100
    assert by_id["/blog"].policy.target_rps == 250 and selection.missing == ["nothing_10009"]
    unscalable = select(apps, ["shop_web_10000"], None)
    assert [s.app.id for s in unscalable.scaled] == ["/blog"], "one app's problem leaves the others scaled"
    assert unscalable.problems == ["app /shop/web: wharf.autoscale.target_rps: missing (and no --target-rps given)"]


SHOW_STAT = """\
# pxname,svname,qcur,qmax,scur,smax,slim,stot,rate,req_rate,req_tot,type
marathon_http_in,FRONTEND,,,3,9,,900,12,30,2000,0
shop_web_10000,task1,0,0,1,2,,400,5,,400,2
shop_web_10000,BACKEND,0,0,1,2,,450,6,,1200,1
tcp_db_5432,BACKEND,0,0,1,2,,77,4,,,1
"""


def test_backend_rows_give_requests_falling_back_to_sessions() -> None:
    readings = backend_readings(parse_stat_csv(SHOW_STAT), "h1", 10.0)
    assert set(readings) == {"shop_web_10000", "tcp_db_5432"}
    web, db = readings["shop_web_10000"], readings["tcp_db_5432"]
    assert (web.total, web.rate, web.source, web.t) == (1200, 6.0, "h1#shop_web_10000", 10.0)
    assert (db.total, db.rate) == (77, 4.0)


def test_stats_sources_and_credentials() -> None:
    assert stats_url("http://lb:9090") == "http://lb:9090/haproxy?stats;csv"
    assert stats_url("http://lb:9090/haproxy?stats") == "http://lb:9090/haproxy?stats;csv"
    source = StatsSource.parse("http://ops:s3cret@lb:9090")
    assert source.where == "http://lb:9090" and source.auth == ("ops", "s3cret")
    assert "s3cret" not in repr(source) and "s3cret" not in source.name
    assert split_credentials("http://lb:1/x") == ("http://lb:1/x", None)
    assert StatsSource.parse("unix:/run/haproxy/admin.sock").where == "/run/haproxy/admin.sock"
    with pytest.raises(BadInput, match="--haproxy: 'lb:9090'"):
        StatsSource.parse("lb:9090")


def test_a_dns_name_is_every_haproxy_behind_it() -> None:
    source = StatsSource.parse("http://ops:pw@marathon-lb.marathon.mesos:9090")
    found = source.addresses(lambda host: ["10.0.0.2", "10.0.0.1", "fd00::3"])
    assert [s.where for s in found] == ["http://10.0.0.2:9090", "http://10.0.0.1:9090", "http://[fd00::3]:9090"]
    assert all(s.auth == ("ops", "pw") for s in found)
    assert StatsSource.parse("http://127.0.0.1:9090").addresses(lambda host: ["x"]) == [StatsSource("http://127.0.0.1:9090")]

    def unresolvable(host: str) -> list[str]:
        raise OSError("no such name")

    assert source.addresses(unresolvable) == [source]


def _mlb(rates: list[float], current: int, options: MlbOptions) -> list[tuple[int, int | None]]:
    state, out = MlbState(), []
    for i, rate in enumerate(rates, start=1):
        target, state, _ = mlb_step(state, rate, current, i * options.interval, options)
        out.append((i, target))
        if target is not None:
            current = target
    return out


def test_mlb_rule_waits_for_its_window_and_three_intervals_past_threshold() -> None:
    options = MlbOptions(target_rps=100)
    decisions = [(i, t) for i, t in _mlb([1000.0] * 20, 2, options) if t is not None]
    assert decisions[0] == (13, 10), "10 samples to fill the window, then 3 intervals past the threshold"


def test_mlb_rule_holds_back_a_plus_one_until_fifty_percent_off() -> None:
    options = MlbOptions(target_rps=100)
    assert all(t is None for _, t in _mlb([640.0] * 30, 5, options)), "128 rps per instance: no step"
    assert any(t == 8 for _, t in _mlb([760.0] * 30, 5, options)), "152 per instance: 8 instances"


def test_mlb_rule_with_zero_instances_does_not_divide_by_zero() -> None:
    decisions = [t for _, t in _mlb([300.0] * 15, 0, MlbOptions(target_rps=100)) if t is not None]
    assert decisions == [math.ceil(300 / 100)]


def test_marathon_lb_autoscale_flags_keep_their_intent_in_the_policy() -> None:
    from autoscale.cli import _base_policy

    opts = {"target_rps": 1000.0, "interval": 10.0, "samples": 5, "cooldown": 3, "threshold_percent": 0.3,
            "threshold_instances": 2, "min_instances": 2, "max_instances": 9}
    assert Policy(**_base_policy(opts)) == Policy(target_rps=1000, min_instances=2, max_instances=9,
                                                  down_tolerance=0.3, down_threshold_instances=2,
                                                  scale_down_stabilization=50, cooldown=30)
    assert _base_policy({"interval": 60.0}) == {}, "without flags, labels alone give the policy"


def test_bad_flags_exit_2_and_change_nothing() -> None:
    from click.testing import CliRunner

    from wharf.cli import cli

    result = CliRunner().invoke(cli, ["autoscale", "run", "--once", "--marathon", "http://127.0.0.1:9",
                                      "--haproxy", "http://127.0.0.1:9", "--target-rps", "100",
                                      "--min-instances", "5", "--max-instances", "2"])
    assert result.exit_code == 2 and "max must be >= min" in result.output
    result = CliRunner().invoke(cli, ["autoscale", "run", "--once", "--marathon", "http://127.0.0.1:9",
                                      "--haproxy", "http://127.0.0.1:9", "--marathonCredentials", "nopass"])
    assert result.exit_code == 2 and "--marathonCredentials: expected USER:PASS" in result.output
