"""The alert rules wharf ships (observe/rules/wharf.rules.yml), as promtool reads and tests them, and the
dev cluster's Prometheus: its copy of the rules, its configuration and its targets from the catalog."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from consul_templates import render
from consul_templates.snapshot import ServiceInstance, Snapshot
from devcluster.prometheus import TARGETS_TEMPLATE, dev_rules, scrape_config, shipped_rules
from wharf.announce import registration

pytestmark = pytest.mark.unit
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool is not installed (Debian's prometheus package)")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "observe" / "rules" / "wharf.rules.yml"
RULE_TESTS = Path(__file__).parent / "rules" / "wharf.rules.test.yml"
ALERTS = ["WharfDaemonDown", "WharfRegistratorAbsent", "WharfRendererAbsent", "WharfRenderStale",
          "WharfRenderValidationFailing", "WharfAppBelowHealthyMinimum", "WharfAppPinnedAtMax",
          "WharfFrameworkNoLeader"]


def promtool(*args: str | Path) -> str:
    done = subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rules_of(parsed: dict) -> list[dict]:
    return [rule for group in parsed["groups"] for rule in group["rules"]]


@needs_promtool
def test_promtool_accepts_the_shipped_rules_each_with_a_for_a_severity_and_what_to_check() -> None:
    assert "SUCCESS: 8 rules found" in promtool("check", "rules", SHIPPED)
    rules = rules_of(shipped_rules())
    assert [r["alert"] for r in rules] == ALERTS
    for rule in rules:
        assert rule["for"].endswith("m") and rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]


@needs_promtool
def test_each_rule_fires_at_its_production_duration_and_not_before() -> None:
    """tests/unit/rules/wharf.rules.test.yml: synthetic series, evaluated every minute."""
    assert "SUCCESS" in promtool("test", "rules", RULE_TESTS)
    tested = {t["alertname"] for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert tested == set(ALERTS)


@needs_promtool
def test_the_dev_copy_holds_each_alert_one_second_and_lowers_the_staleness_threshold(tmp_path: Path) -> None:
    shipped = shipped_rules()
    before = json.dumps(shipped)
    dev = dev_rules(shipped)
    assert json.dumps(shipped) == before, "the shipped rules are left as they were"
    assert {r["for"] for r in rules_of(dev)} == {"1s"}
    stale = {r["alert"]: r["expr"] for r in rules_of(dev)}["WharfRenderStale"]
    assert "> 5)" in stale and "> 900" not in stale
    assert [r["alert"] for r in rules_of(dev)] == ALERTS
    (tmp_path / "dev.rules.yml").write_text(yaml.safe_dump(dev))
    assert "SUCCESS: 8 rules found" in promtool("check", "rules", tmp_path / "dev.rules.yml")


def test_the_dev_copy_refuses_a_threshold_the_rules_no_longer_hold() -> None:
    shipped = shipped_rules()
    for rule in rules_of(shipped):
        rule["expr"] = rule["expr"].replace("> 900", "> 1800")
    with pytest.raises(ValueError, match="WharfRenderStale: its expression no longer holds '> 900'"):
        dev_rules(shipped)


@needs_promtool
def test_promtool_accepts_the_dev_clusters_configuration(tmp_path: Path) -> None:
    rule_file, targets = tmp_path / "wharf.rules.yml", tmp_path / "targets.json"
    rule_file.write_text(yaml.safe_dump(dev_rules(shipped_rules())))
    targets.write_text("[]")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(targets, "127.0.0.1:8404", rule_file)))
    assert "is valid prometheus config file syntax" in promtool("check", "config", config)


def test_the_targets_template_lists_each_daemons_endpoint_as_consul_service_discovery_labels_it(
        tmp_path: Path) -> None:
    body = registration("render", "127.0.0.1", 9102, "node1")
    daemon = ServiceInstance(body["service_id"], body["name"], "node1", "127.0.0.1", 9102, tuple(body["tags"]),
                             body["meta"], "critical")  # a killed daemon is still a target: found down
    task = ServiceInstance("node1:mesos-1:31000", "web", "node1", "127.0.0.1", 31000, (),
                           {"marathon_app_id": "/web", "service_port": "10000"})
    template = tmp_path / "targets.json.j2"
    template.write_text(TARGETS_TEMPLATE)
    text = render.render(render.load_template(str(template)), Snapshot.of([daemon, task]),
                         render.RenderSettings()).text
    assert json.loads(text) == [{"targets": ["127.0.0.1:9102"], "labels": {
        "__meta_consul_service": "wharf-render", "__meta_consul_node": "node1",
        "__meta_consul_tags": ",wharf-metrics,", "__meta_consul_service_port": "9102",
        "__meta_consul_service_metadata_wharf_daemon": "render"}}]
    empty = render.render(render.load_template(str(template)), Snapshot.of([task]), render.RenderSettings()).text
    assert json.loads(empty) == []
