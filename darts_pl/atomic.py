"""Files written atomically, with the permissions the user's umask gives.

A file is written to a temporary file in its own directory, flushed to disk, then renamed over its
final name. A kill at any moment leaves the old file or the new one, never a truncated one: the rename
happens within one filesystem (a temporary file elsewhere, e.g. in ``$TMPDIR``, would turn the rename
into a copy that truncates the destination first). Temporary files are created with mode 0600; they
get the mode an ordinary ``open`` would give (``0666 & ~umask``) before the rename.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def file_mode() -> int:
    """``0666 & ~umask``: the mode ``open(path, "w")`` gives a new file."""
    try:  # Linux: read without changing it (os.umask is process-wide, so a set-and-restore races threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``.

    Args:
        path: The final file.
        mode: ``"wb"`` or ``"w"``.

    Raises:
        OSError: The directory cannot be created or written (the temporary file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
    return Path(path)
