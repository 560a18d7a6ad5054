"""`make bootstrap` fetches Consul 1.8.7 with apt into the project's own folder, touching no system file."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from devcluster.consul import consul_binary
from devcluster.fetch_consul import VERSION, installed_version

FETCHER = Path(__file__).resolve().parents[2] / "devcluster" / "fetch_consul.py"
SYSTEM_APT = (Path("/etc/apt"), Path("/var/lib/apt"), Path("/var/cache/apt"))


def _snapshot() -> dict[str, str]:
    """Every file under apt's system directories with a digest of its content (or link target)."""
    seen = {}
    for root in SYSTEM_APT:
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_symlink():
                seen[str(path)] = "-> " + str(path.readlink())
            elif path.is_file():
                try:
                    seen[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                except PermissionError:
                    seen[str(path)] = "unreadable"
            else:
                seen[str(path)] = "dir"
    return seen


def test_the_bootstrapped_consul_is_1_8_7() -> None:
    assert installed_version(Path(consul_binary())) == VERSION


def test_fetching_into_a_fresh_folder_changes_nothing_of_the_systems_apt(tmp_path: Path) -> None:
    before = _snapshot()
    result = subprocess.run([sys.executable, str(FETCHER), str(tmp_path / "venv")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert installed_version(tmp_path / "venv" / "bin" / "consul") == VERSION
    after = _snapshot()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == []
    again = subprocess.run([sys.executable, str(FETCHER), str(tmp_path / "venv")],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and again.stdout == "", "a second run must be a no-op"
