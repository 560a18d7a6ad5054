"""The one HTTP JSON client every Marathon, Chronos and framework call goes through.

A client is given one or several base URLs (several masters of one service): each call goes to
the one that answered last and moves on to the next on a connection error; when none answers,
the whole round is retried with a `wharf.retry.Retry` and the failure becomes one line from
`wharf.errors.reaching`. Credentials (`http://user:password@host:port`) are split off the URLs and
sent as basic auth; they never appear in a message or a log line. An answer of 400 or more raises
an `HttpError` (or the subclass the client is given) keeping the status and the body.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

from wharf.errors import BadInput, HttpError, reaching
from wharf.log import fields
from wharf.retry import Retry

log = logging.getLogger("wharf.http")

#: connection errors (every base URL down) are retried for a while; answers are not
CONNECT_RETRY = Retry(delay=0.2, max_delay=2.0, deadline=20.0, retry_on=(requests.ConnectionError, requests.Timeout))


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """`http://user:pass@host/x` → (`http://host/x`, (user, pass)); URLs without user-info unchanged."""
    parts = urlsplit(url)
    if not parts.username:
        return url, None
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc)), (unquote(parts.username), unquote(parts.password or ""))


@dataclass(frozen=True)
class Base:
    """One base URL, without credentials, and the credentials."""

    url: str
    auth: tuple[str, str] | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> Base:
        url, auth = split_credentials(text.strip())
        return cls(url.rstrip("/"), auth)


def short(body: Any) -> str:
    """An error body as one short line."""
    return " ".join(str(body).split())[:300]


def _decode(response: requests.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return response.text


class HttpClient:
    """`system` (as `wharf.errors.CHECK` names it) at `urls`; thread-safe, one session per thread.

    auth: credentials for every URL, in place of those in the URLs. headers: sent with every call.
    error: the `HttpError` subclass raised for refused calls; describe: its body as one line.
    shown: the address for messages (default: the URLs without credentials)."""

    def __init__(self, urls: str | Sequence[str], *, system: str, timeout: float = 10.0,
                 retry: Retry = CONNECT_RETRY, auth: tuple[str, str] | None = None,
                 headers: Mapping[str, str] | None = None, error: type[HttpError] = HttpError,
                 describe: Callable[[Any], str] = short, shown: str | None = None) -> None:
        bases = [Base.parse(u) for u in ([urls] if isinstance(urls, str) else urls)]
        if not bases:
            raise BadInput(f"no URL given for {system}")
        self.bases = [Base(b.url, auth or b.auth) for b in bases]
        self.system, self.timeout, self.retry = system, timeout, retry
        self.headers, self.error, self.describe = dict(headers or {}), error, describe
        self.shown = shown or ", ".join(b.url for b in self.bases)
        self._current = 0
        self._local = threading.local()

    @property
    def auth(self) -> tuple[str, str] | None:
        """The first credentials any URL carries (for a log filter to hide)."""
        return next((b.auth for b in self.bases if b.auth), None)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _send(self, method: str, path: str, body: Any, params: Mapping[str, Any] | None,
              stream: bool) -> requests.Response:
        """One try over every base URL, starting with the one that answered last."""
        last: Exception | None = None
        start = self._current
        headers = {**({"Content-Type": "application/json"} if body is not None else {}), **self.headers}
        for n in range(len(self.bases)):
            index = (start + n) % len(self.bases)
            base = self.bases[index]
            try:
                response = self._session().request(
                    method, base.url + path, params=params, auth=base.auth, stream=stream, headers=headers,
                    data=None if body is None else json.dumps(body),
                    timeout=(self.timeout, None if stream else self.timeout))
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = exc
                log.debug("unreachable", extra=fields(system=self.system, url=base.url, error=type(exc).__name__))
                continue
            self._current = index
            return response
        assert last is not None
        raise last  # every base URL failed: the last one's error says why

    def request(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None,
                ok: Sequence[int] = (), text: bool = False) -> Any:
        """Call `path` and return the decoded JSON answer (its text when it is not JSON, or with
        `text`); statuses in `ok` and below 400 are answers, others raise `self.error`. Connection
        errors are retried (every base URL) as `self.retry` says."""
        with reaching(self.system, self.shown, self.retry.deadline):
            response = self.retry(self._send, method, path, body, params, False)
        data = response.text if text else _decode(response)
        status = response.status_code
        if status >= 400 and status not in ok:
            why = "refused the credentials (401)" if status == 401 else f"answered {status}: {self.describe(data)}"
            raise self.error(f"{method} {path}: {self.system} {why}", status, data, response.text, response.reason)
        return data

    def stream(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """A server-sent event stream (`GET path`), one decoded JSON `data:` per event; ends when
        the stream does. Raises on connection errors or a refused stream; not retried."""
        with reaching(self.system, self.shown):
            response = self._send("GET", path, None, params, True)
        try:
            if response.status_code != 200:
                raise self.error(f"GET {path}: {self.system} answered {response.status_code}",
                                 response.status_code, None)
            yield from _sse(response)
        finally:
            response.close()


def _sse(response: requests.Response) -> Iterator[dict[str, Any]]:
    """The JSON `data:` of each event of a server-sent event stream."""
    data: list[str] = []
    for raw in response.iter_lines(decode_unicode=False):
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            try:
                yield json.loads("\n".join(data))
            except ValueError:
                log.debug("undecodable event", extra=fields(data="\n".join(data)[:200]))
            data = []
