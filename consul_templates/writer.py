"""Write a rendered config only when its bytes change: temp file in the destination's directory,
validated by the real binary, permissions kept, previous file kept as `<dest>.bak`, then renamed
(`wharf.atomic.write_atomic` does the writing)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wharf.atomic import write_atomic
from wharf.errors import Failure

Validator = Callable[[Path], None]


class ValidationFailed(Failure):
    """The real binary refused the rendered file; `line` is the line it complained about, if said."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _first_error(output: str, marker: str, line_pattern: str) -> tuple[str, int | None]:
    lines = [ln.strip() for ln in output.splitlines() if marker in ln] or [ln.strip() for ln in
                                                                          output.splitlines() if ln.strip()]
    first = lines[0] if lines else "(no output)"
    found = re.search(line_pattern, first)
    return first, int(found.group(1)) if found else None


def haproxy_validator(binary: str = "haproxy") -> Validator:
    """`haproxy -c -f FILE`; a failure carries HAProxy's first alert and its line."""
    def validate(path: Path) -> None:
        result = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            first, line = _first_error(result.stderr + result.stdout, "ALERT", r":(\d+)\]")
            raise ValidationFailed(f"haproxy -c: {first}", line)
    return validate


def nginx_validator(prefix: str | None = None, binary: str = "nginx") -> Validator:
    """`nginx -t -c FILE` (with `-p PREFIX` if given); a failure carries nginx's first error and line."""
    def validate(path: Path) -> None:
        argv = [binary, "-t", "-q", *(["-p", prefix] if prefix else []), "-c", str(path)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            first, line = _first_error(result.stderr + result.stdout, "emerg", r":(\d+)\s*$")
            raise ValidationFailed(f"nginx -t: {first}", line)
    return validate


@dataclass(frozen=True)
class WriteResult:
    """What a write did."""

    path: Path
    changed: bool
    backup: Path | None = None


def write(dest: Path, text: str, validate: Validator | None = None, backup: bool = True) -> WriteResult:
    """Put `text` at `dest` if it differs, atomically; raise `ValidationFailed` and leave `dest` as it
    was when the validator refuses it."""
    data = text.encode()
    try:
        current = dest.read_bytes()
    except FileNotFoundError:
        current = None
    if current == data:
        return WriteResult(dest, False)
    # the previous file itself is kept as <dest>.bak, as consul-template keeps it
    kept = dest.with_name(dest.name + ".bak") if backup and current is not None else None
    write_atomic(dest, data, None if current is not None else 0o644, check=validate, backup=kept)
    return WriteResult(dest, True, kept)


def check(text: str, directory: Path, name: str, validate: Validator | None) -> None:
    """Validate `text` as a file named like `name` in `directory`, writing nothing that stays."""
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".check")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode())
        if validate is not None:
            validate(tmp)
    finally:
        tmp.unlink(missing_ok=True)
