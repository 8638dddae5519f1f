"""Turning what the user picked (folders, files, DICOMDIRs, zips) into a list of candidate files.

Zips are extracted into a private work folder member by member with every path checked, so an archive
can never write outside it (no '..', absolute paths or symlinks), and within limits on total size,
compression ratio and member count that hold even when the archive lies about its sizes (bytes are
counted as they are extracted). DICOMDIRs are followed to the files they reference. Symbolic links that
lead out of the folder or media being imported are refused. Each file is listed once even when several
sources reach it.
"""

from __future__ import annotations

import os
import shutil
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from app.importer.report import FileIssue

MAX_ZIP_DEPTH = 3


@dataclass(frozen=True)
class ZipLimits:
    """What one import may extract from zips (nested ones included): a 0.3 MB archive must not fill the disk."""

    max_total_bytes: int = 64 << 30  # all members of all zips of one import, as extracted
    # Declared extracted bytes per byte of archive. Deflate cannot exceed ~1032:1 for data stored once,
    # so more means members overlapping the same compressed bytes (the classic zip bomb).
    max_ratio: float = 1100.0
    max_members: int = 200_000
    min_free_bytes: int = 1 << 30  # leave this much free on the data disk


class _ZipRefused(Exception):
    """The archive broke a limit while being extracted: the message says which."""


@dataclass(frozen=True)
class Candidate:
    """A file to probe: where it is now, and how to name it to the user (e.g. 'a.zip!/x/y.dcm')."""

    path: Path
    display: str


