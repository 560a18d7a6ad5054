"""The image of a code commit: its name, its build on the Docker engine, its push to the registry.

    image_name("127.0.0.1:5000", "/shop/web", "abc1234def...")  # -> 127.0.0.1:5000/shop/web:abc1234

The engine is the one `--docker-host` or `DOCKER_HOST` names (Docker's default socket otherwise), through the `docker`
package. A failed build or push is a `Failure` of one line with Docker's own message.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from wharf.contracts.marathon_model import parse_app_id
from wharf.errors import BadInput, Failure, reaching
from wharf.zk import host_port

__all__ = ["COMMIT", "build_image", "docker_client", "image_name", "one_line", "parse_registry", "push_failure",
           "push_image"]

#: a git commit id as given on the command line (abbreviated or whole)
COMMIT = re.compile(r"[0-9a-f]{7,40}")
SHORT = 7
#: words of Docker's push errors that say the registry could not be reached at all
_UNREACHED = ("connection refused", "dial tcp", "no such host", "i/o timeout", "connection reset",
              "server gave http response to https client", "no route to host")


def parse_registry(text: str) -> str:
    """A registry address, `host:port` (`127.0.0.1:5000`); BadInput otherwise."""
    try:
        return host_port(text.strip().removeprefix("http://").rstrip("/"))
    except ValueError as exc:
        raise BadInput(f"--registry: {exc} (the registry's host:port, e.g. 127.0.0.1:5000)") from None


def image_name(registry: str, app_id: str, commit: str) -> str:
    """`<registry>/<app path without its leading slash>:<short commit>`."""
    if not COMMIT.fullmatch(commit):
        raise BadInput(f"--commit: {commit!r} is not a git commit id (7 to 40 hex digits)")
    return f"{parse_registry(registry)}/{parse_app_id(app_id).lstrip('/')}:{commit[:SHORT]}"


def one_line(text: str) -> str:
    """Docker's message on one line: blanks and newlines collapsed."""
    return " ".join(str(text).split())


def docker_client(host: str | None = None, timeout: float = 600) -> tuple[Any, str]:
    """A `docker.DockerClient` for `host`, else `DOCKER_HOST` (else Docker's default), checked with a
    ping, and its address; `Unreachable` (naming it and what to check) when the engine does not answer."""
    import docker

    address = host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    with reaching("the Docker engine", address):
        client = docker.DockerClient(base_url=host, timeout=int(timeout)) if host else docker.from_env(
            timeout=int(timeout))
        client.ping()
    return client, address


def build_image(client: Any, directory: Path, tag: str) -> str:
    """`docker build -t tag directory` (no pull: base images are the engine's or the registry's);
    returns the image id. `Failure("build failed: <Docker's message>")` when it does not build."""
    import docker.errors

    if not (directory / "Dockerfile").is_file():
        raise BadInput(f"{directory / 'Dockerfile'}: no such file (wharf build needs a Dockerfile at the top "
                       "of the code tree)")
    last = ""
    try:
        for chunk in client.api.build(path=str(directory), tag=tag, rm=True, forcerm=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                raise Failure(f"build failed: {one_line(chunk.get('error') or detail.get('message') or chunk)}")
            last = str(chunk.get("stream") or last)
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:  # an APIError too: first
        raise Failure(f"build failed: the engine has no {tag} after the build ({one_line(last)})") from None
    except docker.errors.APIError as err:
        raise Failure(f"build failed: {one_line(err.explanation or err)}") from None


def push_failure(registry: str, message: str) -> Failure:
    """A push error as one line: Docker's message, and for a registry not reached, what to check."""
    text = one_line(message)
    if any(word in text.lower() for word in _UNREACHED):
        return Failure(f"push failed: cannot reach the registry at {registry}: {text}; is it running there? "
                       "Check WHARF_REGISTRY or --registry")
    return Failure(f"push failed: {text}")


def push_image(client: Any, tag: str) -> None:
    """`docker push tag`, its progress stream checked for errors (the call itself succeeds)."""
    import docker.errors

    repository, _, version = tag.rpartition(":")
    registry = repository.split("/", 1)[0]
    try:
        for chunk in client.api.push(repository, tag=version, stream=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail") or {}
                raise push_failure(registry, chunk.get("error") or detail.get("message") or str(chunk))
    except docker.errors.APIError as err:
        raise push_failure(registry, str(err.explanation or err)) from None
