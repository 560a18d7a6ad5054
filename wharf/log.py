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
_FIELDS = "wharf_fields"  # the one attribute `fields()` sets: every field lives inside it
_LINE_KEYS = ("ts", "level", "logger", "msg", "error")  # a JSON line's own keys


def fields(**values: Any) -> dict[str, Any]:
    """Structured fields for a log call, as `log.info("msg", extra=fields(name=..., port=...))`.

    Any name is allowed, `name`, `msg` or `args` too: the fields travel inside one attribute of
    the record, so they never collide with the LogRecord's own attributes."""
    return {_FIELDS: values}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields of a record: those given with `fields()`, and any other `extra=` keys."""
    found = {k: v for k, v in vars(record).items() if k not in _STANDARD and k != _FIELDS}
    found.update(getattr(record, _FIELDS, None) or {})
    return found


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
        for key, value in fields_of(record).items():
            data[f"{key}_" if key in _LINE_KEYS else key] = value
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
            extras = {k: v for k, v in vars(record).items() if k not in _STANDARD and k != _FIELDS}
            for key, value in extras.items():
                setattr(record, key, self._mask(value))
            given = getattr(record, _FIELDS, None)
            if given:  # a copy: the caller's dict is left as it was
                setattr(record, _FIELDS, {key: self._mask(value) for key, value in given.items()})
        return True

    def _mask(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, "********")
        return value


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
