"""marathon-lb, live, beside wharf: its daemon and its own HAProxy, run as its container runs them.

`MlbLab(directory, marathon_url)` starts the real, unmodified marathon-lb (from `mlb_side.MLB_SRC`, in
the venv `mlb_side.ensure_venv()` makes) the way its image's `run` script does for zero-downtime use:

    marathon_lb.py --syslog-socket /dev/null --haproxy-config <dir>/haproxy.cfg --ssl-certs <dir>/cert.pem
                   --command "<reload>" --sse --health-check --group external

and its own HAProxy as `service/haproxy/run` does: `haproxy -W -f haproxy.cfg -x <stats socket>`
(master-worker, the listening sockets handed to each new worker through the stats socket, `expose-fd
listeners`). The reload is the container's: `reload_haproxy.sh` saves `show servers state` into the
server-state file the config loads (`load-server-state-from-file global`), then `sv reload` sends the
supervised master SIGHUP, which re-executes it and starts a new worker while the old one finishes its
connections. Here a small stdlib script written into `<dir>` does those two steps (socat is not
needed); the master's pid comes from this process, which started it (as runit knows its child).

Every bind is on 127.0.0.1 or a Unix socket, through marathon-lb's documented way to override its
global templates: files named after them in `templates/` of its working directory (`config.py`'s
`ConfigTemplater`). Each file is marathon-lb's own default template (read from its `config.py` in its
venv) with only these rewritten: the stats listener (`0.0.0.0:9090`), `marathon_http_in` (`*:80`),
`marathon_https_in` (`*:443`, a self-signed certificate made as `run` makes one) and
`marathon_http_appid_in` (`*:9091`) on free 127.0.0.1 ports; each app's service-port frontend
(`{bindAddr}:{servicePort}`) on a Unix socket under `<dir>/frontends/`, since wharf's HAProxy holds
127.0.0.1:<service port> already; the stats socket, the server-state base and the `lua-load` paths
from `/var/run/haproxy`, `/var/state/haproxy` and `/marathon-lb` to `<dir>` and its source; and,
only where the open-files hard limit is under the 100k its `maxconn 50000` needs, that maxconn,
lowered to fit (HAProxy refuses to start otherwise). Apps reach it with `HAPROXY_GROUP=external`.

Known differences from its image: Debian's HAProxy instead of the 2.0 it builds; several HAProxies
share this PID namespace, so its wait for a new pid after a reload (`pidof haproxy`) may end early
when wharf's HAProxy reloads at the same moment (its README's caveat); it also copies each config to
/tmp/hap_cfg.N, as it always does. `http_port` is its vhost frontend; `serving(prefix)` counts the
servers up in its HAProxy; `reloads()` counts its "reloading using" log lines.
"""

from __future__ import annotations

import json
import resource
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlb_side import MLB_SRC, _local_env, _shown, available, ensure_venv  # noqa: E402

from devcluster.process import Proc, claim_ports, spawn, stop  # noqa: E402
from wharf.haproxy import send, servers_state  # noqa: E402
from wharf.wait import wait_until  # noqa: E402

GROUP = "external"
#: what HAProxy needs in open files per connection (HAProxy asks 2 × maxconn + a few for its own)
FILES_PER_CONN = 2
#: marathon-lb's global maxconn in its HEAD template
MLB_MAXCONN = 50000

#: what marathon-lb logs when its reload command fails
FIRST_RELOAD_FAILED = "unable to reload config"

#: marathon-lb's default templates, as its own config.py builds them (run in its venv)
DEFAULTS = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from config import ConfigTemplater
print(json.dumps({t.full_name: t.default_value for t in ConfigTemplater(directory=sys.argv[2]).t.values()}))
"""

#: the container's reload (reload_haproxy.sh, then `sv reload`): argv = stats socket, state file, master pid file
RELOAD = r'''"""marathon-lb's reload_haproxy.sh + `sv reload haproxy`: servers' state saved, the master sent SIGHUP."""
import os, signal, socket, sys

stats, state, pid_file = sys.argv[1:4]
try:  # socat <stats socket> - <<< "show servers state" > <state file>
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(5)
        conn.connect(stats)
        conn.sendall(b"show servers state\n")
        answer = b"".join(iter(lambda: conn.recv(65536), b""))
    with open(state, "wb") as out:
        out.write(answer)
except OSError as exc:  # the script goes on when socat fails too
    print(f"servers state not saved: {exc}", file=sys.stderr)
try:
    pid = int(open(pid_file).read())
except (OSError, ValueError):
    sys.exit("haproxy is not running yet: nothing to reload")
os.kill(pid, signal.SIGHUP)
'''


def maxconn_fitting() -> int | None:
    """The global maxconn HAProxy can have under this machine's open-files hard limit, or None when
    marathon-lb's own (50000) fits."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY or hard >= FILES_PER_CONN * MLB_MAXCONN + 1000:
        return None
    return (hard - 1000) // FILES_PER_CONN


