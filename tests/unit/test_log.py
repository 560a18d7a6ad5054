"""Log lines are structured (text key=value or JSON) and never carry a secret."""

from __future__ import annotations

import io
import json
import logging

import pytest

from wharf import log
from wharf.log import fields

pytestmark = pytest.mark.unit


def emit(fmt: str, secrets: tuple[str, ...] = ()) -> str:
    stream = io.StringIO()
    log.setup(fmt, "info", secrets=secrets, stream=stream)
    logger = logging.getLogger("wharf.test")
    logger.info("registered %s", "web", extra=fields(service="web-1", port=31000))
    logger.debug("hidden")
    return stream.getvalue()


def test_json_lines_carry_fields() -> None:
    (line,) = emit("json").splitlines()
    data = json.loads(line)
    assert data["level"] == "info" and data["logger"] == "wharf.test"
    assert data["msg"] == "registered web"
    assert data["service"] == "web-1" and data["port"] == 31000
    assert data["ts"].endswith("Z")


def test_text_lines_are_key_value() -> None:
    (line,) = emit("text").splitlines()
    assert " info wharf.test registered web service=web-1 port=31000" in line


def test_text_quotes_values_with_spaces() -> None:
    stream = io.StringIO()
    log.setup("text", "info", stream=stream)
    logging.getLogger("wharf.test").warning("failed", extra=fields(error="connection refused"))
    assert stream.getvalue().rstrip().endswith('error="connection refused"')


def test_secrets_are_redacted_in_message_and_fields() -> None:
    stream = io.StringIO()
    log.setup("json", "info", secrets=["tok-abc"], stream=stream)
    logging.getLogger("wharf.test").info("using tok-abc", extra=fields(header="X-Consul-Token: tok-abc"))
    out = stream.getvalue()
    assert "tok-abc" not in out
    assert json.loads(out)["header"] == "X-Consul-Token: ********"


@pytest.fixture(autouse=True)
def _restore_logging() -> None:
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_record_attribute_name_can_be_a_field(fmt: str) -> None:
    """A field may be named like any of LogRecord's own attributes (`name`, `msg`, `args`, ...):
    the call never raises and the line carries the field's value, not the record's."""
    reserved = sorted(set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"})
    stream = io.StringIO()
    log.setup(fmt, "info", stream=stream)
    given = {key: f"v-{key}" for key in reserved}
    logging.getLogger("wharf.test").warning("left out", extra=fields(**given))
    (line,) = stream.getvalue().splitlines()
    if fmt == "json":
        data = json.loads(line)
        assert data["msg"] == "left out" and data["logger"] == "wharf.test"
        # a field named like one of the line's own keys keeps its value under `<key>_`
        assert all(data[f"{key}_" if key in ("msg", "level") else key] == value for key, value in given.items())
    else:
        assert " warning wharf.test left out " in line
        assert all(f" {key}={value}" in line for key, value in given.items())


def test_secrets_are_redacted_in_helper_fields_without_changing_the_callers_dict() -> None:
    stream = io.StringIO()
    log.setup("json", "info", secrets=["tok-abc"], stream=stream)
    given = fields(name="X-Consul-Token: tok-abc")
    logging.getLogger("wharf.test").info("using", extra=given)
    assert json.loads(stream.getvalue())["name"] == "X-Consul-Token: ********"
    assert given["wharf_fields"]["name"] == "X-Consul-Token: tok-abc"


def test_fields_given_the_old_way_still_reach_the_line() -> None:
    stream = io.StringIO()
    log.setup("text", "info", stream=stream)
    logging.getLogger("wharf.test").info("legacy", extra={"service": "web"})
    assert stream.getvalue().rstrip().endswith("legacy service=web")
