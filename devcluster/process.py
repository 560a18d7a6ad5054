"""Start, identify and stop the dev cluster's processes by pid; free ports; leftover mounts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from wharf.errors import BadInput, TimedOut
from wharf.wait import wait_until


@dataclass(frozen=True)
class Proc:
    """A process the dev cluster started: its pid and kernel start time (guards against pid reuse)."""

    pid: int
    start_time: int

    def alive(self) -> bool:
        """True while this very process runs (a zombie or a reused pid counts as gone)."""
        stat = _stat(self.pid)
        return stat is not None and stat[0] != "Z" and int(stat[19]) == self.start_time

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from the state field on (index 0 is the state)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


# Processes this Python process started, so that stopping them also reaps them (no zombies).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: list[str], log_path: Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> Proc:
    """Start `argv` in its own session, detached from the caller, logging to `log_path`."""
    with open(log_path, "ab") as out:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=cwd, env=env, start_new_session=True,
        )
    _CHILDREN[child.pid] = child
    stat = _stat(child.pid)
    return Proc(child.pid, int(stat[19]) if stat else 0)


def stop(proc: Proc, timeout: float = 20.0) -> None:
    """SIGTERM the process, wait up to `timeout`, then SIGKILL. Harmless if gone."""
    for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not proc.alive():
            break
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            break
        with suppress(TimedOut):  # then the next signal
            wait_until(lambda: not proc.alive(), grace, 0.05, f"pid {proc.pid} to end",
                       sleep=lambda seconds: _reap(proc.pid, seconds))
    child = _CHILDREN.pop(proc.pid, None)
    if child is not None:
        child.poll()


def _reap(pid: int, seconds: float) -> None:
    """Wait `seconds` for a process to end, reaping it if this process started it (no zombie)."""
    child = _CHILDREN.get(pid)
    if child is None:
        time.sleep(seconds)
        return
    try:
        child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) process `pid` has used so far, in seconds (0 once it is gone)."""
    stat = _stat(pid)
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK") if stat else 0.0


def start_pid_file(pid_file: Path, argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`wharf ARGV` in its own session with `env` over this environment, its output appended to
    `log_path`, its pid in `pid_file` until `stop_pid_file`. For daemons a demo starts."""
    with open(log_path, "ab") as log:
        daemon = subprocess.Popen([sys.executable, "-m", "wharf", *argv], stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True, env={**os.environ, **env})
    pid_file.write_text(str(daemon.pid))
    return daemon


def stop_pid_file(pid_file: Path, timeout: float = 20.0) -> int | None:
    """SIGTERM the process whose pid `pid_file` holds and wait up to `timeout` for it to end; the
    file is removed. Returns the pid, or None if there was no file. For daemons a demo started."""
    if not pid_file.exists():
        return None
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    with suppress(TimedOut):
        wait_until(lambda: _gone(pid), timeout, 0.1, f"pid {pid} to end")
    pid_file.unlink()
    return pid


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on (or holds) `host:port`."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def claim_ports(wanted: dict[str, int | None], host: str = "127.0.0.1") -> dict[str, int]:
    """Resolve each named port: check the ones given (bad input if taken), pick free ones for the rest."""
    for flag, port in wanted.items():
        if port is not None and not (0 < port < 65536):
            raise BadInput(f"{flag}: {port} is not a TCP port")
        if port is not None and not port_is_free(port, host):
            raise BadInput(f"{flag}: {host}:{port} is already in use")
    chosen: dict[str, int] = {}
    for flag, port in wanted.items():
        if port is None:
            port = free_port(host)
            while port in chosen.values() or port in wanted.values():
                port = free_port(host)
        chosen[flag] = port
    return chosen


def mounts_below(path: Path) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    root = str(path.resolve())
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if point == root or point.startswith(root + "/"):
            found.append(point)
    return sorted(set(found), key=len, reverse=True)


def unmount_below(path: Path) -> None:
    """Unmount whatever a stopped service left mounted under `path` (dockerd leaves its netns)."""
    for _ in range(5):
        points = mounts_below(path)
        if not points:
            return
        for point in points:
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
