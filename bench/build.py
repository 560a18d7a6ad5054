"""From a code push to the new version serving through HAProxy (goal: 15 s), with each step's share.

A dev cluster of its own (its registry, Docker engine, Consul, the Marathon and Mesos stand-ins), and
beside it HAProxy with `wharf registrator run` and `wharf render run` (`devcluster.lab.Lab`). A code
repository with `wharf build`'s hook builds a busybox image with one page; a config repository with
`wharf apps`'s hooks holds the app's spec (its image read from `values/dev.yaml`, `forcePullImage`
so the agent pulls it from the registry, routed by a virtual host). Each run commits a new page and
pushes it; timed from just before `git push` until HAProxy answers with the new page by the virtual
host. Parts: build, push and write-back (the config push, whose hooks deploy until healthy) as
`wharf build` reports them; `git push` returning; then until HAProxy serves the new page (0 when the
registrator and the renderer were done before the deploy was). The first run is cold
(nothing pulled, the app created); the rest are warm (a rolling update).

    python bench/build.py [--runs 4]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devcluster.cluster import Cluster  # noqa: E402
from devcluster.lab import Lab, Systems  # noqa: E402
from wharf.wait import wait_until  # noqa: E402

GROUP, VHOST = "bench", "build.bench.test"
SPEC = f"""image: "{{{{ web.image }}}}"
cmd: "exec httpd -f -p $HOST:$PORT0 -h /www"
instances: 1
cpus: 0.05
mem: 16
ports: [{{name: http}}]
health: {{http: /, grace: 20, interval: 1, timeout: 2, failures: 5}}
lb: {{vhost: {VHOST}, mode: http}}
container:
  docker:
    forcePullImage: true
"""
DOCKERFILE = "FROM wharf/busybox:latest\nCOPY index.html /www/index.html\n"


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    full = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost", **(env or {})}
    done = subprocess.run(["git", *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout + done.stderr


def wharf(*args: str, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "wharf", *args], env=env, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise SystemExit(f"wharf {' '.join(args)}: {done.stderr.strip()}")


def repositories(tmp: Path, env: dict[str, str]) -> Path:
    """The config and code repositories with their hooks; the code work tree."""
    config, code = tmp / "config", tmp / "code"
    for name in ("config", "code"):
        git("init", "-q", "--bare", "-b", "main", str(tmp / f"{name}.git"), cwd=tmp)
        git("init", "-q", "-b", "main", str(tmp / name), cwd=tmp)
        git("remote", "add", "origin", str(tmp / f"{name}.git"), cwd=tmp / name)
    (config / "apps" / GROUP).mkdir(parents=True)
    (config / "apps" / GROUP / "web.yaml").write_text(SPEC)
    (config / "values").mkdir()
    (config / "values" / "dev.yaml").write_text("web:\n  image: none/yet:0\n")
    git("add", "-A", cwd=config)
    git("commit", "-q", "-m", "web", cwd=config)
    git("push", "-q", "origin", "main", cwd=config)
    wharf("apps", "hook", "install", str(tmp / "config.git"), "--env", "dev", env=env)
    wharf("build", "hook", "install", str(tmp / "code.git"), "--config-repo", str(tmp / "config.git"),
          "--app", f"/{GROUP}/web", "--env", "dev", env=env)
    (code / "Dockerfile").write_text(DOCKERFILE)
    return code


def serving(http_port: int) -> str:
    try:
        return requests.get(f"http://127.0.0.1:{http_port}/", headers={"Host": VHOST}, timeout=2).text.strip()
    except requests.RequestException:
        return ""


def one_push(code: Path, env: dict[str, str], http_port: int, page: str) -> dict[str, float]:
    (code / "index.html").write_text(page + "\n")
    git("add", "-A", cwd=code)
    git("commit", "-q", "-m", page, cwd=code)
    started = time.monotonic()
    said = git("push", "origin", "main", cwd=code, env=env)
    returned = time.monotonic() - started
    wait_until(lambda: serving(http_port) == page, 120, 0.02, "the new page through HAProxy")
    total = time.monotonic() - started
    steps = {name: float(s) for name, s in re.findall(r"remote: (build|push|write-back): .*\(([\d.]+)s\)", said)}
    if set(steps) != {"build", "push", "write-back"}:
        raise SystemExit(f"the push did not build, push and write back:\n{said}")
    return {**steps, "push returned": returned, "then routed": total - returned, "total": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-build-") as folder:
        tmp = Path(folder)
        cluster = Cluster(tmp / "cluster")
        cluster.up()
        try:
            env = {**os.environ, **cluster.env()}
            systems = Systems(env["CONSUL_HTTP_ADDR"], env["MARATHON_URL"], env["DOCKER_HOST"],
                              env.get("CONSUL_HTTP_TOKEN"))
            with Lab(tmp / "lab", systems) as lab:
                code = repositories(tmp, env)
                runs = [one_push(code, env, lab.http_port, f"version {n}") for n in range(args.runs)]
        finally:
            cluster.down(purge=True)
    names = list(runs[0])
    print("code push -> new version serving through HAProxy (this machine; seconds):")
    print(f"  {'run':10}" + "".join(f"{n:>15}" for n in names))
    for n, run in enumerate(runs):
        print(f"  {'cold' if n == 0 else f'warm {n}':10}" + "".join(f"{run[k]:>15.2f}" for k in names))
    warm = runs[1:] or runs
    print(f"  {'warm p50':10}" + "".join(f"{statistics.median(r[k] for r in warm):>15.2f}" for k in names))
    print("build, push, write-back: as `wharf build` reports them; write-back includes the config push's hooks,")
    print("which deploy until healthy; push returned: `git push` of the code; then routed: until HAProxy serves it")


if __name__ == "__main__":
    main()
