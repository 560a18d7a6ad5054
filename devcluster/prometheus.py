"""Real Prometheus (Debian's 2.42) on loopback, finding wharf's daemons through the dev Consul.

Two jobs: `wharf`, the metrics endpoints each daemon run with `--metrics-port` registers in Consul
(tag `wharf-metrics`), labelled `daemon` (their Meta `wharf_daemon`), `node` and `instance`
(node:port); and `haproxy`, the dev HAProxy's built-in exporter on its stats port. It scrapes and
evaluates every second.

Debian builds Prometheus without Consul service discovery (its changelog: "Disable Consul SD until its
Debian package is back in shape"), so the catalog reaches it through a file instead: `prometheus-sd`
runs `wharf render run` on a template that writes every `wharf-metrics` service as file_sd target
groups carrying the very labels `consul_sd_configs` would give them (`__meta_consul_*`). The
relabelling (`RELABEL`) is the one a production job with `consul_sd_configs` uses (README).

Its rules are a copy of the shipped ones (`observe/rules/wharf.rules.yml`) made by `dev_rules`: every
`for:` at 1s and the renderer's staleness threshold at 5 s, so that the tests see each alert fire in
seconds; the shipped file keeps its production durations.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import urllib.request
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from devcluster.consul import Consul
from devcluster.service import DevService
from wharf.atomic import write_atomic
from wharf.contracts.consul_meta import DAEMON, METRICS_TAG

#: thresholds the dev copy lowers with its `for:`s: (alert, as shipped, as the dev cluster runs it)
DEV_THRESHOLDS = (("WharfRenderStale", "> 900", "> 5"),)
#: from the labels Consul service discovery gives a target to those the rules expect
RELABEL: list[dict[str, Any]] = [
    {"source_labels": ["__meta_consul_tags"], "regex": f".*,{METRICS_TAG},.*", "action": "keep"},
    {"source_labels": [f"__meta_consul_service_metadata_{DAEMON}"], "target_label": "daemon"},
    {"source_labels": ["__meta_consul_node"], "target_label": "node"},
    {"source_labels": ["__meta_consul_node", "__meta_consul_service_port"], "separator": ":",
     "target_label": "instance"},
]
#: a user template of `wharf render`: the catalog's wharf-metrics services as file_sd target groups
TARGETS_TEMPLATE = """\
{% set ns = namespace(first=true) %}
[
{% for s in services | by_tag("<TAG>") %}
{% for i in s.instances %}
{{ "" if ns.first else "," }}{"targets": {{ [i.address ~ ":" ~ i.port] | tojson }}, "labels": {{ {
  "__meta_consul_service": s.name, "__meta_consul_node": i.node,
  "__meta_consul_tags": "," ~ i.tags | join(",") ~ ",", "__meta_consul_service_port": i.port | string,
  "__meta_consul_service_metadata_<DAEMON>": i.meta.get("<DAEMON>", "")} | tojson }}}
{% set ns.first = false %}
{% endfor %}
{% endfor %}
]
""".replace("<TAG>", METRICS_TAG).replace("<DAEMON>", DAEMON)


def shipped_rules() -> dict[str, Any]:
    """The alert rules wharf ships, parsed."""
    text = (resources.files("observe") / "rules" / "wharf.rules.yml").read_text()
    return dict(yaml.safe_load(text))


def dev_rules(rules: Mapping[str, Any], hold: str = "1s") -> dict[str, Any]:
    """`rules` as the dev cluster runs them: every `for:` at `hold`, and each threshold of
    `DEV_THRESHOLDS` lowered. Pure: `rules` is left as it was."""
    changed = copy.deepcopy(dict(rules))
    lower = {alert: (shipped, dev) for alert, shipped, dev in DEV_THRESHOLDS}
    for group in changed.get("groups") or []:
        for rule in group.get("rules") or []:
            if "for" in rule:
                rule["for"] = hold
            if rule.get("alert") in lower:
                shipped, dev = lower.pop(rule["alert"])
                if shipped not in rule["expr"]:
                    raise ValueError(f"{rule['alert']}: its expression no longer holds {shipped!r}")
                rule["expr"] = rule["expr"].replace(shipped, dev)
    if lower:
        raise ValueError(f"no such alert in the rules: {', '.join(sorted(lower))}")
    return changed


def scrape_config(targets: Path, haproxy_stats: str, rule_file: Path) -> dict[str, Any]:
    """Prometheus's configuration: the `wharf` job from the targets file, the `haproxy` job, the rules."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rule_file)],
        "scrape_configs": [
            {"job_name": "wharf", "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
             "relabel_configs": RELABEL},
            {"job_name": "haproxy", "static_configs": [{"targets": [haproxy_stats]}]},
        ],
    }


class PrometheusTargets(DevService):
    """`wharf render run` keeping Prometheus's targets file in step with the Consul catalog."""

    name = "prometheus-sd"
    needs = ("consul",)

    @property
    def consul(self) -> Consul:
        return Consul(self.dir.parent / Consul.name, self.ports, self.choices)

    @property
    def template(self) -> Path:
        return self.dir / "targets.json.j2"

    @property
    def targets(self) -> Path:
        return self.dir / "targets.json"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.template, TARGETS_TEMPLATE)

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "wharf", "render", "run", "--template", str(self.template),
                "--dest", str(self.targets), "--wait", "0"]

    def child_env(self) -> dict[str, str]:
        """The caller's environment pointed at the dev Consul (its token, in ACL mode, never on a
        command line)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "WHARF_"))}
        return {**env, **self.consul.env()}

    def probe(self) -> None:
        if not isinstance(json.loads(self.targets.read_text()), list):
            raise RuntimeError(f"{self.targets} holds no list of target groups")

    def endpoints(self) -> dict[str, Any]:
        return {"targets": str(self.targets)}

    def env(self) -> dict[str, str]:
        return {}


class Prometheus(DevService):
    name = "prometheus"
    port_flags = ("--prometheus-port",)
    binaries = ("prometheus",)
    needs = ("consul", "haproxy", PrometheusTargets.name)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['--prometheus-port']}"

    @property
    def config(self) -> Path:
        return self.dir / "prometheus.yml"

    @property
    def rule_file(self) -> Path:
        return self.dir / "wharf.rules.yml"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        targets = PrometheusTargets(self.dir.parent / PrometheusTargets.name, self.ports, self.choices).targets
        write_atomic(self.rule_file, yaml.safe_dump(dev_rules(shipped_rules()), sort_keys=False, width=120))
        config = scrape_config(targets, f"127.0.0.1:{self.ports['--haproxy-stats-port']}", self.rule_file)
        write_atomic(self.config, yaml.safe_dump(config, sort_keys=False))

    def argv(self) -> list[str]:
        return ["prometheus", f"--config.file={self.config}", f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.ports['--prometheus-port']}", "--web.enable-lifecycle"]

    def probe(self) -> None:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as response:
            if response.status != 200:
                raise RuntimeError(f"/-/ready answered {response.status}")

    def endpoints(self) -> dict[str, Any]:
        return {"http": self.url, "config": str(self.config), "rules": str(self.rule_file)}

    def env(self) -> dict[str, str]:
        return {"WHARF_PROMETHEUS_URL": self.url}
