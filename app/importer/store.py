"""The managed file store: <root>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm, owner-only, never overwritten.

Imported files are copied here so the database never points at a USB stick or a CD that is gone
tomorrow. Writing happens in two steps, both outside any database transaction:
  * stage: the bytes go to a private file in `<root>/.staging` (0600), hashed while written;
  * place: the staged file takes its final name only if that name is free (it is hard-linked there, which
    fails on an existing name; without hard links a placeholder is created exclusively and the file renamed
    over it), else a numbered name beside it. A file that is already stored is therefore never replaced,
    even by two importers racing on the same instance.
A file appears under its final name only once it is complete, so a crash never leaves a half-written
instance that looks valid; a crash between placing and committing leaves an unreferenced file, never a
row without its file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from app.paths import private_dir

if TYPE_CHECKING:
    from app.importer.probe import ProbedFile

_SAFE_UID = re.compile(r"^[0-9][0-9.]{0,63}$")
_CHUNK = 1 << 20
STAGING = ".staging"
STALE_STAGING_SECONDS = 24 * 3600


def safe_component(uid: str) -> str:
    """A UID as a file name; anything that is not a plain UID (could hold '/' or '..') is hashed."""
    if _SAFE_UID.match(uid) and ".." not in uid:
        return uid
    return "x" + hashlib.sha1(uid.encode("utf-8", "surrogateescape")).hexdigest()


def relative_path(study_uid: str, series_uid: str, sop_uid: str) -> str:
    return "/".join((safe_component(study_uid), safe_component(series_uid), safe_component(sop_uid) + ".dcm"))


@dataclass
class StagedFile:
    """Bytes written to the staging area, with their size and SHA-256 (of the whole file)."""

    path: Path
    size: int
    sha256: str
    # The validated header, when whoever received the bytes has already read it (a retrieve checks each
    # instance against its request before handing it over): the importer then does not read it again.
    probed: ProbedFile | None = field(default=None, compare=False, repr=False)

    def discard(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class HashingWriter:
    """A private staging file that hashes and counts what is written, and can refuse to grow past a limit."""

    def __init__(self, staging: Path, max_bytes: int | None = None) -> None:
        fd, name = tempfile.mkstemp(dir=staging, prefix="in-", suffix=".part")  # 0600
        self.path = Path(name)
        self._fh: BinaryIO = os.fdopen(fd, "wb", buffering=_CHUNK)
        self._digest = hashlib.sha256()
        self.size = 0
        self.max_bytes = max_bytes
        self.overflow = False  # more than max_bytes arrived: the rest was dropped, the file is useless

    def write(self, data: bytes | bytearray | memoryview) -> int:
        n = len(data)
        if self.overflow:
            self.size += n
            return n
        if self.max_bytes is not None and self.size + n > self.max_bytes:
            self.overflow = True
            self.size += n
            self._fh.truncate(0)
            return n
        self._fh.write(data)
        self._digest.update(data)
        self.size += n
        return n

    def finish(self) -> StagedFile:
        """Close the file; the staged result (call `discard` on it if it is not placed)."""
        self._fh.close()
        return StagedFile(self.path, self.size, self._digest.hexdigest())

    def abandon(self) -> None:
        try:
            self._fh.close()
        finally:
            self.path.unlink(missing_ok=True)


class ManagedStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def staging(self) -> Path:
        return private_dir(self.root / STAGING)

    def absolute(self, relative: str) -> Path:
        return self.root.joinpath(*relative.split("/"))

    # -- staging ---------------------------------------------------------------------------------------
    def writer(self, max_bytes: int | None = None) -> HashingWriter:
        return HashingWriter(self.staging, max_bytes)

    def stage_copy(self, source: Path) -> StagedFile:
        """Copy `source` into staging, hashing on the way."""
        out = self.writer()
        try:
            with open(source, "rb") as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
        except BaseException:
            out.abandon()
            raise
        return out.finish()

    def stage_dataset(self, ds: Dataset) -> StagedFile:
        """Encode a dataset (from a peer that handed over a decoded one, or a file without meta) as Part 10."""
        _ensure_file_meta(ds)
        fd, name = tempfile.mkstemp(dir=self.staging, prefix="in-", suffix=".part")  # 0600
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                ds.save_as(fh, enforce_file_format=True)  # pydicom seeks back while writing: hash after
            size, sha = _hash_file(path)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return StagedFile(path, size, sha)

    def clean_staging(self, older_than: float = STALE_STAGING_SECONDS) -> int:
        """Remove staging files left by a crash (older than `older_than` seconds); returns how many."""
        removed = 0
        cutoff = time.time() - older_than
        try:
            entries = list(os.scandir(self.root / STAGING))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        return removed

    # -- placing ---------------------------------------------------------------------------------------
    def place(self, staged: StagedFile, relative: str) -> str:
        """Give a staged file its final name (a numbered one if `relative` is taken); returns the name used.

        Never replaces an existing file: the staged file is hard-linked under the name (which fails when
        the name exists) and its staging name removed. Where the file system has no hard links, a
        placeholder is created exclusively and the file renamed over it. The link also spares ext4 the
        write-out it starts when a file is renamed over another (auto_da_alloc), which cost the importing
        thread 0.5-1.0 ms of CPU per 512 KiB instance (issue 27); the bytes are written back as any other.
        """
        parent, _, leaf = relative.rpartition("/")
        folder = self.root.joinpath(*parent.split("/")) if parent else self.root
        stem = leaf.removesuffix(".dcm")
        made = False
        n = 0
        while n < 10_000:
            name = leaf if n == 0 else f"{stem}.{n}.dcm"
            candidate = os.path.join(folder, name)
            try:
                os.link(staged.path, candidate)
            except FileExistsError:
                n += 1
                continue
            except FileNotFoundError:
                if made or not staged.path.exists():
                    raise
                self._folders(parent)  # the study's or series' folder is new: made once, then linked into
                made = True
                continue
            except OSError:  # no hard links here (EPERM, ENOTSUP, EMLINK, ...): the placeholder way
                return self._place_by_rename(staged, relative)
            try:
                os.unlink(staged.path)
            except FileNotFoundError:
                pass
            return f"{parent}/{name}" if parent else name
        raise OSError(f"no free file name for {relative} in the store")

    def _folders(self, parent: str) -> Path:
        folder = private_dir(self.root)
        for part in parent.split("/") if parent else ():
            folder = folder / part
            folder.mkdir(mode=0o700, exist_ok=True)
        return folder

    def _place_by_rename(self, staged: StagedFile, relative: str) -> str:
        """`place` where hard links cannot be made: an exclusive placeholder, then a rename over it."""
        target = self.absolute(relative)
        parent = relative.rsplit("/", 1)[0] if "/" in relative else ""
        folder = self._folders(parent)
        stem = target.name.removesuffix(".dcm")
        for n in range(10_000):
            name = target.name if n == 0 else f"{stem}.{n}.dcm"
            candidate = folder / name
            try:
                fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                continue
            os.close(fd)
            try:
                os.replace(staged.path, candidate)
            except BaseException:
                candidate.unlink(missing_ok=True)
                raise
            return f"{parent}/{name}" if parent else name
        raise OSError(f"no free file name for {relative} in the store")

    def remove(self, relative: str) -> None:
        self.absolute(relative).unlink(missing_ok=True)

    # -- kept for callers that write a whole file at once ------------------------------------------------
    def copy_in(self, source: Path, relative: str) -> tuple[str, int, str]:
        """Stage and place `source`; returns (relative name used, size, sha256)."""
        staged = self.stage_copy(source)
        try:
            return self.place(staged, relative), staged.size, staged.sha256
        except BaseException:
            staged.discard()
            raise


def _hash_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def body_sha256(path: Path) -> str:
    """SHA-256 of a Part 10 file's data set only (file meta excluded): equal for the same instance
    stored by different programs, which write different meta headers."""
    from app.importer.integrity import _meta_end  # local: integrity imports nothing from here

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
        try:
            start, _ = _meta_end(head)
        except ValueError:
            start = 0
        fh.seek(start)
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
