"""One way to replace a file: whole or not at all, even across a crash."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (where the file system allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename is still atomic
    finally:
        os.close(fd)


def _temp_beside(path: Path, perms: int) -> tuple[int, Path]:
    """A new file next to `path`, named `.<name>.<random>.tmp`, open for writing."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, perms), tmp
        except FileExistsError:
            continue


def write_atomic(path: str | Path, data: bytes | str, mode: int | None = None, *,
                 check: Callable[[Path], None] | None = None, backup: Path | None = None) -> None:
    """Put `data` at `path` whole or not at all: a temp file in the same directory is written,
    flushed and fsynced, given `mode` (else the existing file's mode and owner, else what a new file
    gets under the umask), passed to `check` (which raises to give up), then renamed over `path`
    and the directory fsynced. With `backup`, the file replaced stays there (a hard link). On any
    failure `path` is as it was and the temp file is gone."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        old: os.stat_result | None = path.stat()
    except FileNotFoundError:
        old = None
    wanted = mode if mode is not None else None if old is None else old.st_mode & 0o7777
    fd, tmp = _temp_beside(path, 0o666 if wanted is None else 0o600)  # 0o666: the umask applies
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
            out.flush()
            os.fsync(out.fileno())
        if wanted is not None:
            os.chmod(tmp, wanted)
        if mode is None and old is not None:
            try:
                os.chown(tmp, old.st_uid, old.st_gid)
            except PermissionError:
                pass  # not ours to give away; the mode is kept all the same
        if check is not None:
            check(tmp)
        if backup is not None and old is not None:
            link = backup.with_name(f".{backup.name}.tmp")
            link.unlink(missing_ok=True)
            os.link(path, link)
            os.replace(link, backup)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
