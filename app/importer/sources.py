"""Turning what the user picked (folders, files, DICOMDIRs, zips) into a list of candidate files.

Zips are extracted into a work folder member by member with every path checked, so an archive can
never write outside it (no '..', absolute paths or symlinks). DICOMDIRs are followed to the files
they reference. Each file is listed once even when several sources reach it.
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
class Candidate:
    """A file to probe: where it is now, and how to name it to the user (e.g. 'a.zip!/x/y.dcm')."""

    path: Path
    display: str


class SourceExpander:
    def __init__(self, workdir: Path, cancel: threading.Event | None = None) -> None:
        self.workdir = workdir
        self.cancel = cancel
        self.candidates: list[Candidate] = []
        self.issues: list[FileIssue] = []
        self._seen: set[str] = set()
        self._zips = 0

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

        for root, dirs, files in os.walk(folder, onerror=on_error):
            dirs.sort()
            if self._cancelled():
                return
            rel_root = os.path.relpath(root, folder)
            for name in sorted(files):
                rel = name if rel_root == "." else os.path.join(rel_root, name)
                self._file(Path(root) / name, os.path.join(display, rel), depth)

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

        try:
            records = dcmread(path).get("DirectoryRecordSequence")
        except Exception as exc:  # noqa: BLE001 - a broken index is reported, the walk goes on
            self.issues.append(FileIssue(display, f"unreadable DICOMDIR: {exc}"[:300]))
            return
        if records is None:
            self.issues.append(FileIssue(display, "DICOMDIR has no directory records"))
            return
        base = Path(display).parent
        for record in records:
            file_id = record.get("ReferencedFileID")
            if not file_id:
                continue
            parts = [str(file_id)] if isinstance(file_id, str) else [str(p) for p in file_id]
            shown = str(base.joinpath(*parts))
            if any(p in ("", ".", "..") or "/" in p or "\\" in p or ":" in p for p in parts):
                self.issues.append(FileIssue(shown, "DICOMDIR reference leaves the media folder: not followed"))
                continue
            ref = _find_case_insensitive(path.parent, parts)
            if ref is None:
                self.issues.append(FileIssue(shown, "referenced by the DICOMDIR but missing"))
            else:
                self._add(ref, shown)

    def _zip(self, path: Path, display: str, depth: int) -> None:
        if depth >= MAX_ZIP_DEPTH:
            self.issues.append(FileIssue(display, f"zip nested more than {MAX_ZIP_DEPTH} deep: not opened"))
            return
        self._zips += 1
        target = self.workdir / f"zip{self._zips}"
        target.mkdir(parents=True)
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            self.issues.append(FileIssue(display, f"unreadable zip archive: {exc}"))
            return
        extracted: list[tuple[Path, str]] = []
        with archive:
            needed = sum(i.file_size for i in archive.infolist())
            free = shutil.disk_usage(target).free
            if needed > free:
                self.issues.append(FileIssue(
                    display, f"zip needs {needed / 2**30:.1f} GiB to extract, only {free / 2**30:.1f} GiB free"
                ))
                return
            for info in archive.infolist():
                if self._cancelled():
                    return
                if info.is_dir():
                    continue
                shown = f"{display}!/{info.filename}"
                dest = _safe_member_path(target, info)
                if isinstance(dest, str):
                    self.issues.append(FileIssue(shown, dest))
                    continue
                try:
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                except (zipfile.BadZipFile, RuntimeError, OSError, EOFError, NotImplementedError) as exc:
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
