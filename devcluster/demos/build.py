"""The build step of `make demo`, against a running dev cluster (`WHARF_STATE_DIR`).

`examples/service` becomes the code repository of /web: a bare repository with `wharf build hook
install`, whose config repository is the one the apps step pushed. A webhook receiver on loopback,
started here, gets the demo's notifications and prints each as it arrives. One code push builds the
image, pushes it to the dev cluster's registry, and writes its tag to `web.image` in
`values/dev.yaml` as a config commit, whose own hooks deploy /web; the registrator registers the new
tasks, the renderer routes them, and the new page is read through HAProxy by its virtual host. A
second push, whose Dockerfile fails, changes nothing: its one line reaches the pusher and the team.

    python -m devcluster.demos.build --config-repo CONFIG.git
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from devcluster.cluster import Cluster
from devcluster.webhook import Received, receiving
from wharf.errors import TimedOut
from wharf.wait import wait_until

APP_ID, SERVICE = "/web", Path(__file__).resolve().parents[2] / "examples" / "service"
SECONDS = 120.0


def _git(*args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = True) -> str:
    done = subprocess.run(["git", "-c", "user.name=demo", "-c", "user.email=demo@localhost", *args], cwd=cwd,
                          env=env, text=True, capture_output=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"demo-build: git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip() + done.stderr.strip()


def _wait(predicate: Any, what: str) -> Any:
    try:
        return wait_until(predicate, SECONDS, 0.2, what)
    except TimedOut as exc:
        raise SystemExit(f"demo-build: {exc.message}") from None


def _told(item: Any) -> None:
    """Print one notification's text as the receiver got it: what the team's chat room would show."""
    _path, _type, body = item
    print(f"  [webhook] {body.get('text', '')}", flush=True)


def _page(http: str, vhost: str) -> str:
    try:
        return requests.get(f"http://{http}/", headers={"Host": vhost, "Connection": "close"}, timeout=2).text.strip()
    except requests.RequestException as exc:
        return f"({exc})"


def _code_repository(root: Path, env: dict[str, str], config: Path) -> Path:
    """examples/service as a work tree whose origin is a bare repository with the build hook."""
    shutil.rmtree(root, ignore_errors=True)
    bare, work = root / "code.git", root / "work"
    root.mkdir(parents=True)
    _git("init", "-q", "--bare", "-b", "main", str(bare), cwd=root)
    shutil.copytree(SERVICE, work)
    _git("init", "-q", "-b", "main", cwd=work)
    _git("remote", "add", "origin", str(bare), cwd=work)
    argv = ["build", "hook", "install", str(bare), "--config-repo", str(config), "--app", APP_ID, "--env", "dev"]
    print(f"$ wharf {' '.join(argv)}", flush=True)
    subprocess.run([sys.executable, "-m", "wharf", *argv], env=env, check=True)
    return work


def _push(work: Path, env: dict[str, str], message: str) -> float:
    """Commit everything and push it, showing what the hooks say; the seconds `git push` took."""
    _git("add", "-A", cwd=work)
    _git("commit", "-q", "-m", message, cwd=work)
    print(f"$ git commit -m {message!r} && git push origin main", flush=True)
    started = time.monotonic()
    subprocess.run(["git", "push", "-q", "origin", "main"], cwd=work, env=env, check=False)
    return time.monotonic() - started


def _arrived(received: Received, count: int) -> None:
    _wait(lambda: len(received.items) >= count, f"{count} notifications at the webhook receiver")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the build step of make demo")
    parser.add_argument("--config-repo", required=True, type=Path, help="the bare config repository of demo-apps")
    args = parser.parse_args(argv)
    state_dir = Path(os.environ.get("WHARF_STATE_DIR") or ".wharf/dev")
    cluster = Cluster(state_dir)
    if not cluster.running():
        raise SystemExit("demo-build: no dev cluster running (run make demo)")
    config = args.config_repo.resolve()
    env = {**os.environ, **cluster.env()}
    http, vhost = env["WHARF_HAPROXY_HTTP"], "web.shop.localhost"
    work = _code_repository(state_dir / "build-demo", env, config)
    with receiving(on_message=_told) as (url, received):
        print(f"# notifications go to a webhook receiver on {url} (WHARF_NOTIFY_WEBHOOK)", flush=True)
        pushing = {**env, "WHARF_NOTIFY_WEBHOOK": url}
        before = _git("rev-parse", "main", cwd=config)
        took = _push(work, pushing, "web: the page's first words")
        image = f"{env['WHARF_REGISTRY']}/web:{_git('rev-parse', '--short=7', 'HEAD', cwd=work)}"
        print(f"# git push returned after {took:.1f}s; the config repository's newest commit:", flush=True)
        print("  " + _git("log", "-1", "--format=%h %an: %s", "main", cwd=config), flush=True)
        if _git("rev-parse", "main", cwd=config) == before:
            raise SystemExit("demo-build: the build wrote nothing back to the config repository")
        print(f"$ curl -H 'Host: {vhost}' http://{http}/", flush=True)
        page = _wait(lambda: (p := _page(http, vhost)).startswith("web, built from a code push") and p,
                     "HAProxy to serve the new page")
        print(f"  {page}", flush=True)
        _arrived(received, 2)  # the build's and the deploy's
        print(f"# {APP_ID} runs {image}; `wharf apps rollback {APP_ID}` brings back the image before", flush=True)

        print("# a Dockerfile that fails to build: nothing changes, and the team is told", flush=True)
        dockerfile = work / "Dockerfile"
        dockerfile.write_text(dockerfile.read_text() + "RUN echo 'a broken step' && exit 3\n")
        head = _git("rev-parse", "main", cwd=config)
        _push(work, pushing, "web: a broken build")
        _arrived(received, 3)
        if _git("rev-parse", "main", cwd=config) != head:
            raise SystemExit("demo-build: a failed build changed the config repository")
        print(f"# the config repository is still at {head[:7]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
