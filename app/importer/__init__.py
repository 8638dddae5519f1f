"""Bringing DICOM into the study database: folders, files, DICOMDIRs, zips and network peers."""

from app.importer.report import FileIssue, ImportReport
from app.importer.service import DatasetOutcome, ImportService

__all__ = ["DatasetOutcome", "FileIssue", "ImportReport", "ImportService"]
