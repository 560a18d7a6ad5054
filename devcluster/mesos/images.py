"""Images for the agents' containers: pulled as Mesos's Docker containerizer pulls them.

The containerizer runs ``docker pull`` when ``DockerInfo.force_pull_image`` is set or the image is
not on the engine, and fails the task with Docker's message when the pull fails. The dev cluster
reaches no outside registry, so it pulls only from registries on this machine's loopback
addresses; an image of any other registry must be on the engine already (built or loaded).
"""

from __future__ import annotations

from typing import Any

from devcluster.mesos.docker_run import LaunchError
from wharf.consul_http import is_loopback

DEFAULT_REGISTRY = "docker.io"


def registry_of(image: str) -> str:
    """The registry an image reference names (``docker.io`` when its first part is no host)."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return DEFAULT_REGISTRY


def on_loopback(registry: str) -> bool:
    """Whether ``registry`` (``host[:port]``) is on a loopback address of this machine."""
    host = registry[1:registry.find("]")] if registry.startswith("[") else registry.rsplit(":", 1)[0]
    return is_loopback(host)


def ensure_image(client: Any, image: str, force: bool) -> None:
    """Pull ``image`` when forced or missing, as the containerizer does; LaunchError when it cannot."""
    import docker.errors

    if not force:
        try:
            client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
    registry = registry_of(image)
    if not on_loopback(registry):
        missing = "" if force else " is not on the Docker engine and"
        raise LaunchError(f"image {image}{missing} cannot be pulled: its registry {registry} is not on this "
                          "machine (the dev cluster's agents pull only from registries on loopback addresses; "
                          "build or load the image first)")
    pull(client, image)


def pull(client: Any, image: str) -> None:
    """``docker pull image``; LaunchError with the daemon's message (as ``docker pull`` prints it)."""
    import docker.errors
    import docker.utils

    repository, tag = docker.utils.parse_repository_tag(image)
    try:
        for line in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if line.get("error"):
                raise _failed(image, str(line["error"]))
    except docker.errors.APIError as err:
        raise _failed(image, str(err.explanation or err)) from None


def _failed(image: str, message: str) -> LaunchError:
    return LaunchError(f"Failed to run 'docker pull {image}': exited with status 1; "
                       f"stderr='Error response from daemon: {message}'")