def live_available() -> str | None:
    """None when marathon-lb can run live here (`mlb_side.available()`, HAProxy, openssl), else why not."""
    missing = [tool for tool in ("haproxy", "openssl") if not shutil.which(tool)]
    return available() or (f"no {' or '.join(missing)} here" if missing else None)


@dataclass
class MlbLab:
    """marathon-lb's daemon and its own HAProxy against `marathon_url`, files and logs under `directory`."""

    directory: Path
    marathon_url: str
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory = self.directory.resolve()
        self.ports = claim_ports({name: None for name in ("http", "https", "appid", "stats")})
        self.rewritten: list[str] = []  # the templates written to templates/

    @property
    def http_port(self) -> int:
        """Its `marathon_http_in` frontend: routes by Host header (`HAPROXY_{n}_VHOST`)."""
        return self.ports["http"]

    @property
    def config(self) -> Path:
        return self.directory / "haproxy.cfg"

    @property
    def admin_socket(self) -> Path:
        return self.directory / "haproxy.sock"

    @property
    def pid_file(self) -> Path:
        return self.directory / "haproxy.pid"

    def _rewrites(self) -> list[tuple[str, str]]:
        """(marathon-lb's text, this lab's) for every bind and path its templates hold."""
        d, p = self.directory, self.ports
        pairs = [
            ("bind 0.0.0.0:9090\n", f"bind 127.0.0.1:{p['stats']}\n"),
            ("bind *:80\n", f"bind 127.0.0.1:{p['http']}\n"),
            ("bind *:443", f"bind 127.0.0.1:{p['https']}"),
            ("bind *:9091\n", f"bind 127.0.0.1:{p['appid']}\n"),
            ("bind {bindAddr}:{servicePort}", f"bind unix@{d}/frontends/{{servicePort}}.sock"),
            ("/var/run/haproxy/socket", str(self.admin_socket)),
            ("/var/state/haproxy/", f"{d}/state/"),
            ("lua-load /marathon-lb/", f"lua-load {MLB_SRC.resolve()}/"),
        ]
        fitting = maxconn_fitting()
        if fitting is not None:
            pairs.append((f"maxconn {MLB_MAXCONN}\n", f"maxconn {fitting}\n"))
        return pairs

    def _write_templates(self, python: Path) -> None:
        """templates/HAPROXY_*: marathon-lb's defaults with this lab's binds and paths, the changed ones only."""
        for where in (str(self.directory), str(MLB_SRC.resolve())):
            if any(c in where for c in "{} \t"):
                raise RuntimeError(f"{where}: a path with braces or blanks cannot go into HAProxy templates")
        empty = self.directory / "no-templates"
        empty.mkdir(exist_ok=True)
        done = subprocess.run([str(python), "-c", DEFAULTS, str(MLB_SRC), str(empty)], capture_output=True,
                              text=True, env=_local_env(), cwd=self.directory)
        if done.returncode != 0:
            raise RuntimeError(f"marathon-lb's templates not read:\n{done.stderr[-2000:]}")
        templates = self.directory / "templates"
        templates.mkdir(exist_ok=True)
        for name, text in json.loads(done.stdout).items():
            new = text
            for old, ours in self._rewrites():
                new = new.replace(old, ours)
            if new != text:
                (templates / name).write_text(new)
                self.rewritten.append(name)

    def _prepare(self, python: Path) -> None:
        """Its directories, templates, certificate and reload script."""
        for sub in ("frontends", "state"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self._write_templates(python)
        cert = self.directory / "cert.pem"
        if not cert.exists():  # as marathon-lb's `run` does when no certificate is given
            key = self.directory / "key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=*",
                            "-days", "3650", "-keyout", str(key), "-out", str(cert)], check=True,
                           capture_output=True)
            cert.write_text(cert.read_text() + key.read_text())
        (self.directory / "reload.py").write_text(RELOAD)

    def reload_command(self) -> str:
        """marathon-lb's `--command`: the container's reload, with this lab's files."""
        return shlex.join([sys.executable, "-I", "-S", str(self.directory / "reload.py"), str(self.admin_socket),
                           str(self.directory / "state" / "global"), str(self.pid_file)])

    def daemon_argv(self, python: Path) -> list[str]:
        """marathon_lb.py's command line, as the image's `run` writes it for `sse --health-check --group external`."""
        return [str(python), str(MLB_SRC / "marathon_lb.py"), "--syslog-socket", "/dev/null",
                "--haproxy-config", str(self.config), "--ssl-certs", str(self.directory / "cert.pem"),
                "--command", self.reload_command(), "--sse", "--health-check", "--group", GROUP,
                "--marathon", self.marathon_url]

    def start_daemon(self) -> None:
        """marathon_lb.py (again, after `stop_daemon`), logging to marathon-lb.log."""
        self.procs["marathon-lb"] = spawn(self.daemon_argv(ensure_venv()), self.directory / "marathon-lb.log",
                                          cwd=self.directory, env=_local_env())

    def stop_daemon(self) -> None:
        stop(self.procs.pop("marathon-lb"))

    def __enter__(self) -> MlbLab:
        """marathon_lb.py first (it writes the config), then its HAProxy from that config."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._prepare(ensure_venv())
        try:
            self.start_daemon()
            daemon = self.procs["marathon-lb"]
            # its first config, and its first reload done (failed: no HAProxy yet, as under runit at start)
            wait_until(lambda: FIRST_RELOAD_FAILED in self.log() or not daemon.alive(), 60, 0.1,
                       "marathon-lb's first config")
            if not daemon.alive():
                raise RuntimeError(f"marathon_lb.py exited:\n{self.log()[-2000:]}")
            self.check_binds()
            self.procs["haproxy"] = spawn(["haproxy", "-W", "-f", str(self.config), "-x", str(self.admin_socket)],
                                          self.directory / "haproxy.log", cwd=self.directory)
            wait_until(self._answers, 30, 0.1, "marathon-lb's HAProxy")
            self.pid_file.write_text(str(self.procs["haproxy"].pid))  # its SIGHUP handler is in place by now
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for name in ("marathon-lb", "haproxy"):
            if name in self.procs:
                stop(self.procs.pop(name))
        self.pid_file.unlink(missing_ok=True)

    def _answers(self) -> bool:
        """Whether its HAProxy answers on the stats socket (fails if it exited)."""
        proc = self.procs["haproxy"]
        if not proc.alive():
            raise RuntimeError(f"marathon-lb's HAProxy exited:\n{self.log('haproxy')[-2000:]}")
        try:
            return "Name: HAProxy" in send(self.admin_socket, "show info", 2.0)
        except OSError:
            return False

    def check_binds(self) -> None:
        """Fail unless every `bind` of the config marathon-lb wrote is on 127.0.0.1 or a Unix socket."""
        wrong = [line.strip() for line in self.config.read_text().splitlines()
                 if line.split()[:1] == ["bind"] and not line.split()[1].startswith(("127.0.0.1:", "unix@"))]
        if wrong:
            raise RuntimeError(f"marathon-lb's config binds beyond loopback: {wrong}")

    def serving(self, backend_prefix: str) -> int:
        """How many servers of the backends named `backend_prefix*` its HAProxy has up in rotation."""
        try:
            state = servers_state(send(self.admin_socket, "show servers state"))
        except OSError:
            return 0
        return sum(1 for (backend, _), server in state.items() if backend.startswith(backend_prefix) and server.up)

    def reloads(self) -> int:
        """HAProxy reloads marathon-lb asked for so far (its `reloading using` log lines)."""
        return self.log().count("reloading using")

    def describe(self) -> str:
        """One line: where marathon-lb came from and what its templates were changed in."""
        fitting = maxconn_fitting()
        limit = ("" if fitting is None else f"; its maxconn {MLB_MAXCONN} lowered to {fitting} for the open-files "
                 f"hard limit {resource.getrlimit(resource.RLIMIT_NOFILE)[1]}")
        return (f"marathon-lb from {_shown(MLB_SRC)} (unmodified), "
                f"templates/ overriding {', '.join(n.removeprefix('HAPROXY_') for n in self.rewritten)}: binds on "
                f"127.0.0.1 (vhost frontend :{self.http_port}) and Unix sockets (service ports), paths{limit}")

    def log(self, name: str = "marathon-lb") -> str:
        """The text of `name`.log (marathon-lb's or haproxy's)."""
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

