"""One error family for every wharf command: bad input exits 2, failure exits 1."""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager


class WharfError(Exception):
    """Base of wharf's errors: a one-line `message` and the process's `exit_code`. The CLI's edge
    (`wharf.cli`) prints `Error: <message>` and exits with the code; nothing else knows click."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadInput(WharfError):
    """The user's input (flags, environment, files) is wrong; nothing was changed."""

    exit_code = 2


class Failure(WharfError):
    """The input was fine but the work failed (a service did not start, a call was refused)."""

    exit_code = 1


class RetryFailed(Failure):
    """Every try failed, or the deadline passed; `last` is the final exception."""

    def __init__(self, message: str, last: BaseException | None) -> None:
        super().__init__(message)
        self.last = last


class Unreachable(Failure):
    """A system that did not answer: which one, the address tried, why, and what to check."""

    def __init__(self, system: str, address: str, why: str, after: float | None = None) -> None:
        tried = f"; tried for {after:g} s" if after else ""
        super().__init__(f"cannot reach {system} at {address} ({why}{tried}): {CHECK.get(system, 'is it running?')}")
        self.system, self.address, self.why = system, address, why


#: what a person should look at when each system cannot be reached
CHECK = {
    "Consul": "is a Consul agent running there? Check CONSUL_HTTP_ADDR or --consul-addr",
    "Marathon": "is Marathon running there? Check MARATHON_URL or --marathon-url",
    "Chronos": "is Chronos running there? Check CHRONOS_URL or --chronos-url",
    "the Mesos master": "is a Mesos master running there? Check MESOS_MASTER or --mesos-master",
    "ZooKeeper": "is ZooKeeper running there? Check WHARF_ZK or --zk",
    "the Docker engine": "is dockerd running, and is its socket there? Check DOCKER_HOST or --docker-host",
    "HAProxy": "is HAProxy running with its stats page or admin socket there? Check --haproxy",
    "the framework's API": "is `wharf framework run` running? Check --api, or WHARF_ZK to find its leader",
}

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ENOENT: "no such socket",
    errno.EACCES: "permission denied",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timed out",
}


def network_reason(error: BaseException, connecting: bool = False) -> str | None:
    """A network failure as a few plain words ("connection refused", "timed out", "host name not
    found", ...), found anywhere in the chain of exceptions that libraries wrap it in; None when
    `error` is not a network failure. With `connecting`, the caller knows it was connecting, so an
    operating system error alone (a socket file missing) counts too."""
    import requests
    import urllib3.exceptions

    chain: list[BaseException] = []
    todo: list[BaseException] = [error]
    while todo:  # every exception linked to `error`, nearest first
        exc = todo.pop(0)
        if any(exc is e for e in chain):
            continue
        chain.append(exc)
        linked = [exc.__cause__, exc.__context__, getattr(exc, "reason", None), getattr(exc, "last", None),
                  *(a for a in exc.args if isinstance(a, BaseException))]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    wrapped = (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError, socket.gaierror,
               ssl.SSLError, TimeoutError)
    network = any(isinstance(exc, wrapped) or (isinstance(exc, ConnectionError) and exc.errno) for exc in chain)
    if not network and not (connecting and any(isinstance(exc, OSError) for exc in chain)):
        return None  # a file missing is not a network failure, unless it was a socket being connected to
    for exc in chain:  # the operating system's word first: libraries wrap it in looser types
        if isinstance(exc, socket.gaierror):
            return "host name not found"
        if isinstance(exc, ssl.SSLError):
            return f"TLS failed: {exc.reason or exc}"
        if isinstance(exc, OSError) and exc.errno in _ERRNO_WORDS:
            return _ERRNO_WORDS[exc.errno]
    if any(isinstance(exc, TimeoutError | requests.Timeout | urllib3.exceptions.TimeoutError) for exc in chain):
        return "timed out"
    if isinstance(error, ConnectionError) and not error.errno and str(error):
        return str(error)  # wharf's own words ("event stream ended")
    return "connection failed"


@contextmanager
def reaching(system: str, address: str, after: float | None = None) -> Iterator[None]:
    """Turn a failure inside the block into one line about `system` at `address`: `Unreachable` for
    a network failure, a `Failure` naming the system for anything else its client raised (wharf's
    own errors pass through as they are)."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, WharfError) and not isinstance(exc, RetryFailed):
            raise
        why = network_reason(exc, connecting=True)
        if why is None:
            raise Failure(f"{system} at {address}: {describe(exc)}") from None
        raise Unreachable(system, address, why, after) from None


def describe(error: BaseException) -> str:
    """An error as one line for a log or a message: wharf's own errors by their message, network
    failures in plain words, anything else with its type."""
    if isinstance(error, RetryFailed) and error.last is not None:
        return describe(error.last)
    if isinstance(error, WharfError):
        return error.message
    why = network_reason(error)
    return why if why else f"{type(error).__name__}: {error}"


def cannot_reach(system: str, address: str, error: BaseException) -> str:
    """The one line a daemon logs when `system` at `address` fails it: why, and what to check."""
    return Unreachable(system, address, network_reason(error, connecting=True) or describe(error)).message


class HttpError(Failure):
    """An HTTP service answered with an error: `status`, the decoded `body` (JSON, text or None),
    the raw `text` and the status line's `reason`, for the caller to word or to act on."""

    def __init__(self, message: str, status: int, body: object, text: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.status, self.body, self.text, self.reason = status, body, text, reason


class TimedOut(Failure):
    """A wait that ran out of time: `what` was awaited for `timeout` seconds (see `wharf.wait`)."""

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(f"timed out after {timeout:g}s waiting for {what}")
        self.what, self.timeout = what, timeout
