"""Make a running load balancer use a written config: HAProxy's Runtime API or master `reload`,
`nginx -s reload`, or any command (`--exec`)."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from wharf.atomic import write_atomic
from wharf.errors import Failure, TimedOut
from wharf.haproxy import send
from wharf.wait import wait_until


class ApplyFailed(Failure):
    """The load balancer refused a change."""


@dataclass(frozen=True)
class HAProxyProcess:
    """One line of the master CLI's `show proc`."""

    pid: int
    kind: str  # "master" or "worker"
    reloads: int
    failed: int = 0


def parse_show_proc(text: str) -> tuple[HAProxyProcess, ...]:
    """Parse `show proc`: the master (reload and failed counts) and its workers (newest has 0 reloads)."""
    procs = []
    for line in text.splitlines():
        found = re.match(r"\s*(\d+)\s+(master|worker)\s+(\d+)(?:\s+\[failed:\s*(\d+)\])?", line)
        if found:
            procs.append(HAProxyProcess(int(found[1]), found[2], int(found[3]), int(found[4] or 0)))
    return tuple(procs)


# replies of the Runtime API that mean the command did not happen
_REFUSED = re.compile(r"No such|[Ii]nvalid|denied|[Rr]equire|Unknown|not found|can't|cannot|Already exists")


def refused(answer: str) -> bool:
    """Whether a Runtime API answer says the command was refused (success is silence or a note)."""
    return bool(answer.strip()) and bool(_REFUSED.search(answer))


@dataclass
class HAProxyControl:
    """One HAProxy in master-worker mode: its admin socket, master socket and server-state file."""

    admin_socket: str
    master_socket: str | None
    state_file: str
    reload_timeout: float = 30.0

    def runtime(self, commands: Iterable[str]) -> int:
        """Send `set server` commands to the running worker; raise on the first refused one."""
        sent = 0
        for command in commands:
            answer = send(self.admin_socket, command).strip()
            if refused(answer):
                raise ApplyFailed(f"{command}: {answer.splitlines()[0]}")
            sent += 1
        return sent

    def save_state(self) -> None:
        """`show servers state` into the server-state file, so the next worker starts from it."""
        write_atomic(self.state_file, send(self.admin_socket, "show servers state"), 0o600)

    def procs(self) -> tuple[HAProxyProcess, ...]:
        if not self.master_socket:
            raise ApplyFailed("no HAProxy master socket given (--haproxy-master-socket)")
        return parse_show_proc(send(self.master_socket, "show proc"))

    def reload(self) -> int:
        """Hitless reload through the master socket; wait for the new worker and return its pid.
        The caller serialises: one reload at a time, each waited for, so none is refused as busy."""
        before = self.procs()
        master = next(p for p in before if p.kind == "master")
        try:
            self.save_state()
        except OSError:
            pass  # no worker answering: the new one starts from the file alone
        try:
            send(self.master_socket or "", "reload", timeout=self.reload_timeout)
        except OSError:
            pass  # the master re-executes and may drop the connection; `show proc` says how it went
        try:
            pid = wait_until(lambda: self._new_worker(master), self.reload_timeout, 0.01, "a new worker")
            # the Runtime API is the new worker's once it answers there: commands sent before that may
            # reach the old one, and what the caller reads back must be the new one's
            wait_until(lambda: self._answers(pid), self.reload_timeout, 0.005, "the new worker's admin socket")
            return pid
        except TimedOut:
            raise ApplyFailed(f"HAProxy did not finish reloading in {self.reload_timeout:g}s") from None

    def _answers(self, pid: int) -> bool:
        """Whether the admin socket is answered by worker `pid` (`show info`'s Pid)."""
        try:
            info = send(self.admin_socket, "show info")
        except OSError:
            return False
        return any(line.split(":", 1)[1].strip() == str(pid) for line in info.splitlines()
                   if line.startswith("Pid:"))

    def _new_worker(self, master: HAProxyProcess) -> int | None:
        """The new worker's pid once the master has reloaded since `master` was read; None before."""
        try:
            now = self.procs()
        except OSError:
            return None
        m = next((p for p in now if p.kind == "master"), None)
        if m and m.failed > master.failed:
            raise ApplyFailed("HAProxy refused the new configuration (reload failed)")
        if m and m.reloads > master.reloads:
            newest = [p for p in now if p.kind == "worker" and p.reloads == 0]
            if newest:
                return newest[0].pid
        return None


def nginx_reload(conf: Path, prefix: str | None = None, binary: str = "nginx", timeout: float = 10.0) -> None:
    """`nginx -s reload` for the nginx that runs `conf`, returning once it serves the new config.
    nginx reloads after the command has returned: its master reads the config, starts new workers and
    tells the old ones to finish, so this waits for a worker the master did not have before (none
    comes when the master cannot apply the config, a port another process holds for one: a failure),
    then up to a second for the old workers to go. Waits only when the master's pid file (the
    config's `pid`) and its children in /proc can be read."""
    master = _nginx_master(Path(conf), prefix)
    before = _children(master) if master else None
    argv = [binary, "-s", "reload", *(["-p", prefix] if prefix else []), "-c", str(conf)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise ApplyFailed(f"nginx -s reload: {tail}")
    if master is None or not before:
        return
    pid, old = master, before
    started = time.monotonic()
    try:
        wait_until(lambda: (_children(pid) or old) - old, timeout, 0.01, "a new nginx worker")
    except TimedOut:
        raise ApplyFailed(f"nginx (pid {master}) started no worker on the new config in {timeout:g}s: "
                          "see its error log") from None
    left = max(0.0, min(1.0, started + timeout - time.monotonic()))
    with suppress(TimedOut):  # up to a second more (within the timeout) for the old workers to go
        wait_until(lambda: not (_children(pid) or set()) & old, left, 0.01, "the old nginx workers")


_PID_DIRECTIVE = re.compile(r"^\s*pid\s+([^;\s]+)\s*;", re.MULTILINE)


def _nginx_master(conf: Path, prefix: str | None) -> int | None:
    """The pid of the nginx master that runs `conf`, from the pid file its `pid` directive names
    (relative to `prefix`); None when that cannot be told."""
    try:
        found = _PID_DIRECTIVE.search(conf.read_text())
        pid_file = Path(found.group(1) if found else "/run/nginx.pid")  # Debian's built-in default
        if not pid_file.is_absolute():
            if prefix is None:
                return None
            pid_file = Path(prefix) / pid_file
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def _children(pid: int) -> set[int] | None:
    """The pids of a process's children (Linux's /proc), or None when they cannot be read."""
    try:
        return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except (OSError, ValueError):
        return None


def run_exec(command: str, timeout: float = 30.0) -> None:
    """Run an `--exec` command through the shell; a non-zero exit is a failure."""
    result = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise ApplyFailed(f"--exec {command!r}: {tail}")
