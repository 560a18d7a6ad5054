"""The HTTP face of the Consul stand-in: routes, blocking queries, ACL, check runners.

All access to the :class:`ConsulState` happens under one ``threading.Condition``. Every
write that moves the index calls ``notify_all()``; a blocking query waits on the same
condition and re-runs its query on each wake-up until its own index passes the one the
client sent, exactly Consul's rule (``X-Consul-Index`` > ``?index``), so it answers within
a fraction of a millisecond of the change that concerns it.
"""

from __future__ import annotations

import hmac
import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any, TypeVar

from devcluster.consul import decode
from devcluster.consul.checks import ProbeRunner
from devcluster.consul.kv import WRITE_VERBS, entry_json
from devcluster.consul.model import CRITICAL, PASSING, STATUSES, WARNING, Limits, parse_duration
from devcluster.consul.state import CONSUL_VERSION, DEFAULT_LIMITS, ConsulState, NotFound, StateError, session_json
from devcluster.httpapi import HTTPError, Request, Response, Router, RunningServer, json_response, serve, text_response

log = logging.getLogger("wharf.devcluster.consul")

T = TypeVar("T")
DEFAULT_WAIT, MAX_WAIT = 300.0, 600.0  # Consul: 5 minutes by default, at most 10
KV_MAX_VALUE = 512 * 1024
TTL_VERBS = {"pass": PASSING, "warn": WARNING, "fail": CRITICAL}


