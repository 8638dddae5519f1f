"""Reader for the curated chest-radiograph set (../shared/data/cxr: manifest.jsonl + 256-px PNGs)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from engines.data.sample import SPLITS, Box, Sample, view_group
from engines.labeler.sources import NIH_TO_FINDINGS, findings_from_source_labels
from lab.data.dataset import Dataset, EmptyDatasetError, Problem

#: The shared data folder beside the checkout; RADSTATION_CXR_ROOT moves it.
DEFAULT_CXR_ROOT = Path(__file__).resolve().parents[3] / "shared" / "data" / "cxr"


def default_cxr_root() -> Path:
    env = os.environ.get("RADSTATION_CXR_ROOT")
    return Path(env) if env else DEFAULT_CXR_ROOT


def _box_from_manifest(raw: dict) -> Box:
    x, y, w, h = (float(v) for v in raw["bbox_xywh_256"])
    kind = "anatomy" if str(raw.get("kind", "")).startswith("anatomy") else "finding"
    label = str(raw.get("label", ""))
    finding = None
    if kind == "finding":
        mapped = NIH_TO_FINDINGS.get(label) or NIH_TO_FINDINGS.get({"Infiltrate": "Infiltration"}.get(label, label))
        finding = mapped[0] if mapped else None
    return Box(label=label, finding=finding, x=x, y=y, w=w, h=h, kind=kind)


def sample_from_manifest_row(row: dict, root: Path) -> Sample:
    """One manifest row -> Sample; KeyError/ValueError on malformed rows (caller records the problem)."""
    source = str(row["source"])
    labels = [str(x) for x in row.get("labels") or []]
    findings = findings_from_source_labels(labels, source)
    for b in row.get("boxes") or []:
        if str(b.get("kind", "")) == "finding" and b.get("label") in ("Infiltrate",):
            findings.setdefault("Lung Opacity", 1)
    rf, ri = str(row.get("report_findings") or ""), str(row.get("report_impression") or "")
    return Sample(
        image_id=str(row["image_id"]),
        patient_id=str(row.get("patient_group") or row["patient_id"]),
        study_id=str(row.get("study_id") or row["image_id"]),
        split=str(row["split"]),
        source=source,
        view=str(row.get("view_group") or view_group(row.get("view"))),
        labels=labels,
        findings=findings,
        boxes=[_box_from_manifest(b) for b in row.get("boxes") or []],
        report_findings=rf,
        report_impression=ri,
        report_is_real=bool(rf or ri),
        image_path=root / str(row["file"]),
        license=str(row.get("license") or ""),
        extra={
            k: row.get(k)
            for k in ("sex", "age", "text", "text_type", "extra", "split_group", "orig_size", "geometry")
            if row.get(k) not in (None, "")
        },
    )


def load_cxr(
    root: Path | str | None = None,
    splits: Iterable[str] = ("train", "val"),
    *,
    sources: Iterable[str] | None = None,
    check_files: bool = True,
    limit: int | None = None,
) -> Dataset:
    """Read ``manifest.jsonl`` under ``root`` keeping ``splits`` (and ``sources`` if given).

    Rows whose JSON is broken, whose fields are missing, or whose image file is absent are recorded in
    ``Dataset.problems`` (path and reason) and skipped. ``limit`` keeps the first N usable rows (tests)."""
    root = Path(root) if root is not None else default_cxr_root()
    splits = tuple(splits)
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"unknown split(s) {bad}; expected some of {SPLITS}")
    manifest = root / "manifest.jsonl"
    if not manifest.is_file():
        raise EmptyDatasetError(f"{manifest}: manifest not found")
    keep_sources = set(sources) if sources is not None else None
    samples: list[Sample] = []
    problems: list[Problem] = []
    with open(manifest, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = Path(f"{manifest}:{lineno}")
            try:
                row = json.loads(line)
                if row.get("split") not in splits:
                    continue
                if keep_sources is not None and row.get("source") not in keep_sources:
                    continue
                sample = sample_from_manifest_row(row, root)
            except json.JSONDecodeError as exc:
                problems.append(Problem(where, f"broken JSON ({exc.msg})"))
                continue
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(Problem(where, f"malformed row ({type(exc).__name__}: {exc})"))
                continue
            if check_files and (sample.image_path is None or not sample.image_path.is_file()):
                problems.append(Problem(sample.image_path or where, "image file missing"))
                continue
            samples.append(sample)
            if limit is not None and len(samples) >= limit:
                break
    return Dataset(samples, problems, name=f"cxr[{','.join(splits)}]")