class SourceExpander:
    def __init__(self, workdir: Path, cancel: threading.Event | None = None, limits: ZipLimits | None = None) -> None:
        self.workdir = workdir
        self.cancel = cancel
        self.limits = limits or ZipLimits()
        self.candidates: list[Candidate] = []
        self.issues: list[FileIssue] = []
        self._seen: set[str] = set()
        self._zips = 0
        self._extracted = 0  # bytes, all zips of this import
        self._members = 0

    def expand(self, sources: Iterable[str | os.PathLike[str]]) -> list[Candidate]:
        for source in sources:
            if self._cancelled():
                break
            path = Path(source).expanduser()
            if path.is_dir():
                self._walk(path, str(path), depth=0)
            elif path.is_file():
                self._file(path, str(path), depth=0)
            else:
                self.issues.append(FileIssue(str(path), "no such file or folder"))
        return self.candidates

    def _cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def _walk(self, folder: Path, display: str, depth: int) -> None:
        def on_error(err: OSError) -> None:
            self.issues.append(FileIssue(str(err.filename or folder), f"cannot read folder: {err.strerror}"))

        top = os.path.realpath(folder)
        for root, dirs, files in os.walk(folder, onerror=on_error):
            dirs.sort()
            if self._cancelled():
                return
            rel_root = os.path.relpath(root, folder)
            for name in dirs:  # os.walk does not enter linked folders; say so when one leads outside
                if (Path(root) / name).is_symlink() and not _inside(Path(root) / name, top):
                    shown = name if rel_root == "." else os.path.join(rel_root, name)
                    self.issues.append(FileIssue(os.path.join(display, shown),
                                                 "symbolic link to a folder outside the folder: not followed"))
            for name in sorted(files):
                rel = name if rel_root == "." else os.path.join(rel_root, name)
                path = Path(root) / name
                if path.is_symlink() and not _inside(path, top):
                    self.issues.append(FileIssue(os.path.join(display, rel),
                                                 "symbolic link to a file outside the folder: not followed"))
                    continue
                self._file(path, os.path.join(display, rel), depth)

    def _file(self, path: Path, display: str, depth: int) -> None:
        if path.name.upper() == "DICOMDIR":
            self._dicomdir(path, display)
        elif path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
            self._zip(path, display, depth)
        else:
            self._add(path, display)

    def _add(self, path: Path, display: str) -> None:
        key = os.path.realpath(path)
        if key not in self._seen:
            self._seen.add(key)
            self.candidates.append(Candidate(path, display))

    def _dicomdir(self, path: Path, display: str) -> None:
        """Follow every record's Referenced File ID (read directly, so missing files get reported)."""
        from pydicom import dcmread
        from pydicom.sequence import Sequence

        try:
            records = dcmread(path).get("DirectoryRecordSequence")
        except Exception as exc:  # noqa: BLE001 - a broken index is reported, the walk goes on
            self.issues.append(FileIssue(display, f"unreadable DICOMDIR: {exc}"[:300]))
            return
        if records is None:
            self.issues.append(FileIssue(display, "DICOMDIR has no directory records"))
            return
        if not isinstance(records, Sequence):  # e.g. the element written with another VR (found by fuzzing)
            self.issues.append(FileIssue(display, "unreadable DICOMDIR: its directory records are not a sequence"))
            return
        base = Path(display).parent
        for record in records:
            try:
                file_id = record.get("ReferencedFileID")
                parts = ([] if not file_id else [str(file_id)] if isinstance(file_id, str)
                         else [str(p) for p in file_id])
            except Exception as exc:  # noqa: BLE001 - one damaged record is reported, the others are followed
                self.issues.append(FileIssue(display, f"unreadable DICOMDIR record: {exc}"[:300]))
                continue
            if not parts:
                continue
            shown = str(base.joinpath(*parts))
            if any(p in ("", ".", "..") or "/" in p or "\\" in p or ":" in p for p in parts):
                self.issues.append(FileIssue(shown, "DICOMDIR reference leaves the media folder: not followed"))
                continue
            ref = _find_case_insensitive(path.parent, parts)
            if ref is None:
                self.issues.append(FileIssue(shown, "referenced by the DICOMDIR but missing"))
            elif not _inside(ref, os.path.realpath(path.parent)):
                self.issues.append(FileIssue(shown, "symbolic link leaves the media folder: not followed"))
            else:
                self._add(ref, shown)

    def _zip(self, path: Path, display: str, depth: int) -> None:
        if depth >= MAX_ZIP_DEPTH:
            self.issues.append(FileIssue(display, f"zip nested more than {MAX_ZIP_DEPTH} deep: not opened"))
            return
        self._zips += 1
        target = self.workdir / f"zip{self._zips}"
        target.mkdir(mode=0o700, parents=True)
        try:
            archive = zipfile.ZipFile(path)
        # zipfile raises many types on a damaged archive (fuzzing found NotImplementedError for an unknown zip
        # version, zlib.error, IndexError): any of them means this archive, not the import, is unreadable
        except Exception as exc:  # noqa: BLE001
            self.issues.append(FileIssue(display, f"unreadable zip archive: {exc or type(exc).__name__}"))
            return
        extracted: list[tuple[Path, str]] = []
        with archive:
            # not ZipInfo.is_dir(): it raises IndexError on a member with an empty name (found by fuzzing);
            # such a member is refused below with its reason
            infos = [i for i in archive.infolist() if not i.filename.endswith("/")]
            problem = self._zip_problem(path, target, infos)
            if problem:
                self.issues.append(FileIssue(display, f"zip not extracted: {problem}"))
                return
            for info in infos:
                if self._cancelled():
                    return
                shown = f"{display}!/{info.filename}"
                dest = _safe_member_path(target, info)
                if isinstance(dest, str):
                    self.issues.append(FileIssue(shown, dest))
                    continue
                try:
                    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    self._extract_member(archive, info, dest)
                except _ZipRefused as exc:
                    dest.unlink(missing_ok=True)
                    self.issues.append(FileIssue(shown, f"zip extraction stopped: {exc}"))
                    shutil.rmtree(target, ignore_errors=True)  # nothing of a refused archive is imported
                    return
                except Exception as exc:  # noqa: BLE001 - e.g. zlib.error from a damaged member (found by fuzzing)
                    dest.unlink(missing_ok=True)
                    self.issues.append(FileIssue(shown, f"cannot extract from zip: {exc}"))
                    continue
                extracted.append((dest, shown))
        for dest, shown in extracted:
            if dest.name.upper() == "DICOMDIR":
                self._dicomdir(dest, shown)
            elif dest.suffix.lower() == ".zip" and zipfile.is_zipfile(dest):
                self._zip(dest, shown, depth + 1)
            else:
                self._add(dest, shown)

    def _zip_problem(self, path: Path, target: Path, infos: list[zipfile.ZipInfo]) -> str:
        """Refuse up front what the central directory already shows to be too much."""
        lim = self.limits
        declared = sum(i.file_size for i in infos)
        if self._members + len(infos) > lim.max_members:
            return f"it holds {len(infos)} files; at most {lim.max_members} are extracted per import"
        if self._extracted + declared > lim.max_total_bytes:
            return f"it expands to {_human(declared)}; at most {_human(lim.max_total_bytes)} are extracted per import"
        compressed = max(1, path.stat().st_size)
        if declared / compressed > lim.max_ratio:
            return (f"it claims to expand {declared / compressed:.0f}-fold (limit {lim.max_ratio:.0f}): "
                    "a zip bomb or a corrupt archive")
        free = shutil.disk_usage(target).free
        if declared + lim.min_free_bytes > free:
            return (f"it needs {_human(declared)} to extract and only {_human(free)} are free "
                    f"(keeping {_human(lim.min_free_bytes)} in reserve)")
        self._members += len(infos)
        return ""

    def _extract_member(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path) -> None:
        """Copy one member, counting the bytes really produced (a lying header changes nothing)."""
        lim = self.limits
        written = 0
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with archive.open(info) as src, os.fdopen(fd, "wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                self._extracted += len(chunk)
                if written > info.file_size:
                    raise _ZipRefused(f"{info.filename} produces more bytes than the archive declares")
                if self._extracted > lim.max_total_bytes:
                    raise _ZipRefused(f"more than {_human(lim.max_total_bytes)} extracted in this import")
                out.write(chunk)


def _human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _inside(path: Path, root_real: str) -> bool:
    """True when `path` (symbolic links resolved) is `root_real` or below it."""
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _safe_member_path(root: Path, info: zipfile.ZipInfo) -> Path | str:
    """The extraction path for a member, or the reason it is refused."""
    mode = (info.external_attr >> 16) & 0o170000
    if mode == 0o120000:
        return "symbolic link in the zip: not extracted"
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (parts and ":" in parts[0]):
        return "absolute path in the zip: not extracted (would write outside the import folder)"
    if ".." in parts:
        return "'..' in the zip path: not extracted (would write outside the import folder)"
    clean = [p for p in parts if p not in ("", ".")]
    if not clean:
        return "empty name in the zip"
    dest = root.joinpath(*clean)
    if not dest.resolve().is_relative_to(root.resolve()):
        return "zip path leads outside the import folder: not extracted"
    return dest


def _find_case_insensitive(root: Path, parts: list[str]) -> Path | None:
    """DICOMDIR file IDs are upper case; media copied to Linux are often lower case."""
    exact = root.joinpath(*parts)
    if exact.is_file():
        return exact
    current = root
    for part in parts:
        try:
            match = next((c for c in current.iterdir() if c.name.upper() == part.upper()), None)
        except OSError:
            return None
        if match is None:
            return None
        current = match
    return current if current.is_file() else None
