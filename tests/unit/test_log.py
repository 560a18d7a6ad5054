"""Log lines are structured (text key=value or JSON) and never carry a secret."""

from __future__ import annotations

import io
import json
import logging

import pytest

from wharf import log

pytestmark = pytest.mark.unit


def emit(fmt: str, secrets: tuple[str, ...] = ()) -> str:
    stream = io.StringIO()
    log.setup(fmt, "info", secrets=secrets, stream=stream)
    logger = logging.getLogger("wharf.test")
    logger.info("registered %s", "web", extra={"service": "web-1", "port": 31000})
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
    logging.getLogger("wharf.test").warning("failed", extra={"error": "connection refused"})
    assert stream.getvalue().rstrip().endswith('error="connection refused"')


def test_secrets_are_redacted_in_message_and_fields() -> None:
    stream = io.StringIO()
    log.setup("json", "info", secrets=["tok-abc"], stream=stream)
    logging.getLogger("wharf.test").info("using tok-abc", extra={"header": "X-Consul-Token: tok-abc"})
    out = stream.getvalue()
    assert "tok-abc" not in out
    assert json.loads(out)["header"] == "X-Consul-Token: ********"


@pytest.fixture(autouse=True)
def _restore_logging() -> None:
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
