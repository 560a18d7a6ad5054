"""`wharf build`: a code commit becomes an image in the registry and a commit of the config repository.

    report = run_build(BuildRequest(Path("."), "/shop/web", "config.git", env="dev",
                                    registry="127.0.0.1:5000"), say=print)

Steps, each timed: `build` (the image, tagged `<registry>/<app path>:<short commit>`, on the Docker
engine), `push` (to the registry), `write-back` (the config repository's clone, the change, the
commit and the push, which runs the config repository's own hooks, so it lasts as long as their
deploy does), and with a KV prefix `kv` (the tag kept in Consul KV too, at `<kv>/images/<app path>`,
written only once the config repository holds it). The write-back rule, and Consul with `kv`, are
checked before anything is built, so bad input costs no build. A failed step raises `BuildFailed`:
one line naming the step, with the report so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.configgit import ConfigClone, WriteBackResult, code_commit
from builder.image import build_image, docker_client, image_name, push_image
from wharf.consul_http import address_of
from wharf.contracts.marathon_model import parse_app_id
from wharf.errors import Failure, WharfError, reaching
from wharf.kvprefix import prefix_of

__all__ = ["BuildFailed", "BuildReport", "BuildRequest", "StepTime", "image_key", "kv_prefix", "run_build"]

Say = Callable[[str], None]


@dataclass(frozen=True)
class BuildRequest:
    """What to build and where it goes: the code tree `directory`, the Marathon `app`, the `config`
    repository (a path or URL git can push to) and its `config_branch`, the environment whose values
    may hold the image, the `registry` (`host:port`), and the code `commit` when `directory` is no
    git work tree (a hook's exported tree), the Docker engine (`DOCKER_HOST` when None), and the
    Consul KV prefix `kv` that also keeps the tag (None: not kept there)."""

    directory: Path
    app: str
    config: str
    registry: str
    env: str | None = None
    config_branch: str = "main"
    commit: str | None = None
    docker_host: str | None = None
    kv: str | None = None


@dataclass(frozen=True)
class StepTime:
    """One step: its name, whether it went through, and how long it took."""

    step: str
    ok: bool
    seconds: float


@dataclass
class BuildReport:
    """What `--json` prints: the app, the image, both commits, and every step that ran."""

    app: str
    image: str = ""
    code_commit: str = ""
    config_commit: str | None = None
    kv_key: str | None = None
    steps: list[StepTime] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """`{"app", "image", "code_commit", "config_commit", "kv_key", "steps": [{"step", "ok", "seconds"}]}`."""
        return {"app": self.app, "image": self.image, "code_commit": self.code_commit,
                "config_commit": self.config_commit, "kv_key": self.kv_key,
                "steps": [{"step": s.step, "ok": s.ok, "seconds": round(s.seconds, 3)} for s in self.steps]}


class BuildFailed(WharfError):
    """A step failed: one line naming it and why, the exit code of its error (2 for bad input, else 1),
    and in `report` what ran until then."""

    def __init__(self, message: str, exit_code: int, report: BuildReport) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.report = report


def _failed(name: str | None, error: WharfError, report: BuildReport) -> BuildFailed:
    text = "; ".join(line.strip() for line in error.message.splitlines() if line.strip())
    if name and not text.startswith(f"{name} failed"):
        text = f"{name} failed: {text}"
    return BuildFailed(text, error.exit_code, report)


@contextmanager
def _step(report: BuildReport, name: str, spent: float = 0.0, record: bool = True) -> Iterator[None]:
    """Time one step into `report` (plus `spent` already on it; a success not recorded unless
    `record`); a failure is recorded and raised as BuildFailed naming the step."""
    start = time.monotonic()
    try:
        yield
    except WharfError as error:
        report.steps.append(StepTime(name, False, spent + time.monotonic() - start))
        raise _failed(name, error, report) from None
    if record:
        report.steps.append(StepTime(name, True, spent + time.monotonic() - start))


def kv_prefix(text: str) -> str:
    """`--kv`: a KV path without leading or trailing slashes."""
    return prefix_of(text, "--kv", "the prefix the image's key goes under")


def image_key(prefix: str, app_id: str) -> str:
    """The Consul KV key that keeps an app's image: `<prefix>/images/<app path>`."""
    return f"{kv_prefix(prefix)}/images/{app_id.strip('/')}"


def _preflight(request: BuildRequest, report: BuildReport) -> None:
    """Inputs checked before anything changes: the app id, the code commit, the image's name, the KV key."""
    try:
        report.app = parse_app_id(request.app)
        report.code_commit = request.commit or code_commit(request.directory)
        report.image = image_name(request.registry, report.app, report.code_commit)
        if request.kv is not None:
            report.kv_key = image_key(request.kv, report.app)
    except WharfError as error:
        raise _failed(None, error, report) from None


def _keep_in_kv(consul: Any, key: str, image: str | None = None) -> None:
    """Write `image` at `key` (with None: only read it, to learn that Consul answers)."""
    with reaching("Consul", address_of(consul)):
        if image is None:
            consul.kv.get(key)
        elif not consul.kv.put(key, image):
            raise Failure(f"Consul at {address_of(consul)}: refused to write {key}")


def run_build(request: BuildRequest, say: Say = lambda line: None, consul: Any = None) -> BuildReport:
    """Build, push and write back (see the module's docstring); BuildFailed names the failed step.
    `consul`: the py-consul client for `request.kv`."""
    report = BuildReport(request.app)
    _preflight(request, report)
    if report.kv_key is not None:
        with _step(report, "kv", record=False):  # Consul answers, before anything is built
            _keep_in_kv(consul, report.kv_key)
    with ExitStack() as stack:
        started = time.monotonic()
        with _step(report, "write-back", record=False):  # the rule, checked before anything is built
            clone = stack.enter_context(ConfigClone(request.config, request.config_branch))
            clone.plan(report.app, request.env, report.image)
        checked = time.monotonic() - started
        with _step(report, "build"):
            client, _ = docker_client(request.docker_host)
            build_image(client, request.directory, report.image)
        say(f"build: {report.image} from code commit {report.code_commit[:7]} ({report.steps[-1].seconds:.2f}s)")
        with _step(report, "push"):
            push_image(client, report.image)
        say(f"push: {report.image} ({report.steps[-1].seconds:.2f}s)")
        with _step(report, "write-back", checked):
            result: WriteBackResult = clone.write(report.app, request.env, report.image, report.code_commit, say)
    report.config_commit = result.commit
    where = result.change.where
    done = (f"{where} → {report.image}, config commit {result.commit[:7]}" if result.pushed
            else f"{where} holds {report.image} already; config commit {result.commit[:7]} unchanged")
    say(f"write-back: {done} ({report.steps[-1].seconds:.2f}s)")
    if report.kv_key is not None:
        try:
            with _step(report, "kv"):
                _keep_in_kv(consul, report.kv_key, report.image)
        except BuildFailed as failed:
            raise BuildFailed(f"{failed.message} (the config commit {result.commit[:7]} holds the image already)",
                              failed.exit_code, report) from None
        say(f"kv: {report.kv_key} = {report.image} ({report.steps[-1].seconds:.2f}s)")
    return report