class ConsulStandin:
    """A single-node Consul (agent + server) on 127.0.0.1, for the dev cluster and tests.

    ``start()`` binds (port 0 picks a free one) and returns self; ``url`` is the base URL;
    ``reset()`` drops all state like a restarted agent, keeping the index monotonic;
    ``stop()`` ends blocking queries, probes and connections.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        acl_token: str | None = None,
        node: str = "devcluster",
        datacenter: str = "dc1",
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.host, self.port = host, port
        self.state = ConsulState(node, datacenter, host, limits=limits)
        self._acl_token = acl_token
        self._cond = threading.Condition()
        self._closing = False
        self._seen_index = 0
        self._runners: dict[str, ProbeRunner] = {}
        self._router = self._routes()
        self._server: RunningServer | None = None
        self._timer = threading.Thread(target=self._run_timers, name="consul-timers", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ConsulStandin:
        self._server = serve(self._app, self.host, self.port, logger=log)
        self.port = self._server.port
        with self._cond:
            self._commit(force=True)
        self._timer.start()
        log.info("consul stand-in listening on %s (ACL %s)", self.url, "on" if self._acl_token else "off")
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        """Drop services, checks, KV and sessions (a restarted agent); the index keeps rising."""
        with self._cond:
            self.state.reset()
            self._commit()
        log.info("consul stand-in state dropped (index now %d)", self.state.ix.current)

    def stop(self) -> None:
        with self._cond:
            self._closing = True
            runners = list(self._runners.values())
            for runner in runners:
                runner.stop()
            self._runners.clear()
            self._cond.notify_all()
        if self._server is not None:
            self._server.stop()
        if self._timer.is_alive():
            self._timer.join(timeout=5)
        for runner in runners:
            runner.join(timeout=0.2)

    def __enter__(self) -> ConsulStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing ------------------------------------------------------------------------------

    def _commit(self, force: bool = False) -> None:
        """After a write (lock held): start/stop probes and wake blocked queries if the index moved."""
        if not force and self.state.ix.current == self._seen_index:
            return
        self._seen_index = self.state.ix.current
        wanted = self.state.probes()
        for check_id, runner in list(self._runners.items()):
            if wanted.get(check_id, (None,))[0] != runner.definition_index:
                runner.stop()
                del self._runners[check_id]
        for check_id, (definition_index, spec) in wanted.items():
            if check_id not in self._runners and not self._closing:
                self._runners[check_id] = ProbeRunner(check_id, definition_index, spec, self._report).start()
        self._cond.notify_all()

    def _report(self, check_id: str, definition_index: int, status: str, output: str) -> None:
        with self._cond:
            if not self._closing:
                self.state.record_probe(check_id, definition_index, status, output)
                self._commit()

    def _run_timers(self) -> None:
        with self._cond:
            while not self._closing:
                due = self.state.tick()
                self._commit()
                self._cond.wait(None if due is None else max(0.0, due - self.state.clock()))

    def _write(self, action: Callable[[], T]) -> T:
        with self._cond:
            try:
                return action()
            finally:
                self._commit()

    def _blocking(self, req: Request, query: Callable[[], tuple[int, T]]) -> tuple[dict[str, str], T]:
        """Run ``query``; with ``?index=N`` wait until its index exceeds N or ``wait`` ends."""
        min_index, wait = _index_param(req), _wait_param(req)
        with self._cond:
            index, data = query()
            # An index above anything this process ever issued comes from an earlier run
            # of the stand-in: answer at once so the client resets, as Consul advises.
            if 0 < min_index <= self.state.ix.current:
                deadline = time.monotonic() + wait + random.uniform(0, wait / 16)
                while index <= min_index and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                    index, data = query()
        return _meta(index), data

    def _blocking_json(self, req: Request, query: Callable[[], tuple[int, Any]], filtered: Any = None) -> Response:
        """A blocking read answered as JSON; `filtered` is the answer when `?node-meta` rules the node out."""
        headers, data = self._blocking(req, query)
        if filtered is not None and not self._node_meta_ok(req):
            data = filtered
        return json_response(data, headers=headers)

    def _app(self, req: Request) -> Response:
        found = self._router.resolve(req.method, req.path)
        if found is None:
            return text_response("404 page not found\n", 404)
        denied = self._acl_denial(req)
        if denied:
            return text_response(denied, 403)
        handler, params = found
        if req.arg("dc") not in (None, "", self.state.datacenter):
            return text_response("No path to datacenter", 500)
        if req.arg("filter"):
            return text_response("the dev-cluster Consul stand-in does not evaluate ?filter expressions", 400)
        try:
            return handler(Request(req.method, req.path, req.query, req.headers, req.body, params))
        except decode.DecodeError as err:
            return text_response(str(err), 413 if str(err).startswith("Transaction contains too many") else 400)
        except NotFound as err:
            return text_response(str(err), 404)
        except StateError as err:
            return text_response(str(err), 500)

    def _acl_denial(self, req: Request) -> str | None:
        # Real Consul (>= 1.4 ACLs, default_policy=deny) answers 403 "ACL not found" for an
        # unknown token and 403 "Permission denied: ..." (anonymous token lacks permission,
        # with details since 1.11) when none is sent; list endpoints may filter instead of
        # refusing. The stand-in refuses everything but /v1/status/*, which Consul never guards.
        if self._acl_token is None or req.path.startswith("/v1/status/"):
            return None
        token = req.headers.get("X-Consul-Token") or ""
        auth = req.headers.get("Authorization") or ""
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        token = token or req.arg("token") or ""
        if not token:
            return "Permission denied"
        if not hmac.compare_digest(token.encode(), self._acl_token.encode()):
            return "ACL not found"
        return None

    # -- routes --------------------------------------------------------------------------------

    def _routes(self) -> Router:
        r = Router()
        add = r.add
        add("GET", "/v1/status/leader", lambda req: json_response(f"{self.state.address}:8300"))
        add("GET", "/v1/status/peers", lambda req: json_response([f"{self.state.address}:8300"]))
        add("GET", "/v1/agent/self", self._agent_self)
        add("GET", "/v1/agent/members", lambda req: json_response([self._member()]))
        add(
            "GET",
            "/v1/agent/services",
            lambda req: json_response(self._read(lambda: self.state.catalog.agent_services())),
        )
        add("GET", "/v1/agent/service/(?P<id>.+)", self._agent_service)
        add("GET", "/v1/agent/checks", lambda req: json_response(self._read(lambda: self.state.catalog.agent_checks())))
        add("PUT", "/v1/agent/service/register", self._register_service)
        add("PUT", "/v1/agent/service/deregister/(?P<id>.+)", self._deregister_service)
        add("PUT", "/v1/agent/service/maintenance/(?P<id>.+)", self._maintenance)
        add("PUT", "/v1/agent/maintenance", self._maintenance)
        add("PUT", "/v1/agent/check/register", self._register_check)
        add("PUT", "/v1/agent/check/deregister/(?P<id>.+)", self._deregister_check)
        add("PUT", "/v1/agent/check/(?P<verb>pass|warn|fail)/(?P<id>.+)", self._ttl_update)
        add("PUT", "/v1/agent/check/update/(?P<id>.+)", self._check_update)
        add("GET", "/v1/catalog/datacenters", lambda req: json_response([self.state.datacenter]))
        add("GET", "/v1/catalog/services", self._catalog_services)
        add("GET", "/v1/catalog/service/(?P<name>[^/]+)", self._catalog_service)
        add("GET", "/v1/catalog/nodes", self._catalog_nodes)
        add("GET", "/v1/catalog/node/(?P<node>[^/]+)", self._catalog_node)
        add("GET", "/v1/health/service/(?P<name>[^/]+)", self._health_service)
        add("GET", "/v1/health/checks/(?P<name>[^/]+)", self._health_checks)
        add("GET", "/v1/health/state/(?P<state>[^/]+)", self._health_state)
        add("GET", "/v1/health/node/(?P<node>[^/]+)", self._health_node)
        for method in ("GET", "PUT", "DELETE"):
            add(method, "/v1/kv/(?P<key>.*)", self._kv)
        add("PUT", "/v1/session/create", self._session_create)
        add("PUT", "/v1/session/destroy/(?P<id>[^/]+)", self._session_destroy)
        add("PUT", "/v1/session/renew/(?P<id>[^/]+)", self._session_renew)
        add("GET", "/v1/session/info/(?P<id>[^/]+)", self._session_info)
        add("GET", "/v1/session/list", self._session_list)
        add("GET", "/v1/session/node/(?P<node>[^/]+)", self._session_node)
        add("PUT", "/v1/txn", self._txn)
        return r

    def _read(self, query: Callable[[], T]) -> T:
        with self._cond:
            return query()

    # agent

    def _member(self) -> dict[str, Any]:
        s = self.state
        tags = {
            "dc": s.datacenter,
            "role": "consul",
            "port": "8300",
            "id": s.node_id,
            "build": f"{CONSUL_VERSION}:devcluster",
        }
        return {
            "Name": s.node_name,
            "Addr": s.address,
            "Port": 8301,
            "Tags": tags,
            "Status": 1,
            "ProtocolMin": 1,
            "ProtocolMax": 5,
            "ProtocolCur": 2,
            "DelegateMin": 2,
            "DelegateMax": 5,
            "DelegateCur": 4,
        }

    def _agent_self(self, req: Request) -> Response:
        s = self.state
        config = {
            "Datacenter": s.datacenter,
            "PrimaryDatacenter": s.datacenter,
            "NodeName": s.node_name,
            "NodeID": s.node_id,
            "Revision": "wharf-devcluster",
            "Server": True,
            "Version": CONSUL_VERSION,
        }
        body = {
            "Config": config,
            "DebugConfig": {},
            "Coord": None,
            "Member": self._member(),
            "Stats": {},
            "Meta": {"consul-network-segment": ""},
            "xDS": None,
        }
        return json_response(body)

    def _agent_service(self, req: Request) -> Response:
        services = self._read(lambda: self.state.catalog.agent_services())
        if req.params["id"] not in services:
            return text_response(f"unknown service ID: {req.params['id']}", 404)
        return json_response(services[req.params["id"]])

    def _register_service(self, req: Request) -> Response:
        service, checks = decode.service_definition(decode.parse_json(req.body))
        replace_checks = _flag(req, "replace-existing-checks")
        self._write(lambda: self.state.register_service(service, checks, replace_checks))
        return text_response("", 200)

    def _deregister_service(self, req: Request) -> Response:
        self._write(lambda: self.state.deregister_service(req.params["id"]))
        return text_response("", 200)

    def _maintenance(self, req: Request) -> Response:
        raw = req.arg("enable")
        if raw is None or raw == "":
            return text_response("Missing value for enable", 400)
        enable = _parse_bool(raw)
        if enable is None:
            return text_response(f'Invalid value for enable: "{raw}"', 400)
        reason = req.arg("reason") or ""
        self._write(lambda: self.state.set_maintenance(enable, reason, req.params.get("id", "")))
        return text_response("", 200)

    def _register_check(self, req: Request) -> Response:
        check = decode.check_definition(decode.parse_json(req.body))
        if not check.name:
            return text_response("Missing check name", 400)
        self._write(lambda: self.state.register_check(check))
        return text_response("", 200)

    def _deregister_check(self, req: Request) -> Response:
        self._write(lambda: self.state.deregister_check(req.params["id"]))
        return text_response("", 200)

    def _ttl_update(self, req: Request) -> Response:
        status, note = TTL_VERBS[req.params["verb"]], req.arg("note") or ""
        self._write(lambda: self.state.update_ttl(req.params["id"], status, note))
        return text_response("", 200)

    def _check_update(self, req: Request) -> Response:
        f = decode.fields(decode.parse_json(req.body), "checkUpdate")
        status, output = f.get("status"), f.get("output") or ""
        if status not in STATUSES:
            return text_response(f"Invalid check status: '{status}'", 400)
        self._write(lambda: self.state.update_ttl(req.params["id"], str(status), str(output)))
        return text_response("", 200)

    # catalog and health

    def _node_meta_ok(self, req: Request) -> bool:
        meta = self.state.catalog.node.meta
        for pair in req.query.get("node-meta", []):
            key, _, value = pair.partition(":")
            if meta.get(key) != value:
                return False
        return True

    def _catalog_services(self, req: Request) -> Response:
        return self._blocking_json(req, lambda: self.state.catalog.catalog_services(), filtered={})

    def _catalog_service(self, req: Request) -> Response:
        name, tags = req.params["name"], req.query.get("tag", [])
        return self._blocking_json(req, lambda: self.state.catalog.catalog_service(name, tags), filtered=[])

    def _catalog_nodes(self, req: Request) -> Response:
        return self._blocking_json(req, lambda: self.state.catalog.catalog_nodes(), filtered=[])

    def _catalog_node(self, req: Request) -> Response:
        node = req.params["node"]
        return self._blocking_json(req, lambda: self.state.catalog.catalog_node(node))

    def _health_service(self, req: Request) -> Response:
        name, tags = req.params["name"], req.query.get("tag", [])
        passing = req.has("passing") and _parse_bool(req.arg("passing") or "true") is True
        return self._blocking_json(req, lambda: self.state.catalog.health_service(name, tags, passing), filtered=[])

    def _health_checks(self, req: Request) -> Response:
        name = req.params["name"]
        return self._blocking_json(req, lambda: self.state.catalog.health_checks(name))

    def _health_state(self, req: Request) -> Response:
        state = req.params["state"]
        if state not in ("any", *STATUSES):
            return text_response(f'Invalid check state "{state}"', 400)
        return self._blocking_json(req, lambda: self.state.catalog.health_state(state))

    def _health_node(self, req: Request) -> Response:
        node = req.params["node"]
        return self._blocking_json(req, lambda: self.state.catalog.health_node(node))

    # KV

    def _kv(self, req: Request) -> Response:
        key = req.params["key"]
        if req.method == "GET":
            return self._kv_get(req, key)
        if req.method == "PUT":
            return self._kv_put(req, key)
        return self._kv_delete(req, key)

    def _kv_get(self, req: Request, key: str) -> Response:
        if req.has("keys"):
            separator = req.arg("separator") or req.arg("seperator") or ""  # Consul accepts its old typo
            headers, keys = self._blocking(req, lambda: self.state.kv.keys(key, separator))
            if not keys and key:
                return Response(404, b"", "text/plain", tuple(headers.items()))
            return json_response(keys, headers=headers)
        if req.has("recurse"):
            headers, entries = self._blocking(req, lambda: self.state.kv.list_prefix(key))
            if not entries:
                return Response(404, b"", "text/plain", tuple(headers.items()))
            return json_response([entry_json(e) for e in entries], headers=headers)
        if not key:
            return text_response("Missing key name", 400)
        headers, entry = self._blocking(req, lambda: self.state.kv.get(key))
        if entry is None:
            return Response(404, b"", "text/plain", tuple(headers.items()))
        if req.has("raw"):
            extra = {**headers, "X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}
            return Response(200, entry.value or b"", "text/plain", tuple(extra.items()))
        return json_response([entry_json(entry)], headers=headers)

    def _kv_put(self, req: Request, key: str) -> Response:
        if not key:
            return text_response("Missing key name", 400)
        if _conflicting(req, "cas", "acquire", "release"):
            return text_response(f"Conflicting flags: {urllib.parse.urlencode(req.query, doseq=True)}\n", 400)
        if len(req.body) > KV_MAX_VALUE:
            return text_response(
                f"Request body({len(req.body)} bytes) too large, max size: {KV_MAX_VALUE} bytes. "
                "See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.",
                413,
            )
        flags = _uint_param(req, "flags")
        cas = _uint_param(req, "cas") if req.has("cas") else None
        value = req.body or None
        acquire, release = req.arg("acquire") or "", req.arg("release") or ""
        if (req.has("acquire") and not acquire) or (req.has("release") and not release):
            return text_response("missing session", 500)
        ok = self._write(lambda: self.state.kv_put(key, value, flags, cas=cas, acquire=acquire, release=release))
        return json_response(ok)

    def _kv_delete(self, req: Request, key: str) -> Response:
        if _conflicting(req, "recurse", "cas"):
            return text_response(f"Conflicting flags: {urllib.parse.urlencode(req.query, doseq=True)}\n", 400)
        recurse = req.has("recurse")
        if not key and not recurse:
            return text_response("Missing key name", 400)
        cas = _uint_param(req, "cas") if req.has("cas") else None
        return json_response(self._write(lambda: self.state.kv_delete(key, recurse=recurse, cas=cas)))

    # sessions and transactions

    def _session_create(self, req: Request) -> Response:
        session_req = decode.session_request(req.body)
        return json_response({"ID": self._write(lambda: self.state.create_session(session_req))})

    def _session_destroy(self, req: Request) -> Response:
        self._write(lambda: self.state.destroy_session(req.params["id"]))
        return json_response(True)

    def _session_renew(self, req: Request) -> Response:
        session_id = req.params["id"]
        session = self._write(lambda: self.state.renew_session(session_id))
        if session is None:
            return text_response(f"Session id '{session_id}' not found", 404)
        return json_response([session_json(session)])

    def _session_info(self, req: Request) -> Response:
        session_id = req.params["id"]
        return self._blocking_json(req, lambda: self.state.session_info(session_id))

    def _session_list(self, req: Request) -> Response:
        return self._blocking_json(req, lambda: self.state.session_list())

    def _session_node(self, req: Request) -> Response:
        node = req.params["node"]
        return self._blocking_json(req, lambda: self.state.session_list(node))

    def _txn(self, req: Request) -> Response:
        ops = decode.txn_ops(req.body)
        results, errors = self._write(lambda: self.state.txn(ops))
        headers = (
            {}
            if any(op.verb in WRITE_VERBS for op in ops)
            else {"X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"}
        )
        if errors:
            return json_response({"Results": None, "Errors": errors}, 409, headers)
        return json_response({"Results": results, "Errors": None}, headers=headers)


# -- parameters ---------------------------------------------------------------------------------


def _meta(index: int) -> dict[str, str]:
    # Consul's rule: an index is never 0 (clients would not block), so 0 is reported as 1.
    return {"X-Consul-Index": str(max(index, 1)), "X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"}


def _index_param(req: Request) -> int:
    raw = req.arg("index")
    if not raw:
        return 0
    if not raw.isdigit():
        raise HTTPError(400, "Invalid index")
    return int(raw)


def _wait_param(req: Request) -> float:
    raw = req.arg("wait")
    if not raw:
        return DEFAULT_WAIT
    try:
        wait = parse_duration(raw)
    except ValueError:
        raise HTTPError(400, "Invalid wait time") from None
    return min(max(wait, 0.0), MAX_WAIT)


def _uint_param(req: Request, name: str) -> int:
    raw = req.arg(name) or "0"
    if not raw.isdigit():
        raise HTTPError(400, f'strconv.ParseUint: parsing "{raw}": invalid syntax')
    return int(raw)


def _parse_bool(raw: str) -> bool | None:
    lowered = raw.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    return None


def _flag(req: Request, name: str) -> bool:
    return req.has(name) and _parse_bool(req.arg(name) or "true") is True


def _conflicting(req: Request, *names: str) -> bool:
    return sum(1 for n in names if req.has(n)) > 1
