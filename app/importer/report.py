"""What an import did, file by file: the counts the UI shows and the reasons files were refused."""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES = ("error", "warning", "duplicate")


@dataclass(frozen=True)
class FileIssue:
    """One file the user should know about: refused ("error"), imported with doubts ("warning"),
    or skipped because it is already in the database ("duplicate")."""

    path: str
    reason: str
    severity: str = "error"


@dataclass
class ImportReport:
    sources: list[str] = field(default_factory=list)
    total: int = 0  # candidate files found in the sources
    imported: int = 0
    duplicates: int = 0
    failed: int = 0
    cancelled: bool = False
    issues: list[FileIssue] = field(default_factory=list)
    study_uids: list[str] = field(default_factory=list)  # studies that received new instances
    batch_id: int | None = None  # the persisted ImportBatch row
    seconds: float = 0.0
    batch_seconds: list[float] = field(default_factory=list)  # wall time of each committed batch
    touched_studies: set[str] = field(default_factory=set)  # studies with files in this import (any outcome)

    @property
    def errors(self) -> list[FileIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[FileIssue]:
        return [i for i in self.issues if i.severity == "warning"]

    def summary(self) -> str:
        text = (
            f"{self.imported} imported, {self.duplicates} already present, {self.failed} failed"
            f" (of {self.total} files)"
        )
        return text + (" - cancelled" if self.cancelled else "")

    def format_table(self, *, include_duplicates: bool = False) -> str:
        """Plain-text table of the issues for the CLI and logs."""
        rows = [i for i in self.issues if include_duplicates or i.severity != "duplicate"]
        if not rows:
            return ""
        width = min(max(len(i.path) for i in rows), 80)
        lines = [f"{'severity':<9} {'file':<{width}} reason", f"{'-' * 9} {'-' * width} {'-' * 6}"]
        lines += [f"{i.severity:<9} {i.path:<{width}} {i.reason}" for i in rows]
        return "\n".join(lines)
