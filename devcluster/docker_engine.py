"""Real Docker engine (Debian's docker.io) with its own roots and socket, and the local base image."""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from devcluster.service import DevService

BASE_IMAGE = "wharf/busybox:latest"
BUSYBOX = "/bin/busybox"
DOCKERFILE = b"""FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
"""


def busybox_context(busybox: str | None = None) -> bytes:
    """A build context (tar) for the base image: Debian's static busybox on an empty root."""
    path = busybox or shutil.which("busybox") or BUSYBOX
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(DOCKERFILE)
        tar.addfile(info, io.BytesIO(DOCKERFILE))
        tar.add(path, arcname="busybox")
    return buf.getvalue()


def build_base_image(client: Any, tag: str = BASE_IMAGE) -> str:
    """Build `tag` from busybox unless the engine has it already; returns the image id."""
    import docker.errors

    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        image, _logs = client.images.build(fileobj=io.BytesIO(busybox_context()), custom_context=True,
                                           tag=tag, rm=True)
        return str(image.id)


class DockerEngine(DevService):
    name = "docker"
    binaries = ("dockerd", "containerd", "runc", "busybox")

    @property
    def socket(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def exec_root(self) -> Path:
        """Kept short, outside the state dir: containerd refuses socket paths over 104 bytes."""
        digest = hashlib.sha1(str(self.dir.resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"wharf-docker-{digest}"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def client(self, timeout: float = 60) -> Any:
        """A `docker.DockerClient` for this engine."""
        import docker

        return docker.DockerClient(base_url=self.host, timeout=timeout)

    def prepare(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        self.exec_root.mkdir(parents=True, exist_ok=True)

    def argv(self) -> list[str]:
        return ["dockerd", "--data-root", str(self.dir / "data"), "--exec-root", str(self.exec_root),
                "-H", self.host, "--pidfile", str(self.dir / "dockerd.pid"),
                "--bridge=none", "--iptables=false", "--ip6tables=false"]

    def probe(self) -> None:
        if not self.socket.exists():
            raise RuntimeError("no socket yet")
        client = self.client(timeout=2)
        try:
            client.ping()
        finally:
            client.close()

    def after_start(self) -> None:
        client = self.client()
        try:
            build_base_image(client)
        finally:
            client.close()

    def scratch_dirs(self) -> list[Path]:
        return [self.exec_root]

    def clean_up(self) -> None:
        """Also delete the bridges of networks the engine was stopped under (dockerd leaves them)."""
        super().clean_up()
        from devcluster import bridge

        bridge.delete_devices(bridge.device_prefix(self.host))

    def endpoints(self) -> dict[str, Any]:
        return {"host": self.host, "image": BASE_IMAGE}

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host}
