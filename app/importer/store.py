"""The managed file store: <root>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm, written atomically.

Imported files are copied here so the database never points at a USB stick or a CD that is gone
tomorrow. A file appears under its final name only once it is complete (temp file + rename), so a
crash or a cancel never leaves a half-written instance that looks valid.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

_SAFE_UID = re.compile(r"^[0-9][0-9.]{0,63}$")
_CHUNK = 1 << 20


def safe_component(uid: str) -> str:
    """A UID as a file name; anything that is not a plain UID (could hold '/' or '..') is hashed."""
    if _SAFE_UID.match(uid) and ".." not in uid:
        return uid
    return "x" + hashlib.sha1(uid.encode("utf-8", "surrogateescape")).hexdigest()


def relative_path(study_uid: str, series_uid: str, sop_uid: str) -> str:
    return "/".join((safe_component(study_uid), safe_component(series_uid), safe_component(sop_uid) + ".dcm"))


class ManagedStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def absolute(self, relative: str) -> Path:
        return self.root.joinpath(*relative.split("/"))

    def copy_in(self, source: Path, relative: str) -> tuple[int, str]:
        """Copy `source` to its place in the store; returns (size, sha256)."""
        digest = hashlib.sha256()
        size = 0
        with self._atomic(relative) as out, open(source, "rb") as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def write_dataset(self, ds: Dataset, relative: str) -> tuple[int, str]:
        """Write a dataset (from a network peer, or a file without meta) as a standard Part 10 file."""
        _ensure_file_meta(ds)
        with self._atomic(relative) as out:
            ds.save_as(out, enforce_file_format=True)
        return _hash_file(self.absolute(relative))

    def _atomic(self, relative: str) -> _AtomicFile:
        return _AtomicFile(self.absolute(relative))


class _AtomicFile:
    """Context manager: a temp file beside the target, renamed over it only on success."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.target.parent, prefix=".incoming-", suffix=".part")
        self.fh = os.fdopen(fd, "wb")
        return self.fh

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        self.fh.close()
        if exc_type is None:
            os.replace(self.tmp, self.target)
        else:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _ensure_file_meta(ds: Dataset) -> None:
    """Give a dataset the file meta a Part 10 file needs, keeping its encoding."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, _little = getattr(ds, "original_encoding", (None, None))
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
