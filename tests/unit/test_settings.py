"""Settings resolve flags > environment > wharf.yaml > defaults, and say where each came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from wharf import settings
from wharf.cli import cli
from wharf.errors import BadInput

pytestmark = pytest.mark.unit


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wharf.yaml"
    path.write_text(text)
    return path


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    path = write(tmp_path, "marathon_url: http://file:8080\nchronos_url: http://file:4400\n"
                           "mesos_master: file:5050\n")
    env = {"CHRONOS_URL": "http://env:4400", "MESOS_MASTER": "env:5050"}
    loaded = settings.load({"mesos_master": "flag:5050"}, env, path)
    assert loaded.values["mesos_master"] == settings.Value("flag:5050", "flag")
    assert loaded.values["chronos_url"] == settings.Value("http://env:4400", "env")
    assert loaded.values["marathon_url"] == settings.Value(("http://file:8080",), "file")
    assert loaded.values["consul_http_addr"] == settings.Value("127.0.0.1:8500", "default")


def test_empty_environment_variable_does_not_override(tmp_path: Path) -> None:
    path = write(tmp_path, "chronos_url: http://file:4400\n")
    assert settings.load({}, {"CHRONOS_URL": ""}, path)["chronos_url"] == "http://file:4400"


def test_marathon_url_takes_several_masters() -> None:
    loaded = settings.load({}, {"MARATHON_URL": "http://m1:8080, https://m2:8443/"}, None)
    assert loaded["marathon_url"] == ("http://m1:8080", "https://m2:8443")


@pytest.mark.parametrize("value", ["m1:8080", "ftp://m1", "http://", "http://m1:99999", "http://m1:port"])
def test_malformed_marathon_url_names_the_variable(value: str) -> None:
    with pytest.raises(BadInput) as err:
        settings.load({}, {"MARATHON_URL": value}, None)
    assert str(err.value.message).startswith("MARATHON_URL: ")
    assert err.value.exit_code == 2


@pytest.mark.parametrize(("name", "value"), [
    ("MESOS_MASTER", "zk://zk1:2181"), ("MESOS_MASTER", "master"), ("WHARF_ZK", "zk1:notaport"),
    ("CONSUL_HTTP_ADDR", "consul"), ("WHARF_LOG_FORMAT", "xml"), ("WHARF_METRICS_ADDRESS", "edge"),
    ("WHARF_METRICS_ADDRESS", "0.0.0.0"),
])
def test_other_malformed_variables(name: str, value: str) -> None:
    with pytest.raises(BadInput, match=f"^{name}: "):
        settings.load({}, {name: value}, None)


def test_accepted_forms() -> None:
    loaded = settings.load({}, {"MESOS_MASTER": "zk://a:2181,b:2181/mesos", "WHARF_ZK": "a:2181,b:2181/wharf",
                                "CONSUL_HTTP_ADDR": "https://consul:8501"}, None)
    assert loaded["mesos_master"] == "zk://a:2181,b:2181/mesos"
    assert loaded["wharf_zk"] == "a:2181,b:2181/wharf"
    assert loaded["consul_http_addr"] == "https://consul:8501"
    assert settings.load({}, {}, None)["metrics_address"] == "127.0.0.1"
    assert settings.load({}, {"WHARF_METRICS_ADDRESS": "192.168.56.11"}, None)["metrics_address"] == "192.168.56.11"


def test_unknown_setting_in_file_is_named_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "marathon_ur: http://m:8080\n")
    with pytest.raises(BadInput) as err:
        settings.load({}, {}, path)
    assert str(err.value.message) == f"{path}: unknown setting 'marathon_ur' (did you mean 'marathon_url'?)"


def test_bad_value_in_file_names_file_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "chronos_url: chronos\n")
    with pytest.raises(BadInput, match=f"^{path}: chronos_url: 'chronos' is not"):
        settings.load({}, {}, path)


@pytest.mark.parametrize("text", ["a: [1\n", "- 1\n- 2\n"])
def test_malformed_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(BadInput, match=str(tmp_path)):
        settings.load({}, {}, write(tmp_path, text))


def test_secrets_are_masked_when_shown() -> None:
    loaded = settings.load({}, {"CONSUL_HTTP_TOKEN": "s3cr3t-token",
                                "MARATHON_URL": "http://ops:hunter2@m1:8080"}, None)
    assert loaded.shown("consul_http_token") == "********"
    assert loaded.shown("marathon_url") == "http://ops:***@m1:8080"
    assert sorted(loaded.secrets()) == ["hunter2", "s3cr3t-token"]


def test_password_is_not_echoed_in_errors() -> None:
    with pytest.raises(BadInput) as err:
        settings.load({}, {"MARATHON_URL": "http://ops:hunter2@m1:bad"}, None)
    assert "hunter2" not in str(err.value.message)


def test_config_show_json_reports_every_setting_and_source(tmp_path: Path) -> None:
    path = write(tmp_path, "chronos_url: http://file:4400\n")
    result = CliRunner().invoke(
        cli, ["--config", str(path), "--zk", "z1:2181", "config", "show", "--json"],
        env={"CONSUL_HTTP_TOKEN": "tok-123", "MARATHON_URL": "http://m:8080"},
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["config_file"] == str(path)
    assert set(shown["settings"]) == {s.name for s in settings.SETTINGS}
    rows = shown["settings"]
    assert (rows["wharf_zk"]["value"], rows["wharf_zk"]["source"]) == ("z1:2181", "flag")
    assert (rows["chronos_url"]["value"], rows["chronos_url"]["source"]) == ("http://file:4400", "file")
    assert (rows["marathon_url"]["value"], rows["marathon_url"]["source"]) == ("http://m:8080", "env")
    assert rows["consul_http_token"] == {"value": "********", "source": "env", "env": "CONSUL_HTTP_TOKEN"}
    assert "tok-123" not in result.output


def test_config_show_table_names_sources() -> None:
    result = CliRunner().invoke(cli, ["config", "show"], env={"CHRONOS_URL": "http://c:4400"})
    assert result.exit_code == 0
    line = next(ln for ln in result.output.splitlines() if ln.strip().startswith("chronos_url"))
    assert "http://c:4400" in line and "env" in line


def test_missing_config_file_is_bad_input(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--config", str(tmp_path / "nope.yaml"), "config", "show"])
    assert result.exit_code == 2
    assert "--config: " in result.output and "no such file" in result.output
