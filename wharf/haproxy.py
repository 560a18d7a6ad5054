"""One client for HAProxy's Runtime API and master CLI: one command, the whole answer."""

from __future__ import annotations

import socket
from pathlib import Path

from wharf.errors import reaching


def _endpoint(address: str | Path) -> tuple[socket.AddressFamily, str | tuple[str, int]]:
    """A unix socket path (`/run/admin.sock`, `unix:/run/admin.sock`) or `host:port` (`[::1]:9999`)."""
    text = str(address).removeprefix("unix:")
    host, sep, port = text.rpartition(":")
    if isinstance(address, Path) or text.startswith(("/", ".")) or not sep or not port.isdigit():
        return socket.AF_UNIX, text
    host = host.strip("[]")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, int(port))


def send(address: str | Path, command: str, timeout: float = 5.0) -> str:
    """Send `command` to an HAProxy stats/admin or master socket and return the whole answer.
    Raises OSError (a timeout included) when the socket cannot be reached or stops answering."""
    family, where = _endpoint(address)
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(where)
        conn.sendall(command.encode() + b"\n")
        conn.shutdown(socket.SHUT_WR)  # the master CLI answers once the request side is closed
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def ask(address: str | Path, command: str, timeout: float = 5.0) -> str:
    """`send`, its failures as wharf's errors: `Unreachable` naming HAProxy at `address` and what to check."""
    with reaching("HAProxy", str(address)):
        return send(address, command, timeout)


#: HAProxy's admin-state bits that keep a server out of rotation (SRV_ADMF_MAINT: forced, inherited,
#: resolver maintenance); 0x04 only says the config wrote it `disabled`, which `state ready` overrides
MAINT_BITS = 0x01 | 0x02 | 0x20


def servers_state(text: str) -> dict[tuple[str, str], tuple[str, int, bool]]:
    """`show servers state`, as (backend, server) -> (address, port, serving). `serving`: neither in
    maintenance nor stopped (HAProxy's operational state 2, running, with no maintenance bit)."""
    found: dict[tuple[str, str], tuple[str, int, bool]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 19 or line.startswith("#") or not words[0].isdigit():
            continue
        op_state, admin = int(words[5]), int(words[6])
        port = int(words[18]) if words[18].isdigit() else 0
        found[words[1], words[3]] = (words[4], port, op_state == 2 and not admin & MAINT_BITS)
    return found
