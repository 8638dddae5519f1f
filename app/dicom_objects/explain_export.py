"""The Explain panel's shown map as standard DICOM objects beside its source image: a Segmentation (the
map thresholded) and a Parametric Map (the values) always, and for radiographs also the derived colour
Secondary Capture (viewers without Parametric Map support still show that), written to a folder and, when a database is given,
imported into the study so they can be sent like any other object (they stay derived, never evidence)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from app.export_files import save_dataset_private
from app.paths import private_dir
from explain.dicom_maps import MapSource, build_parametric_map, build_segmentation


def export_explanation(source: Dataset | Path | str, values: np.ndarray, made_by: MapSource, out_dir: Path,
                       threshold: float = 0.5, database=None) -> list[Path]:
    """Write SEG + Parametric Map (+ derived SC for a radiograph) for `values` over `source`; returns the
    files written."""
    from explain.export import export_map

    if not isinstance(source, Dataset):
        source = pydicom.dcmread(source)
    out_dir = private_dir(Path(out_dir), tighten=False)
    uid = str(source.SOPInstanceUID)
    written = []
    seg = build_segmentation(source, values, made_by, threshold)
    path = out_dir / f"SEG_{uid}.dcm"
    save_dataset_private(seg, path)
    written.append(path)
    pm = build_parametric_map(source, values, made_by)
    path = out_dir / f"PMAP_{uid}.dcm"
    save_dataset_private(pm, path)
    written.append(path)
    if "FrameOfReferenceUID" not in source:
        path = out_dir / f"SC_{uid}.dcm"
        save_dataset_private(export_map(source, values, label=made_by.label, kind="secondary-capture",
                                        threshold=threshold), path)
        written.append(path)
    if database is not None:
        from app import access_audit
        from app.importer import ImportService

        access_audit.exported(database, str(source.get("StudyInstanceUID", "")),
                              "explanation map: " + ", ".join(p.name for p in written), str(out_dir))
        ImportService(database).run([str(p) for p in written])
    return written
