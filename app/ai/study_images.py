"""The images of a study as the engine sees them, and which of them a job uses.

Frontal views (PA, then AP) go first, so an engine that reads a single image gets the frontal view;
engines that read several get them all. The job result names the indices used, and `describe_used`
turns them into the sentence the UI shows ("Used 2 images: PA, LATERAL").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.scope.header import header_of

FRONTAL_ORDER = {"PA": 0, "AP": 1}
PROJECTION_MODALITIES = {"DX", "CR", "DR", "RG", "OT", ""}


@dataclass(frozen=True)
class StudyImage:
    """One 2D image: pixels plus what identifies it (SOP Instance UID) and how it was taken."""

    pixels: np.ndarray
    sop_instance_uid: str = ""
    modality: str = ""
    view_position: str = ""
    label: str = ""
    header: dict = field(default_factory=dict)  # what the input gate reads (engines.scope.header.header_of)

    @property
    def name(self) -> str:
        return self.label or self.view_position or self.sop_instance_uid[-12:] or "image"


def order_for_engine(images: Iterable[StudyImage]) -> list[StudyImage]:
    """Projection radiographs only (when there are any), frontal first (PA, AP), others in given order."""
    images = list(images)
    projection = [im for im in images if im.modality.upper() in PROJECTION_MODALITIES]
    chosen = projection or images
    return sorted(chosen, key=lambda im: FRONTAL_ORDER.get(im.view_position.upper(), 2))


def describe_used(images: list[StudyImage], used: list[int]) -> str:
    """The UI's sentence about which images the engine read."""
    picked = [images[i] for i in used if 0 <= i < len(images)]
    if not picked:
        return "No image was used."
    names = ", ".join(im.name for im in picked)
    if len(picked) == len(images):
        return f"Used {'the only image' if len(images) == 1 else f'all {len(images)} images'}: {names}"
    frontal = picked[0].view_position.upper() in FRONTAL_ORDER
    kind = "the frontal view" if frontal and len(picked) == 1 else f"{len(picked)} of {len(images)} images"
    return f"Used {kind} ({names}); this engine reads one image" if len(picked) == 1 else f"Used {kind}: {names}"


def load_study_images(paths: Iterable[Path]) -> list[StudyImage]:
    """Decode single-frame DICOM images with pydicom (MONOCHROME1 inverted); unreadable files are skipped."""
    import pydicom

    out = []
    for path in paths:
        try:
            ds = pydicom.dcmread(str(path))
            pixels = ds.pixel_array
        except Exception:  # noqa: BLE001 - a non-image object (SR, PR) or a broken file is simply not an image
            continue
        if pixels.ndim == 3 and getattr(ds, "SamplesPerPixel", 1) == 1:
            pixels = pixels[0]
        if pixels.ndim == 3:
            pixels = pixels[..., :3].mean(axis=-1)
        if pixels.ndim != 2:
            continue
        if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            pixels = pixels.max() - pixels
        view = str(getattr(ds, "ViewPosition", "") or "")
        out.append(StudyImage(np.asarray(pixels), str(getattr(ds, "SOPInstanceUID", "")),
                              str(getattr(ds, "Modality", "")), view,
                              view or str(getattr(ds, "SeriesDescription", "")) or Path(path).name,
                              header_of(ds)))
    return out
