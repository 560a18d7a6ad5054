"""What every dev-cluster service declares: its files, command line, health probe and endpoints."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from devcluster.process import unmount_below
from wharf.errors import Failure


class DevService(ABC):
    """One real program the dev cluster runs, living in its own directory under the state dir."""

    name: ClassVar[str]
    #: the port names it needs, as `wharf dev up` flags (e.g. "--zk-port")
    port_flags: ClassVar[tuple[str, ...]] = ()
    #: programs that must be installed (Debian packages, installed by `make bootstrap`)
    binaries: ClassVar[tuple[str, ...]] = ()
    #: services that must be healthy before this one starts
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, directory: Path, ports: dict[str, int], options: Mapping[str, Any] | None = None) -> None:
        self.dir = directory
        self.ports = ports
        #: `wharf dev up` choices beyond ports (e.g. {"consul_acl": True}), kept in cluster.json
        self.choices: Mapping[str, Any] = options or {}
        self.log_path = directory / f"{self.name}.log"

    def check_installed(self) -> None:
        """Fail with a clear line if a program this service needs is missing."""
        for binary in self.binaries:
            if not (shutil.which(binary) or Path(binary).exists()):
                raise Failure(f"{self.name}: {binary} is not installed (run `make bootstrap`)")

    @abstractmethod
    def prepare(self) -> None:
        """Write the service's configuration and data directories."""

    @abstractmethod
    def argv(self) -> list[str]:
        """The command line that runs the service in the foreground."""

    @abstractmethod
    def probe(self) -> None:
        """Raise unless the service answers as it should when healthy; quick, no retries."""

    @abstractmethod
    def endpoints(self) -> dict[str, Any]:
        """Addresses a client needs (shown by `wharf dev status`)."""

    @abstractmethod
    def env(self) -> dict[str, str]:
        """Environment variables that point clients at this service (printed by `wharf dev env`)."""

    def child_env(self) -> dict[str, str] | None:
        """The environment the process starts with; None: the caller's."""
        return None

    def after_start(self) -> None:
        """Work to do once the service is healthy (the Docker engine builds its base image)."""

    def scratch_dirs(self) -> list[Path]:
        """Directories outside `dir` that the service uses; unmounted and removed after it stops."""
        return []

    def clean_up(self) -> None:
        """After the process stopped: unmount what it left mounted and remove its scratch dirs."""
        unmount_below(self.dir)
        for scratch in self.scratch_dirs():
            unmount_below(scratch)
            shutil.rmtree(scratch, ignore_errors=True)
