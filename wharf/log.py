"""Structured log lines for wharf's commands and daemons, as text (`key=value`) or JSON."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a caller attached with `extra={...}`."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """`2026-01-01T00:00:00.000Z info wharf.x message key=value ...`"""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), record.levelname.lower(), record.name, record.getMessage()]
        parts += [f"{k}={_text(v)}" for k, v in fields_of(record).items()]
        line = " ".join(parts)
        if record.exc_info and record.exc_info[1]:
            line += " error=" + _text(_describe(record.exc_info[1]))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update(fields_of(record))
        if record.exc_info and record.exc_info[1]:
            data["error"] = _describe(record.exc_info[1])
        return json.dumps(data, default=str)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\n')) else text


class Redactor(logging.Filter):
    """Masks known secrets (tokens, passwords) wherever they would appear in a line."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "********")
            record.msg, record.args = message, None
            for key, value in fields_of(record).items():
                if isinstance(value, str):
                    for secret in self.secrets:
                        value = value.replace(secret, "********")
                    setattr(record, key, value)
        return True


def setup(fmt: str = "text", level: str = "info", secrets: Iterable[str] = (), stream: Any = None) -> None:
    """Send wharf's log lines to stderr in `fmt` ("text" or "json"), masking `secrets`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(Redactor(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("kazoo", "pymesos", "urllib3", "docker", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
