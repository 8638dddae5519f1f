"""Files that leave the store through an export are private to the user who exported them.

Exports carry patient data to a folder the user picks (a home folder, a share, a USB stick). Written with
the process umask they were readable by every local account (0644); here every exported file is created
0600 and every folder an export creates 0700, from the first byte (no window in which the file exists
with wider rights; folders by app.paths.private_dir). A folder the user picked and that already exists keeps
its own rights: it is theirs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset

FILE_MODE = 0o600


@contextmanager
def private_file(path: Path) -> Iterator[BinaryIO]:
    """Open `path` for writing as a 0600 file (an existing file is truncated and narrowed to 0600 first);
    a symlink at `path` is refused rather than followed, so an export never writes through a planted link."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except OSError as exc:
        if path.is_symlink():
            raise OSError(exc.errno, f"refusing to write through a symbolic link: {path}") from exc
        raise
    try:
        os.fchmod(fd, FILE_MODE)
        fh = os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh


def write_private(path: Path, data: bytes | str) -> Path:
    """Write `data` (str as UTF-8) to `path` as a private file."""
    with private_file(path) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def save_dataset_private(ds: Dataset, path: Path) -> Path:
    """`ds.save_as` into a private file."""
    with private_file(path) as fh:
        ds.save_as(fh, enforce_file_format=True)
    return Path(path)


def copy_private(source: Path, target: Path) -> Path:
    """Copy `source`'s bytes (not its rights: store files from older versions may be 0644) into a private
    `target`, keeping its modification time."""
    with open(source, "rb") as src, private_file(target) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    st = os.stat(source)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    return Path(target)
