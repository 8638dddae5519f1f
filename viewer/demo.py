"""Builds and locates the bundled demo studies.

Three chest radiographs as DX (For Presentation) objects made from NIH ChestX-ray14 images (the only
source in ../shared/data/cxr whose terms allow shipping), plus a synthetic chest-like CT series for
MPR, all indexed by a DICOMDIR. UIDs are derived from a fixed seed, so `python -m viewer.demo --out DIR`
rebuilds byte-identical files and the committed copies in resources/demo never churn.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.fileset import FileSet

from viewer.io.refs import SeriesRef, StudyRef
from viewer.io.writer import StudyInfo, ct_slice_dataset, dx_dataset, save, uid_from

__all__ = ["DEMO_SEED", "build_demo", "demo_dir", "demo_studies", "demo_study_paths", "main"]

DEMO_SEED = "radstation-demo-v1"
NIH_ORIGINAL_SPACING_MM = 0.143  # nominal detector pitch of the NIH ChestX-ray14 originals
NIH_ATTRIBUTION = (
    "NIH ChestX-ray14 (https://nihcc.app.box.com/v/ChestXray-NIHCC); data provided by the NIH Clinical "
    "Center; Wang X et al., ChestX-ray8, IEEE CVPR 2017"
)
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DemoRadiograph:
    """One NIH image to turn into a demo DX study."""

    image_id: str  # manifest image_id, e.g. "nih_zech__00030509_000"
    patient_name: str
    patient_id: str
    accession: str
    study_date: str
    description: str
    bits_stored: int = 8


RADIOGRAPHS: tuple[DemoRadiograph, ...] = (
    DemoRadiograph("nih_zech__00030509_000", "DEMO^NORMAL", "DEMO-0001", "DEMOACC001", "20240105", "XR CHEST PA"),
    DemoRadiograph(
        "nih_zech__00009745_000", "DEMO^CARDIOMEGALY", "DEMO-0002", "DEMOACC002", "20240212", "XR CHEST PA", bits_stored=12
    ),
    DemoRadiograph("nih_zech__00002578_000", "DEMO^NODULE", "DEMO-0003", "DEMOACC003", "20240318", "XR CHEST PA"),
)

CT_SHAPE = (48, 128, 128)  # slices, rows, columns
CT_PIXEL_MM = 2.5
CT_SLICE_MM = 5.0


def demo_dir() -> Path:
    """Where the bundled demo lives (resources/demo inside the installed package)."""
    import resources

    return Path(resources.__file__).resolve().parent / "demo"


def default_source_root() -> Path:
    return Path(os.environ.get("RADSTATION_CXR_ROOT", REPO_ROOT.parent / "shared" / "data" / "cxr"))


# --------------------------------------------------------------------------------------------- radiographs
def _manifest(source_root: Path) -> dict[str, dict]:
    path = source_root / "manifest.jsonl"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: the demo is built from the NIH images of the cxr data set "
            "(set RADSTATION_CXR_ROOT or pass --source)"
        )
    rows = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            rows[row["image_id"]] = row
    return rows


def _radiograph(spec: DemoRadiograph, row: dict, source_root: Path) -> pydicom.Dataset:
    from PIL import Image

    if row["source"] not in ("nih_talo", "nih_zech"):
        raise ValueError(f"{spec.image_id}: only NIH-derived images may ship (source {row['source']})")
    with Image.open(source_root / row["file"]) as im:
        pixels = np.asarray(im.convert("L"), dtype=np.uint8)
    if spec.bits_stored > 8:
        # 12-bit store of the same grey levels, so the demo exercises the 16-bit pipeline too
        pixels = (pixels.astype(np.uint16) << (spec.bits_stored - 8)).astype(np.uint16)
    rows, cols = pixels.shape
    width, height = (int(v) for v in row["extra"]["orig_size"])
    spacing = (height * NIH_ORIGINAL_SPACING_MM / rows, width * NIH_ORIGINAL_SPACING_MM / cols)
    nih_file = row["source_path"].rsplit("/", 1)[-1]
    labels = ", ".join(row["labels"]) or "none"
    study = StudyInfo(
        study_uid=uid_from(DEMO_SEED, spec.image_id, "study"),
        patient_name=spec.patient_name,
        patient_id=spec.patient_id,
        patient_sex=row.get("sex") or "O",
        patient_age=f"{int(row['age']):03d}Y" if str(row.get("age", "")).isdigit() else "",
        study_date=spec.study_date,
        study_time="093000",
        accession=spec.accession,
        study_id="1",
        description=spec.description,
        referring="DEMO^REFERRER",
    )
    top = float(2**spec.bits_stored - 1)
    return dx_dataset(
        pixels,
        study=study,
        series_uid=uid_from(DEMO_SEED, spec.image_id, "series"),
        sop_uid=uid_from(DEMO_SEED, spec.image_id, "instance"),
        imager_pixel_spacing=spacing,
        view_position=str(row.get("view") or "PA"),
        bits_stored=spec.bits_stored,
        window=(top / 2.0 + 0.5, top + 1.0),
        series_description="PA",
        derivation=(
            f"Derived from NIH ChestX-ray14 image {nih_file} (via {row['source_repo']} @ "
            f"{row['source_commit'][:12]}): resized to {rows}x{cols} 8-bit; Imager Pixel Spacing estimated "
            f"from the original {width}x{height} image at {NIH_ORIGINAL_SPACING_MM} mm"
        ),
        comments=(
            f"RadStation demo, synthetic patient identity. Source image {nih_file}; NIH labels (NLP-mined): "
            f"{labels}. {NIH_ATTRIBUTION}."
        ),
    )


# --------------------------------------------------------------------------------------------- CT phantom
def _ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def chest_phantom_hu(shape: tuple[int, int, int] = CT_SHAPE, seed: int = 7) -> np.ndarray:
    """A chest-like phantom in HU (z, y, x; z = 0 is the most superior slice): body, fat, lungs with
    vessels and a nodule, heart, aorta, spine, ribs, liver dome. Deterministic for a given seed."""
    nz, ny, nx = shape
    rng = np.random.default_rng(seed)
    vol = np.full(shape, -1000.0, dtype=np.float32)
    s = ny / 128.0
    for k in range(nz):
        t = k / max(nz - 1, 1)  # 0 at the apex, 1 at the diaphragm
        sl = vol[k]
        sl[_ellipse((ny, nx), 66 * s, 64 * s, 44 * s, 58 * s)] = -100.0  # subcutaneous fat
        sl[_ellipse((ny, nx), 66 * s, 64 * s, 40 * s, 54 * s)] = 40.0  # muscle / soft tissue
        lung_scale = np.sin(np.pi * (0.15 + 0.8 * t)) ** 0.5  # small at the apex, widest mid-chest
        for side in (-1, 1):
            lung = _ellipse((ny, nx), 62 * s, (64 + side * 24) * s, 30 * s * lung_scale, 18 * s * lung_scale)
            sl[lung] = -850.0
        heart_r = 22 * s * np.clip((t - 0.35) / 0.4, 0, 1)
        if heart_r > 1:
            sl[_ellipse((ny, nx), 58 * s, 70 * s, heart_r * 0.9, heart_r)] = 45.0
        sl[_ellipse((ny, nx), 48 * s, 60 * s, 5 * s, 5 * s)] = 180.0  # contrast-filled aorta
        sl[_ellipse((ny, nx), 96 * s, 64 * s, 8 * s, 8 * s)] = 700.0  # vertebral body
        sl[_ellipse((ny, nx), 96 * s, 64 * s, 5 * s, 5 * s)] = 250.0  # cancellous bone
        if k % 6 < 2:  # ribs: cortical arcs every few slices
            ring = _ellipse((ny, nx), 66 * s, 64 * s, 38 * s, 52 * s) & ~_ellipse((ny, nx), 66 * s, 64 * s, 36 * s, 50 * s)
            sl[ring & (np.arange(ny)[:, None] > 40 * s)] = 800.0
        if t > 0.8:  # liver dome under the right lung
            sl[_ellipse((ny, nx), 66 * s, 44 * s, 26 * s * (t - 0.6) * 2.5, 22 * s)] = 60.0
    # vessel-like tubes in the lungs (smoothed noise, thresholded) and one 8 mm nodule
    from scipy.ndimage import gaussian_filter

    lungs = vol == -850.0
    field = gaussian_filter(rng.normal(size=shape).astype(np.float32), sigma=(0.6, 1.2, 1.2))
    vessels = np.abs(field) < 0.012
    vol[lungs & vessels] = 30.0
    zz, yy, xx = np.mgrid[:nz, :ny, :nx]
    nodule = ((zz - nz * 0.35) * CT_SLICE_MM) ** 2 + ((yy - 55 * s) * CT_PIXEL_MM) ** 2 + ((xx - 42 * s) * CT_PIXEL_MM) ** 2 <= 4.0**2
    vol[nodule] = 20.0
    vol += rng.normal(0.0, 12.0, shape).astype(np.float32)  # quantum noise
    return np.clip(np.rint(vol), -1024, 3071).astype(np.int16)


def _ct_series() -> list[pydicom.Dataset]:
    hu = chest_phantom_hu()
    stored = (hu.astype(np.int32) + 1024).astype(np.uint16)
    study = StudyInfo(
        study_uid=uid_from(DEMO_SEED, "ct", "study"),
        patient_name="DEMO^PHANTOM",
        patient_id="DEMO-0004",
        patient_sex="O",
        study_date="20240420",
        study_time="101500",
        accession="DEMOACC004",
        study_id="1",
        description="CT CHEST (synthetic phantom)",
        referring="DEMO^REFERRER",
    )
    nz, ny, nx = stored.shape
    x0 = -(nx - 1) * CT_PIXEL_MM / 2
    y0 = -(ny - 1) * CT_PIXEL_MM / 2
    out = []
    for k in range(nz):
        out.append(
            ct_slice_dataset(
                stored[k],
                study=study,
                series_uid=uid_from(DEMO_SEED, "ct", "series"),
                sop_uid=uid_from(DEMO_SEED, "ct", "instance", k),
                frame_of_reference_uid=uid_from(DEMO_SEED, "ct", "for"),
                instance_number=k + 1,
                position=(x0, y0, -k * CT_SLICE_MM),  # instance 1 is the most superior slice
                pixel_spacing=(CT_PIXEL_MM, CT_PIXEL_MM),
                slice_thickness=CT_SLICE_MM,
                window=(-600.0, 1500.0),
                series_description="Synthetic chest phantom 5 mm",
            )
        )
        out[-1].WindowCenter = ["-600", "40"]
        out[-1].WindowWidth = ["1500", "400"]
        out[-1].WindowCenterWidthExplanation = ["LUNG", "MEDIASTINUM"]
        out[-1].ImageComments = "Synthetic phantom generated by RadStation (no patient data)."
    return out


# --------------------------------------------------------------------------------------------- build
def build_demo(out_dir: Path, source_root: Path | None = None) -> list[Path]:
    """Write the demo studies and their DICOMDIR into `out_dir` (replacing a previous build there).

    Returns the instance file paths. Deterministic: same inputs, same bytes."""
    out_dir = Path(out_dir)
    source_root = Path(source_root) if source_root is not None else default_source_root()
    manifest = _manifest(source_root)
    datasets: list[pydicom.Dataset] = []
    records = []
    for spec in RADIOGRAPHS:
        row = manifest.get(spec.image_id)
        if row is None:
            raise FileNotFoundError(f"{spec.image_id} is not in {source_root / 'manifest.jsonl'}")
        datasets.append(_radiograph(spec, row, source_root))
        records.append(
            {
                "patient_name": spec.patient_name,
                "patient_id": spec.patient_id,
                "sop_instance_uid": str(datasets[-1].SOPInstanceUID),
                "source": row["source"],
                "source_repo": row["source_repo"],
                "source_commit": row["source_commit"],
                "nih_image": row["source_path"].rsplit("/", 1)[-1],
                "labels": row["labels"],
                "label_source": row["label_source"],
                "boxes_256": [[b["label"], *b["bbox_xywh_256"]] for b in row["boxes"]],
                "license": row["license"],
            }
        )
    datasets += _ct_series()

    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp) / "staging"
        fs = FileSet()
        fs.ID = "RADSTATIONDEMO"
        fs.UID = uid_from(DEMO_SEED, "fileset")
        for i, ds in enumerate(datasets):
            fs.add(save(ds, staging / f"{i:04d}.dcm"))
        built = Path(tmp) / "built"
        fs.write(built)
        if out_dir.exists():
            # remove only what a previous build wrote (README.md and anything else stays)
            for target in [out_dir / "DICOMDIR", out_dir / "manifest.json", *out_dir.glob("PT[0-9]*")]:
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        out_dir.mkdir(parents=True, exist_ok=True)
        for item in built.iterdir():
            shutil.move(str(item), out_dir / item.name)
    (out_dir / "manifest.json").write_text(
        json.dumps({"seed": DEMO_SEED, "attribution": NIH_ATTRIBUTION, "radiographs": records}, indent=2) + "\n",
        encoding="utf-8",
    )
    return demo_study_paths(out_dir)


def demo_study_paths(root: Path | None = None) -> list[Path]:
    """Every demo instance file (not the DICOMDIR), sorted by path."""
    root = Path(root) if root is not None else demo_dir()
    return sorted(p for p in root.rglob("*") if p.is_file() and p.parent != root)


def demo_studies(root: Path | None = None) -> list[StudyRef]:
    """The demo as StudyRefs (series files in Instance Number order), read from the DICOMDIR."""
    root = Path(root) if root is not None else demo_dir()
    fs = FileSet(pydicom.dcmread(root / "DICOMDIR"))
    studies: list[StudyRef] = []
    for patient_id in fs.find_values("PatientID"):
        for study_uid in fs.find_values("StudyInstanceUID", fs.find(PatientID=patient_id)):
            series_refs = []
            study_instances = fs.find(PatientID=patient_id, StudyInstanceUID=study_uid)
            first = study_instances[0].load()
            for series_uid in fs.find_values("SeriesInstanceUID", study_instances):
                instances = fs.find(StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid)
                headers = [(int(inst.InstanceNumber or 0), Path(inst.path)) for inst in instances]
                head = instances[0].load()
                series_refs.append(
                    SeriesRef(
                        series_uid=str(series_uid),
                        modality=str(head.Modality),
                        description=str(head.get("SeriesDescription", "")),
                        number=int(head.get("SeriesNumber") or 0),
                        paths=tuple(p for _, p in sorted(headers)),
                    )
                )
            studies.append(
                StudyRef(
                    study_uid=str(study_uid),
                    patient_name=str(first.PatientName),
                    patient_id=str(patient_id),
                    study_date=str(first.get("StudyDate", "")),
                    accession=str(first.get("AccessionNumber", "")),
                    description=str(first.get("StudyDescription", "")),
                    series=tuple(series_refs),
                )
            )
    return sorted(studies, key=lambda s: s.patient_id)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m viewer.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: resources/demo)")
    parser.add_argument("--source", type=Path, default=None, help="the cxr data set (default: ../shared/data/cxr)")
    args = parser.parse_args(argv)
    out = args.out or demo_dir()
    try:
        paths = build_demo(out, args.source)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(paths)} instances + DICOMDIR to {out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
