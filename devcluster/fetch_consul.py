"""Fetch Debian 11's `consul` package with apt itself, into the project's own folder.

Bookworm dropped Consul; bullseye ships 1.8.7 as a static binary. This asks apt for it through a
private configuration (its own sources file, lists and cache under DEST/apt) whose one source is
the machine's own Debian mirror and keyring with suite `bullseye`, then unpacks the package with
`dpkg-deb -x` and links DEST/bin/consul. Nothing outside DEST is written; a second run is a no-op.

    python3 devcluster/fetch_consul.py DEST        # DEST is the virtualenv, e.g. .venv

Standard library only: it runs before the virtualenv has anything in it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SUITE, COMPONENT, PACKAGE, VERSION = "bullseye", "main", "consul", "1.8.7"
DEB822_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
ONE_LINE_SOURCES = Path("/etc/apt/sources.list")


@dataclass(frozen=True)
class Mirror:
    """A Debian archive the machine already uses: its URI and the keyring that signs it."""

    uri: str
    keyring: str | None

    def source_line(self, suite: str = SUITE, component: str = COMPONENT) -> str:
        """The one `sources.list` line of the private configuration."""
        options = f" [signed-by={self.keyring}]" if self.keyring else ""
        return f"deb{options} {self.uri} {suite} {component}\n"


def _is_main_archive(uri: str, suites: list[str]) -> bool:
    """The main archive, not security, updates-only or backports sources."""
    return "security" not in uri and any(re.fullmatch(r"[a-z]+", s) for s in suites)


def mirror_from_deb822(text: str) -> Mirror | None:
    """The main Debian archive named in a deb822 `.sources` file, or None."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        uris = fields.get("uris", "").split()
        if "deb" in fields.get("types", "").split() and uris and fields.get("enabled", "yes") != "no" \
                and _is_main_archive(uris[0], fields.get("suites", "").split()):
            return Mirror(uris[0], fields.get("signed-by") or None)
    return None


def mirror_from_one_line(text: str) -> Mirror | None:
    """The main Debian archive named in a one-line-style `sources.list`, or None."""
    for line in text.splitlines():
        match = re.match(r"\s*deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)", line)
        if match and _is_main_archive(match["uri"], [match["suite"]]):
            opts = dict(o.split("=", 1) for o in (match["opts"] or "").split() if "=" in o)
            return Mirror(match["uri"], opts.get("signed-by"))
    return None


def machine_mirror() -> Mirror:
    """The machine's own Debian mirror; SystemExit with one line if none is configured."""
    for path, parse in ((DEB822_SOURCES, mirror_from_deb822), (ONE_LINE_SOURCES, mirror_from_one_line)):
        if path.exists() and (mirror := parse(path.read_text())):
            return mirror
    raise SystemExit(f"consul: no Debian archive found in {DEB822_SOURCES} or {ONE_LINE_SOURCES}")


def installed_version(binary: Path) -> str | None:
    """The version `consul version` prints (e.g. "1.8.7"), or None if it does not run."""
    try:
        out = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return None
    match = re.search(r"Consul v(\S+)", out)
    return match.group(1) if match else None


def _apt(apt_dir: Path, *args: str, cwd: Path | None = None) -> None:
    options = [
        f"Dir::Etc::SourceList={apt_dir / 'sources.list'}", "Dir::Etc::SourceParts=/dev/null",
        f"Dir::State::Lists={apt_dir / 'lists'}", f"Dir::Cache={apt_dir / 'cache'}",
        "APT::Sandbox::User=root",
    ]
    argv = ["apt-get", "-q", *(a for o in options for a in ("-o", o)), *args]
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [ln for ln in (result.stderr + result.stdout).splitlines() if ln.startswith(("E:", "Err"))]
        raise SystemExit(f"consul: apt-get {args[0]} failed: {(errors or ['exit ' + str(result.returncode)])[0]}")


def fetch(dest: Path, mirror: Mirror) -> Path:
    """Download and unpack the package under `dest` (absolute); return the linked `dest/bin/consul`."""
    apt_dir = dest / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "debs"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.list").write_text(mirror.source_line())
    _apt(apt_dir, "update")
    debs = apt_dir / "debs"
    for old in debs.glob("*.deb"):
        old.unlink()
    _apt(apt_dir, "download", PACKAGE, cwd=debs)
    deb = next(debs.glob(f"{PACKAGE}_*.deb"))
    root = dest / "consul-root"
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    link = dest / "bin" / PACKAGE
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(Path("..") / "consul-root" / "usr" / "bin" / PACKAGE)
    return link


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="folder to install into (its bin/consul is linked)")
    args = parser.parse_args(argv)
    dest = args.dest.resolve()  # apt reads relative Dir:: paths against its own directories
    binary = dest / "bin" / PACKAGE
    if installed_version(binary) == VERSION:
        return 0
    fetch(dest, machine_mirror())
    version = installed_version(binary)
    if version != VERSION:
        raise SystemExit(f"consul: {binary} reports version {version}, expected {VERSION}")
    print(f"consul: {VERSION} installed at {binary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
