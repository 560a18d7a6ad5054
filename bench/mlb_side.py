"""marathon-lb's half of the side-by-side render benchmark: the real, unmodified marathon-lb, in a venv of
its own, against a fake Marathon on 127.0.0.1 answering with generated apps. Two figures per size:
  regeneration  what its daemon does on each change, part by part in one process: `Marathon.list()` (HTTP
                fetch + JSON parse), `get_apps()`, `config()`, called as `regenerate_config` calls them with
                what marathon_lb.py's own parser makes of its default flags. First pass in a fresh process:
                cold; the passes after it: warm. Not timed: imports, the templater, writing the file.
  dry process   the whole `marathon_lb.py --dry` process: interpreter start, imports, fetch, render, print.

The project's python needs only the stdlib here. `<repo>/.bench/mlb-venv` holds marathon-lb's requirements,
made with this python (the interpreter wharf runs on) or the one env MLB_PYTHON names. marathon-lb pins
PyJWT==1.4.0, which imports `collections.Mapping` (gone since Python 3.10): on such a python the venv gets a
one-line .pth putting that alias back; marathon-lb and its packages stay unmodified.

    python bench/mlb_side.py [--sizes 50,1000,5000] [--warm 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MLB_SRC: Path = Path(os.environ.get("MARATHON_LB_SRC") or REPO.parent / "shared" / "anchors" / "marathon-lb")
VENV = REPO / ".bench" / "mlb-venv"
VENV_PY = VENV / "bin" / "python"
MARKER = VENV / ".requirements.sha256"
COMPAT_PTH = "mlb_side_collections_compat.pth"
#: executed by site.py at start-up: the alias Python 3.10 removed and PyJWT 1.4.0 imports
COMPAT_LINE = "import collections.abc; collections.Mapping = collections.abc.Mapping\n"
APT_PACKAGES = ("libcurl4-openssl-dev", "libssl-dev")  # pycurl builds against these
GROUP = "external"
PARTS = ("list", "get_apps", "config")


def _shown(path: Path) -> str:
    """`path` relative to the repo when it is beside it, for messages."""
    return os.path.relpath(path, REPO)


def _base_python() -> str:
    """The interpreter the mlb venv is made with: env MLB_PYTHON, else the one running this module."""
    named = os.environ.get("MLB_PYTHON")
    return (shutil.which(named) or named) if named else sys.executable


def _requirements_hash() -> str:
    """Keys the venv: marathon-lb's requirements.txt and the interpreter it was made with."""
    digest = hashlib.sha256((MLB_SRC / "requirements.txt").read_bytes())
    digest.update(os.path.realpath(_base_python()).encode())
    return digest.hexdigest()


def _venv_ready() -> bool:
    try:
        return VENV_PY.exists() and MARKER.read_text().strip() == _requirements_hash()
    except OSError:
        return False


def available() -> str | None:
    """None when marathon-lb's source is there and its venv exists or can be made, else a one-line reason."""
    if not (MLB_SRC / "marathon_lb.py").is_file():
        return f"no marathon-lb source at {_shown(MLB_SRC)}"
    if not (MLB_SRC / "requirements.txt").is_file():
        return f"no requirements.txt in {_shown(MLB_SRC)}"
    if os.environ.get("MLB_PYTHON") and not shutil.which(os.environ["MLB_PYTHON"]):
        return f"MLB_PYTHON={os.environ['MLB_PYTHON']} is not an interpreter found here"
    if _venv_ready():
        return None
    if _base_python() == sys.executable and importlib.util.find_spec("ensurepip") is None:
        return "this python cannot make a venv with pip (no ensurepip; apt-get install python3-venv)"
    if not shutil.which("curl-config") and not (shutil.which("apt-get") and os.geteuid() == 0):
        return "pycurl needs libcurl4-openssl-dev and libssl-dev, and they cannot be installed here (no root apt-get)"
    return None


def _ensure_gitignore() -> None:
    ignore = REPO / ".gitignore"
    text = ignore.read_text() if ignore.exists() else ""
    if ".bench/" not in text.splitlines():
        ignore.write_text(text + ("\n" if text and not text.endswith("\n") else "") + ".bench/\n")


def _ensure_apt_packages() -> None:
    missing = [p for p in APT_PACKAGES
               if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)


