"""One image with what the reader drew on it: the input of the presentation state and measurement report.

The results are computed here with viewer.measure (the same code that labels the shapes on screen), so a
number in a GSPS or TID 1500 is the number the radiologist saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from app.dicom_objects.display import DisplayState
from viewer.io.image import DicomImage
from viewer.measure import MeasurementResult, Shape, is_annotation, measure, measurement_from_dict


@dataclass
class AnnotatedImage:
    """A source image (full dataset, pixels needed for ROI statistics), its shapes and how it was shown."""

    dataset: Dataset
    measurements: list[Shape]  # measurements, arrows and text notes, in drawing order
    display: DisplayState = field(default_factory=DisplayState)
    _results: list[MeasurementResult] | None = None

    @classmethod
    def from_records(cls, dataset: Dataset, records: list[dict], display: DisplayState | None = None,
                     ) -> AnnotatedImage:
        """From the measurement store's records; a record this version cannot read is refused by name."""
        shapes = []
        for i, rec in enumerate(records):
            try:
                shapes.append(measurement_from_dict(rec))
            except ValueError as exc:
                raise ValueError(f"measurement {i + 1} of image {dataset.get('SOPInstanceUID', '?')}: {exc}") from exc
        return cls(dataset, shapes, display or DisplayState())

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    @property
    def has_measurements(self) -> bool:
        """Whether any shape measures something (arrows and notes alone do not)."""
        return any(not is_annotation(m) for m in self.measurements)

    @property
    def n_frames(self) -> int:
        return int(self.dataset.get("NumberOfFrames") or 1)

    def results(self) -> list[MeasurementResult]:
        """viewer.measure's result per shape (mm/HU when the header allows, flagged pixels otherwise)."""
        if self._results is None:
            image = DicomImage.from_dataset(self.dataset)
            self._results = [measure(m, image, m.frame) for m in self.measurements]
        return self._results
