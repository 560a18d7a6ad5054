"""`wharf apps` hooks: time from `git push` to the first request Marathon sees, and to the push's end.

Starts the Mesos and Marathon stand-ins, a bare repository with wharf's hooks and a clone holding
three apps (command-only, one instance). Then N times: change one app's environment, commit, and
`git push`; the clock starts just before `git push` runs. The first request is taken from the
Marathon stand-in's request log (each line gives the request's duration, so its start is known).
Before it: git's own work, the pre-receive
hook (start, export the tree, render, validate) and the post-receive hook's start, export and
render. The push returns once post-receive has deployed (the deploy's output goes back to the pusher),
so "push returned" includes the whole deploy of the changed app.

    python bench/apps_push.py [--pushes 5]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devcluster.marathon.standin import MarathonStandin  # noqa: E402
from devcluster.mesos import MesosStandin  # noqa: E402

GOAL = 1.0
APP = "cmd: sleep 3600\ncpus: 0.01\nmem: 8\ninstances: 1\nenv: {{ROUND: '{round}'}}\n{after}"


class FirstRequest(logging.Handler):
    """Remembers when the first request after `arm()` reached the stand-in's HTTP server."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.guard = threading.Lock()
        self.first: float | None = None
        self.armed = 0.0

    def arm(self) -> None:
        with self.guard:
            self.first, self.armed = None, time.time()

    def emit(self, record: logging.LogRecord) -> None:
        # "%s %s %d %.1fms": method, path, status, elapsed
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) != 4:
            return
        started = record.created - float(args[3]) / 1000
        with self.guard:  # requests that began before arm() (the last push's event stream) do not count
            if started >= self.armed and (self.first is None or started < self.first):
                self.first = started


def git(*args: str, cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=5)
    parser.add_argument("--verbose", action="store_true", help="Print each push's output")
    args = parser.parse_args(argv)
    recorder = FirstRequest()
    http_log = logging.getLogger("wharf.devcluster.marathon.http")
    http_log.addHandler(recorder)
    http_log.setLevel(logging.DEBUG)
    http_log.propagate = False
    with tempfile.TemporaryDirectory(prefix="wharf-bench-") as tmp:
        state = Path(tmp)
        mesos = MesosStandin(state_dir=state / "mesos", heartbeat_interval=1.0).start()
        marathon = MarathonStandin(f"127.0.0.1:{mesos.port}").start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WHARF_", "MARATHON_", "GIT_"))}
        env.update(MARATHON_URL=marathon.url, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
                   GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")
        try:
            bare, work = state / "config.git", state / "work"
            git("init", "-q", "--bare", "-b", "main", str(bare), cwd=state, env=env)
            subprocess.run([sys.executable, "-m", "wharf", "apps", "hook", "install", str(bare)], env=env, check=True,
                           capture_output=True)
            git("init", "-q", "-b", "main", str(work), cwd=state, env=env)
            git("remote", "add", "origin", str(bare), cwd=work, env=env)
            (work / "apps").mkdir()
            to_first, to_end = [], []
            for n in range(args.pushes + 1):  # push 0 creates the apps; it is not counted
                (work / "apps" / "db.yaml").write_text(APP.format(round=0, after=""))
                (work / "apps" / "api.yaml").write_text(APP.format(round=0, after="after: [db]\n"))
                (work / "apps" / "web.yaml").write_text(APP.format(round=n, after="after: [api]\n"))
                git("add", "-A", cwd=work, env=env)
                git("commit", "-q", "-m", f"round {n}", cwd=work, env=env)
                recorder.arm()
                started = time.time()
                pushed = subprocess.run(["git", "push", "-q", "origin", "main"], cwd=work, env=env,
                                        capture_output=True, text=True)
                ended = time.time()
                if args.verbose:
                    print(pushed.stderr)
                if pushed.returncode != 0 or "remote: /web: deployed" not in pushed.stderr:
                    raise SystemExit(f"push {n} did not deploy /web:\n{pushed.stderr}")
                if n and recorder.first is not None:
                    to_first.append(recorder.first - started)
                    to_end.append(ended - started)
            startup = []
            for _ in range(5):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "wharf", "--version"], env=env, check=True, capture_output=True)
                startup.append(time.perf_counter() - t0)
        finally:
            marathon.stop()
            mesos.stop()
    print(f"{args.pushes} pushes, each changing one of three apps (load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores)")
    print(f"  git push started -> first Marathon request: median {statistics.median(to_first):.2f} s, "
          f"worst {max(to_first):.2f} s   goal <= {GOAL:g} s")
    print(f"  git push started -> push returned (deployed): median {statistics.median(to_end):.2f} s, "
          f"worst {max(to_end):.2f} s")
    print(f"  (each hook starts Python and wharf: `wharf --version` takes {statistics.median(startup):.2f} s here; "
          "the first request comes after two of those, pre-receive's and post-receive's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
