"""One training/evaluation item: an image with its ids, split, view, labels, boxes and report text."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from engines.data.images import ImageDecodeError, load_image_array

Split = Literal["train", "val", "test"]
View = Literal["frontal", "lateral", "unknown"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
VIEWS: tuple[str, ...] = ("frontal", "lateral", "unknown")

_FRONTAL = {"pa", "ap", "ap supine", "ap erect", "ap semi erect", "frontal", "pa/ap", "ap_supine", "ap semi-erect"}
_LATERAL = {"l", "lateral", "ll", "rl", "lat", "left lateral", "right lateral", "lao", "rao"}


def view_group(raw: str | None) -> str:
    """Normalise a view code (PA, AP, LL, "AP Supine", DICOM ViewPosition...) to frontal/lateral/unknown."""
    v = (raw or "").strip().lower()
    if v in _FRONTAL or v.startswith("ap ") or v.startswith("pa "):
        return "frontal"
    if v in _LATERAL or "lat" in v:
        return "lateral"
    return "unknown"


@dataclass(frozen=True)
class Box:
    """A rectangle in 256-pixel image coordinates. ``finding`` is the CheXpert finding it marks (None for
    anatomy boxes such as "Right Lung")."""

    label: str
    finding: str | None
    x: float
    y: float
    w: float
    h: float
    kind: Literal["finding", "anatomy"] = "finding"

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


@dataclass(frozen=True)
class Sample:
    image_id: str
    patient_id: str
    study_id: str
    split: str
    source: str
    view: str = "unknown"
    labels: list[str] = field(default_factory=list)
    findings: dict[str, int] = field(default_factory=dict)
    boxes: list[Box] = field(default_factory=list)
    report_findings: str = ""
    report_impression: str = ""
    report_is_real: bool = False
    image_path: Path | None = None
    license: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"{self.image_id}: split must be one of {SPLITS}, got {self.split!r}")
        if self.view not in VIEWS:
            raise ValueError(f"{self.image_id}: view must be one of {VIEWS}, got {self.view!r}")

    @property
    def has_report(self) -> bool:
        return bool(self.report_findings.strip() or self.report_impression.strip())

    @property
    def report_text(self) -> str:
        """"FINDINGS: ... IMPRESSION: ..." (sections that are empty are left out)."""
        parts = []
        if self.report_findings.strip():
            parts.append(f"FINDINGS: {self.report_findings.strip()}")
        if self.report_impression.strip():
            parts.append(f"IMPRESSION: {self.report_impression.strip()}")
        return " ".join(parts)

    def with_report(self, findings: str, impression: str, *, real: bool) -> Sample:
        return replace(self, report_findings=findings, report_impression=impression, report_is_real=real)

    def load_image(self) -> np.ndarray:
        """The pixels as the viewer shows them: float32 HxW in [0, 1] (see engines.data.images)."""

        if self.image_path is None:
            raise ImageDecodeError(f"{self.image_id}: no image file")
        return load_image_array(self.image_path)
