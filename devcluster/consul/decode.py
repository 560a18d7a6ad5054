"""Request bodies -> records, with Consul's leniency and its error texts.

Consul decodes JSON field names case-insensitively and also accepts snake_case
(``enable_tag_override``, ``deregister_critical_service_after``), which py-consul relies on
(it sends ``name``, ``checks``, ``http``). Keys are therefore compared after lower-casing
and dropping underscores. Every error here becomes HTTP 400 with its message.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from devcluster.consul.kv import TxnOp
from devcluster.consul.model import STATUSES, CheckSpec, Service, frozen_map, parse_duration

MAX_TXN_OPS = 64
UNSUPPORTED_CHECKS = {
    "args": "script",
    "scriptargs": "script",
    "script": "script",
    "grpc": "gRPC",
    "dockercontainerid": "Docker",
    "h2ping": "H2PING",
    "aliasservice": "alias",
    "aliasnode": "alias",
    "udp": "UDP",
    "osservice": "OS service",
}


class DecodeError(ValueError):
    """A request Consul answers with 400 and this text."""


@dataclass(frozen=True)
class CheckRequest:
    """A check as registered: ID/Name may be empty (the agent fills them in)."""

    id: str
    name: str
    notes: str
    service_id: str
    status: str | None
    spec: CheckSpec


@dataclass(frozen=True)
class SessionRequest:
    name: str = ""
    node: str = ""
    lock_delay: float = 15.0
    behavior: str = "release"
    ttl: str = ""
    node_checks: tuple[str, ...] | None = None  # None: Consul's default, ("serfHealth",)
    service_checks: tuple[str, ...] = ()
    legacy_checks: tuple[str, ...] | None = None


def parse_json(body: bytes, prefix: str = "Request decode failed") -> Any:
    if not body.strip():
        raise DecodeError(f"{prefix}: EOF")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DecodeError(f"{prefix}: {err}") from err


def fields(obj: Any, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DecodeError(f"Request decode failed: cannot unmarshal {_json_type(obj)} into {what}")
    return {str(k).replace("_", "").lower(): v for k, v in obj.items()}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}.get(type(value), "value")


def _typed(f: dict[str, Any], key: str, kind: type, default: Any, label: str) -> Any:
    value = f.get(key)
    if value is None:
        return default
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DecodeError(
            f"Request decode failed: cannot unmarshal {_json_type(value)} into {label} of type {kind.__name__}"
        )
    return value


def _strings(f: dict[str, Any], key: str, label: str) -> tuple[str, ...]:
    values = _typed(f, key, list, [], label)
    if not all(isinstance(v, str) for v in values):
        raise DecodeError(f"Request decode failed: {label} must be a list of strings")
    return tuple(values)


def _string_map(f: dict[str, Any], key: str, label: str) -> dict[str, str]:
    values = _typed(f, key, dict, {}, label)
    if not all(isinstance(v, str) for v in values.values()):
        raise DecodeError(f"Request decode failed: {label} values must be strings")
    return dict(values)


def _duration(f: dict[str, Any], key: str, label: str) -> float:
    value = f.get(key)
    if value is None or value == "":
        return 0.0
    try:
        seconds = parse_duration(value) if isinstance(value, str) else float(value) / 1e9
    except (TypeError, ValueError) as err:
        raise DecodeError(f"Request decode failed: {label}: {err}") from err
    if seconds < 0:
        raise DecodeError(f"Request decode failed: {label} must not be negative")
    return seconds


def service_definition(body: Any) -> tuple[Service, list[CheckRequest]]:
    """A ``/v1/agent/service/register`` body -> the service and its checks."""
    f = fields(body, "ServiceDefinition")
    name = _typed(f, "name", str, "", "ServiceDefinition.Name")
    if not name:
        raise DecodeError("Missing service name")
    for unsupported in ("kind", "proxy", "connect"):
        if f.get(unsupported):
            raise DecodeError(f"the dev-cluster Consul stand-in does not support Connect ({unsupported!r} given)")
    service_id = _typed(f, "id", str, "", "ServiceDefinition.ID") or name
    tagged: dict[str, tuple[str, int]] = {}
    for tag_name, raw in _typed(f, "taggedaddresses", dict, {}, "ServiceDefinition.TaggedAddresses").items():
        tf = fields(raw, "ServiceAddress")
        tagged[tag_name] = (
            _typed(tf, "address", str, "", "ServiceAddress.Address"),
            _typed(tf, "port", int, 0, "ServiceAddress.Port"),
        )
    weights = fields(f.get("weights") or {}, "Weights")
    service = Service(
        id=service_id,
        name=name,
        tags=_strings(f, "tags", "ServiceDefinition.Tags"),
        address=_typed(f, "address", str, "", "ServiceDefinition.Address"),
        port=_typed(f, "port", int, 0, "ServiceDefinition.Port"),
        meta=frozen_map(_string_map(f, "meta", "ServiceDefinition.Meta")),
        tagged_addresses=frozen_map(tagged),
        weights=(
            _typed(weights, "passing", int, 1, "Weights.Passing"),
            _typed(weights, "warning", int, 1, "Weights.Warning"),
        ),
        enable_tag_override=_typed(f, "enabletagoverride", bool, False, "ServiceDefinition.EnableTagOverride"),
    )
    raw_checks = list(_typed(f, "checks", list, [], "ServiceDefinition.Checks"))
    if f.get("check"):
        raw_checks.insert(0, f["check"])
    checks = [check_definition(c, service_id=service_id) for c in raw_checks if c]
    return service, checks


def check_definition(body: Any, *, service_id: str = "") -> CheckRequest:
    """A check body (inside a service, or for ``/v1/agent/check/register``)."""
    f = fields(body, "CheckType")
    for key, kind in UNSUPPORTED_CHECKS.items():
        if f.get(key):
            raise DecodeError(f"the dev-cluster Consul stand-in runs only HTTP, TCP and TTL checks, not {kind} checks")
    status = _typed(f, "status", str, "", "Check.Status") or None
    if status is not None and status not in STATUSES:
        raise DecodeError(
            f'Invalid check: Status for checks must be "passing", "warning" or "critical", not "{status}"'
        )
    http, tcp = _typed(f, "http", str, "", "Check.HTTP"), _typed(f, "tcp", str, "", "Check.TCP")
    interval, ttl = _duration(f, "interval", "Check.Interval"), _duration(f, "ttl", "Check.TTL")
    if interval and ttl:
        raise DecodeError("Invalid check: Interval and TTL cannot both be specified")
    if (http or tcp) and interval <= 0:
        raise DecodeError("Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP or UDP checks")
    if not (http or tcp) and ttl <= 0:
        raise DecodeError("Invalid check: TTL must be > 0 for TTL checks")
    header = _typed(f, "header", dict, {}, "Check.Header")
    if not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in header.values()):
        raise DecodeError("Request decode failed: Check.Header must map names to lists of strings")
    spec = CheckSpec(
        kind="http" if http else "tcp" if tcp else "ttl",
        http=http,
        method=_typed(f, "method", str, "", "Check.Method"),
        header=frozen_map(header),
        body=_typed(f, "body", str, "", "Check.Body"),
        tls_skip_verify=_typed(f, "tlsskipverify", bool, False, "Check.TLSSkipVerify"),
        tcp=tcp,
        interval=interval,
        timeout=_duration(f, "timeout", "Check.Timeout"),
        ttl=ttl,
        deregister_after=_duration(f, "deregistercriticalserviceafter", "Check.DeregisterCriticalServiceAfter"),
    )
    return CheckRequest(
        id=_typed(f, "checkid", str, "", "Check.CheckID") or _typed(f, "id", str, "", "Check.ID"),
        name=_typed(f, "name", str, "", "Check.Name"),
        notes=_typed(f, "notes", str, "", "Check.Notes"),
        service_id=_typed(f, "serviceid", str, "", "Check.ServiceID") or service_id,
        status=status,
        spec=spec,
    )


def session_request(body: bytes) -> SessionRequest:
    """A ``/v1/session/create`` body; an empty body means all defaults."""
    if not body.strip():
        return SessionRequest()
    f = fields(parse_json(body), "Session")
    delay_raw = f.get("lockdelay")
    lock_delay = 15.0
    if isinstance(delay_raw, str):
        lock_delay = _duration(f, "lockdelay", "Session.LockDelay")
        lock_delay = lock_delay * 1e9 if lock_delay < 1e-6 else lock_delay  # under 1000ns means seconds
    elif isinstance(delay_raw, (int, float)) and not isinstance(delay_raw, bool):
        lock_delay = float(delay_raw) if delay_raw < 1000 else float(delay_raw) / 1e9
    service_checks = tuple(
        _typed(fields(c, "ServiceCheck"), "id", str, "", "ServiceCheck.ID")
        for c in _typed(f, "servicechecks", list, [], "Session.ServiceChecks")
    )
    legacy = _strings(f, "checks", "Session.Checks") if "checks" in f else None
    node_checks = _strings(f, "nodechecks", "Session.NodeChecks") if "nodechecks" in f else None
    if node_checks is None and (legacy is not None or "servicechecks" in f):
        node_checks = legacy or ()
    return SessionRequest(
        name=_typed(f, "name", str, "", "Session.Name"),
        node=_typed(f, "node", str, "", "Session.Node"),
        lock_delay=lock_delay,
        behavior=_typed(f, "behavior", str, "", "Session.Behavior") or "release",
        ttl=_typed(f, "ttl", str, "", "Session.TTL"),
        node_checks=node_checks,
        service_checks=service_checks,
        legacy_checks=legacy,
    )


def txn_ops(body: bytes) -> list[TxnOp]:
    """A ``/v1/txn`` body -> KV operations (Value is base64 in the request, as in Consul)."""
    raw = parse_json(body, "Failed to parse body")
    if not isinstance(raw, list):
        raise DecodeError(f"Failed to parse body: cannot unmarshal {_json_type(raw)} into TxnOps")
    if len(raw) > MAX_TXN_OPS:
        raise DecodeError(f"Transaction contains too many operations ({len(raw)} > {MAX_TXN_OPS})")
    ops = []
    for item in raw:
        f = fields(item, "TxnOp")
        if set(f) - {"kv"}:
            raise DecodeError("the dev-cluster Consul stand-in supports only KV operations in /v1/txn")
        kv = fields(f.get("kv"), "KVTxnOp")
        value = kv.get("value")
        if value is not None:
            if not isinstance(value, str):
                raise DecodeError(f"Failed to parse body: unexpected value type: {_json_type(value)}")
            try:
                value = base64.b64decode(value, validate=True)
            except binascii.Error as err:
                raise DecodeError(f"Failed to parse body: failed to decode value: {err}") from err
        ops.append(
            TxnOp(
                verb=_typed(kv, "verb", str, "", "KVTxnOp.Verb"),
                key=_typed(kv, "key", str, "", "KVTxnOp.Key"),
                value=value,
                flags=_typed(kv, "flags", int, 0, "KVTxnOp.Flags"),
                index=_typed(kv, "index", int, 0, "KVTxnOp.Index"),
                session=_typed(kv, "session", str, "", "KVTxnOp.Session"),
            )
        )
    return ops
