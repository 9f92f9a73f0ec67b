"""Reading the small text files the operator names (config, web config, `*_file` secrets).

A path may name a FIFO (a read blocks until someone writes, and a reload hung, and then
the shutdown waiting for it), a device (`/dev/zero` never ends: a `MemoryError`), or a
file far larger than any config. Each is refused with an `OSError` whose `strerror` says
why, as a file that cannot be read is.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

# Far above any real one: 2,000 accounts take about 400 KB of config.
MAX_CONFIG_FILE_BYTES = 16 * 1024 * 1024
# A key, a password or an auth code, with room for a certificate-sized secret.
MAX_SECRET_FILE_BYTES = 64 * 1024


def require_regular(path: str | Path) -> None:
    """Raise `OSError` unless `path` is a regular file (for files another library reads:
    `ssl` reading a FIFO would wait for a writer)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, f"not a regular file: {path}")


def read_text(path: str | Path, max_bytes: int) -> str:
    """The UTF-8 text of the regular file at `path`, at most `max_bytes` long; raises
    `OSError` otherwise (and `UnicodeDecodeError` for bytes that are not UTF-8)."""
    # Non-blocking: opening a FIFO for reading waits for a writer otherwise.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise OSError(errno.EFBIG, f"larger than {max_bytes:,} bytes")
    return data.decode("utf-8")
