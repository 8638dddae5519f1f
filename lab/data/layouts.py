"""Pick the reader for a folder: the curated set, DICOM studies, IU Open-i or MIMIC-CXR-JPG."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lab.data.dataset import Dataset, EmptyDatasetError

LAYOUTS = ("cxr", "dicom", "openi", "mimic")


def detect_layout(root: Path | str) -> str:
    """The layout name of ``root``, from the files that mark each layout; EmptyDatasetError if none."""
    root = Path(root)
    if not root.is_dir():
        raise EmptyDatasetError(f"{root}: not a folder")
    if (root / "manifest.jsonl").is_file():
        return "cxr"
    if any((root / f"mimic-cxr-2.0.0-split.csv{gz}").is_file() for gz in ("", ".gz")):
        return "mimic"
    if (root / "ecgen-radiology").is_dir() or next(root.glob("*.xml"), None) is not None:
        return "openi"
    if any(p.is_dir() and next(p.glob("*.txt"), None) is not None for p in root.iterdir()):
        return "dicom"
    raise EmptyDatasetError(
        f"{root}: unknown layout (expected manifest.jsonl, mimic-cxr-2.0.0-split.csv, ecgen-radiology/*.xml, "
        "or study folders with a report .txt)"
    )


def load_dataset(root: Path | str, layout: str | None = None, splits: tuple[str, ...] | None = None) -> Dataset:
    """Read ``root`` with the reader for ``layout`` (detected when None)."""
    from lab.data.cxr import load_cxr
    from lab.data.dicom_folder import load_dicom_folder
    from lab.data.mimic import load_mimic
    from lab.data.openi import load_openi

    layout = layout or detect_layout(root)
    readers: dict[str, Callable[..., Dataset]] = {
        "cxr": load_cxr, "dicom": load_dicom_folder, "openi": load_openi, "mimic": load_mimic,
    }
    if layout not in readers:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if splits is None:
        return readers[layout](Path(root))
    return readers[layout](Path(root), splits=tuple(splits))