def ensure_venv() -> Path:
    """Make (once) `<repo>/.bench/mlb-venv` with marathon-lb's requirements.txt installed; return its python."""
    reason = available()
    if reason:
        raise RuntimeError(reason)
    _ensure_gitignore()
    if _venv_ready():
        return VENV_PY
    _ensure_apt_packages()
    subprocess.run([_base_python(), "-m", "venv", "--clear", str(VENV)], check=True)
    python = str(VENV_PY)
    site = subprocess.run([python, "-c", "import sys, sysconfig; print(sys.version_info >= (3, 10), "
                           "sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True)
    needs_compat, purelib = site.stdout.split(maxsplit=1)
    if needs_compat == "True":
        Path(purelib.strip(), COMPAT_PTH).write_text(COMPAT_LINE)
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    done = subprocess.run([*pip, "-r", str(MLB_SRC / "requirements.txt")], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip install of marathon-lb's requirements failed:\n{done.stderr[-2000:]}")
    MARKER.write_text(_requirements_hash() + "\n")
    return VENV_PY


def _agent_ip(k: int) -> str:
    return f"10.0.{k // 250}.{k % 250 + 1}"


def _task(s: int, i: int, agent: int, version: str) -> dict:
    """One running, healthy task of app `s` as Marathon 1.x embeds it in /v2/apps?embed=apps.tasks."""
    task_id = f"team_app{s}.{s:08x}-{i:04x}-11f0-8000-0242ac110002"
    return {
        "id": task_id, "appId": f"/team/app{s}", "host": _agent_ip(agent), "state": "TASK_RUNNING",
        "slaveId": f"5b1a3d9e-7c42-4f0e-9a61-2f3c8d7e1b00-S{agent}",
        "ipAddresses": [{"ipAddress": f"172.17.{i}.{s % 250 + 2}", "protocol": "IPv4"}],
        "ports": [31000 + s % 900], "servicePorts": [10000 + s],
        "stagedAt": "2026-11-30T09:14:00.112Z", "startedAt": "2026-11-30T09:14:03.845Z", "version": version,
        "localVolumes": [],
        "healthCheckResults": [{
            "alive": True, "consecutiveFailures": 0, "firstSuccess": "2026-11-30T09:14:09.311Z",
            "lastFailure": None, "lastSuccess": "2026-12-01T08:00:00.000Z", "lastFailureCause": None,
            "taskId": task_id}],
    }


def _app(s: int, nodes: int) -> dict:
    """App `s`: a Docker BRIDGE app with one port mapping, HTTP health check, 3 tasks, as Marathon 1.x lists it."""
    version = "2026-11-30T09:13:58.020Z"
    service_port = 10000 + s
    return {
        "id": f"/team/app{s}", "cmd": None, "args": None, "user": None, "env": {}, "instances": 3,
        "cpus": 0.1, "mem": 128.0, "disk": 0.0, "gpus": 0, "executor": "", "constraints": [], "uris": [],
        "fetch": [], "storeUrls": [], "backoffSeconds": 1, "backoffFactor": 1.15, "maxLaunchDelaySeconds": 3600,
        "container": {"type": "DOCKER", "volumes": [], "docker": {
            "image": "nginx:1.25", "network": "BRIDGE", "privileged": False, "parameters": [],
            "forcePullImage": False,
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "servicePort": service_port,
                              "protocol": "tcp", "name": "http", "labels": {}}]}},
        "healthChecks": [{"path": "/", "protocol": "HTTP", "portIndex": 0, "gracePeriodSeconds": 300,
                          "intervalSeconds": 60, "timeoutSeconds": 20, "maxConsecutiveFailures": 3,
                          "ignoreHttp1xx": False}],
        "readinessChecks": [], "dependencies": [],
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
        "labels": {"HAPROXY_GROUP": GROUP, "HAPROXY_0_VHOST": f"app{s}.example.com"},
        "acceptedResourceRoles": None, "ipAddress": None, "residency": None, "secrets": {},
        "taskKillGracePeriodSeconds": None, "version": version,
        "versionInfo": {"lastScalingAt": version, "lastConfigChangeAt": version},
        "ports": [service_port], "portDefinitions": [{"port": service_port, "protocol": "tcp", "labels": {}}],
        "requirePorts": False,
        "tasksStaged": 0, "tasksRunning": 3, "tasksHealthy": 3, "tasksUnhealthy": 0, "deployments": [],
        "tasks": [_task(s, i, (3 * s + i) % nodes, version) for i in range(3)],
    }


@functools.lru_cache(maxsize=4)
def apps_json(n_apps: int, nodes: int = 3) -> bytes:
    """Marathon 1.x's answer to GET /v2/apps?embed=apps.tasks for `n_apps` apps x 3 tasks over `nodes` agents."""
    return json.dumps({"apps": [_app(s, nodes) for s in range(n_apps)]}, separators=(",", ":")).encode()


class FakeMarathon:
    """Marathon's HTTP API, just enough of it, on 127.0.0.1 and a free port, in a thread: `with FakeMarathon(body)`."""

    def __init__(self, apps: bytes):
        self.apps = apps
        self.requests: list[str] = []  # "GET /path?query", in order, for checking what marathon-lb asked
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def _answer(self, path: str) -> tuple[int, bytes]:
        route = path.split("?", 1)[0].rstrip("/")
        if route == "/v2/apps":
            return 200, self.apps
        if route == "/v2/info":
            return 200, json.dumps({"name": "marathon", "version": "1.4.11", "elected": True,
                                    "leader": self.url.split("//", 1)[1], "frameworkId": "fake-0000"}).encode()
        if route == "/v2/leader":
            return 200, json.dumps({"leader": self.url.split("//", 1)[1]}).encode()
        if route == "/ping":
            return 200, b"pong"
        return 404, json.dumps({"message": f"no route {route} in the fake Marathon"}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                fake.requests.append(f"GET {self.path}")
                status, body = fake._answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def __enter__(self) -> FakeMarathon:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def _mlb_args(url: str, workdir: str) -> list[str]:
    """marathon_lb.py's flags for one run against `url`: defaults, except no syslog and a config path in `workdir`."""
    return ["--marathon", url, "--group", GROUP, "--haproxy-config", os.path.join(workdir, "haproxy.cfg"),
            "--syslog-socket", "/dev/null"]


def _local_env() -> dict[str, str]:
    """marathon-lb's environment: no proxies (its requests go straight to 127.0.0.1), and its .pyc files
    written (as in its image) but under .bench/, not in its source tree."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               PYTHONPYCACHEPREFIX=str(VENV.parent / "pycache"))
    return env


#: run in the mlb venv: argv = MLB_SRC, warm passes, then marathon_lb.py's flags. Prints one JSON line.
DRIVER = r"""
import json, sys, time
src, warm, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
sys.path.insert(0, src)
import marathon_lb as mlb
from common import get_marathon_auth_params, setup_logging
from config import ConfigTemplater
from lrucache import LRUCache
from utils import ip_cache

# the set-up marathon_lb.py's __main__ does before regenerating, from its own parser's view of argv
args = mlb.args = mlb.get_arg_parser().parse_args(argv)
mlb.SERVICE_PORT_ASSIGNER.set_ports(args.min_serv_port_ip_per_task, args.max_serv_port_ip_per_task)
setup_logging(mlb.logger, args.syslog_socket, args.log_format, args.log_level)
ip_cache.set(LRUCache(args.lru_cache_capacity))
marathon = mlb.Marathon(args.marathon, args.health_check, args.strict_mode,
                        get_marathon_auth_params(args), args.marathon_ca_cert)
templater = ConfigTemplater()  # the daemon makes one at start and keeps it


def timed(row, part, fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    row[part] = (time.perf_counter() - wall) * 1e3
    row["cpu_total"] += (time.process_time() - cpu) * 1e3
    return out


def one_pass():
    row = {"cpu_total": 0.0}
    domain_map_array, app_map_array = [], []  # fresh per pass, as in regenerate_config
    raw = timed(row, "list", marathon.list)
    apps = timed(row, "get_apps", lambda: mlb.get_apps(marathon, raw))
    text = timed(row, "config", lambda: mlb.config(
        apps, args.group, not args.dont_bind_http_https, args.ssl_certs, templater, args.haproxy_map,
        domain_map_array, app_map_array, args.haproxy_config, args.group_https_by_vhost))
    row["total"] = row["list"] + row["get_apps"] + row["config"]
    return row, sum(1 for line in text.splitlines() if line.startswith("backend "))


cold, backends = one_pass()
warm_rows = [one_pass()[0] for _ in range(warm)]
print(json.dumps({"cold": cold, "warm": warm_rows, "backends": backends}))
"""


def regeneration(n_apps: int, warm: int = 5) -> dict:
    """marathon-lb's daemon regeneration (list, get_apps, config) in a fresh process: a cold pass, then `warm`.

    Returns {"cold": {part: ms, "total": ms, "cpu_total": ms}, "warm": [same, ...], "backends": count}.
    """
    python = ensure_venv()
    with FakeMarathon(apps_json(n_apps)) as fake, tempfile.TemporaryDirectory(prefix="mlb-side-") as tmp:
        cmd = [str(python), "-c", DRIVER, str(MLB_SRC), str(warm), *_mlb_args(fake.url, tmp)]
        with open(os.path.join(tmp, "stderr.log"), "w+") as err:
            done = subprocess.run(cmd, cwd=tmp, env=_local_env(), stdout=subprocess.PIPE, stderr=err, text=True)
            err.seek(0)
            if done.returncode != 0:
                raise RuntimeError(f"marathon-lb driver failed ({done.returncode}):\n{err.read()[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["backends"] != n_apps:
        raise RuntimeError(f"marathon-lb generated {result['backends']} backends for {n_apps} apps")
    return result


def dry_process(n_apps: int, repeats: int = 3) -> list[float]:
    """Wall seconds of whole `marathon_lb.py --dry` processes against a fake Marathon with `n_apps` apps."""
    python = ensure_venv()
    times = []
    with FakeMarathon(apps_json(n_apps)) as fake, tempfile.TemporaryDirectory(prefix="mlb-side-") as tmp:
        cmd = [str(python), str(MLB_SRC / "marathon_lb.py"), "--dry", *_mlb_args(fake.url, tmp)]
        for _ in range(repeats):
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=tmp, env=_local_env(), capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise RuntimeError(f"marathon_lb.py --dry exited {done.returncode}:\n{done.stderr[-2000:]}")
            backends = sum(1 for line in done.stdout.splitlines() if line.startswith("backend "))
            if backends != n_apps:
                raise RuntimeError(f"marathon_lb.py --dry printed {backends} backends for {n_apps} apps")
        if os.path.exists(os.path.join(tmp, "haproxy.cfg")):
            raise RuntimeError("marathon_lb.py --dry wrote its config file")
    return times


def _spread(values: list[float], fmt: str) -> str:
    """`median (min-max)` of `values`."""
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def _row(n: int, regen: dict, dry: list[float]) -> str:
    cold, warm = regen["cold"], regen["warm"]
    cells = [f"{n:>6}", f"{regen['backends']:>8}", " "]
    cells += [f"{cold[p]:>8.1f}" for p in (*PARTS, "total", "cpu_total")] + [" "]
    cells += [f"{statistics.median(w[p] for w in warm):>8.1f}" for p in PARTS]
    cells += [f"{_spread([w['total'] for w in warm], '.1f'):>23}",
              f"{statistics.median(w['cpu_total'] for w in warm):>8.1f}", " ", f"{_spread(dry, '.2f'):>18}"]
    return " ".join(cells)


def _header(warm: int, repeats: int) -> list[str]:
    columns = (f"{'apps':>6} {'backends':>8}   " + " ".join(f"{c:>8}" for c in (*PARTS, "total", "cpu")) + "   "
               + " ".join(f"{c:>8}" for c in PARTS) + f" {'total (min-max)':>23} {'cpu':>8}   {'median (min-max)':>18}")
    groups = f"{'':18}{' cold pass, ms ':-^44}   {f' {warm} warm passes, ms, median ':-^59}   {' dry process, s ':-^18}"
    return [
        "regeneration: marathon-lb's Marathon.list() (HTTP fetch from a fake Marathon on 127.0.0.1 + JSON parse),",
        "  get_apps() and config(), as regenerate_config calls them; ms wall (perf_counter) per part, cpu =",
        "  process_time of the whole pass. cold = first pass in a fresh process; warm = the passes after it.",
        f"dry process: whole `marathon_lb.py --dry` (start, imports, fetch, render, print), runs: {repeats}.",
        groups, columns,
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="50,1000,5000", help="app counts, comma-separated")
    parser.add_argument("--warm", type=int, default=5, help="warm regeneration passes after the cold one")
    parser.add_argument("--repeats", type=int, default=3, help="whole --dry processes per size")
    opts = parser.parse_args()
    reason = available()
    if reason:
        print(f"marathon-lb side skipped: {reason}")
        return 1
    python = ensure_venv()
    version = subprocess.run([str(python), "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    compat = " + a collections.Mapping alias .pth for PyJWT 1.4.0" if list(VENV.glob(f"lib/*/*/{COMPAT_PTH}")) else ""
    print(f"marathon-lb from {_shown(MLB_SRC)} (unmodified), python {version} in {_shown(VENV)}{compat}; "
          f"{os.cpu_count()} CPUs, load average {load} at start")
    print(f"apps: /team/app{{s}}, 3 healthy TASK_RUNNING tasks each on 3 agents, Docker BRIDGE, 1 port, "
          f"HAPROXY_GROUP={GROUP} + HAPROXY_0_VHOST; marathon-lb flags: {' '.join(_mlb_args('URL', 'TMP'))}")
    print("\n".join(_header(opts.warm, opts.repeats)))
    for n in (int(s) for s in opts.sizes.split(",") if s.strip()):
        print(_row(n, regeneration(n, opts.warm), dry_process(n, opts.repeats)), flush=True)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
