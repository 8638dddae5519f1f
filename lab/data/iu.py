"""Reader for the IU X-ray (Open-i) report texts: text_only/iu_xray_reports.jsonl."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class IUReport:
    uid: str
    findings: str
    impression: str
    mesh_major: list[str] = field(default_factory=list)
    mesh_automatic: list[str] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    indication: str = ""
    comparison: str = ""
    image_views: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """Findings then impression, the text the labeler reads."""
        return " ".join(t.strip() for t in (self.findings, self.impression) if t and t.strip())


def default_iu_path() -> Path:
    from lab.data.cxr import default_cxr_root

    return default_cxr_root() / "text_only" / "iu_xray_reports.jsonl"


def load_iu_reports(path: Path | str | None = None, *, problems: list | None = None) -> list[IUReport]:
    """All reports of the JSONL file; broken lines are skipped (and appended to ``problems`` if given)."""
    path = Path(path) if path is not None else default_iu_path()
    out: list[IUReport] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                out.append(
                    IUReport(
                        uid=str(r["uid"]),
                        findings=str(r.get("findings") or ""),
                        impression=str(r.get("impression") or ""),
                        mesh_major=[str(x) for x in r.get("mesh_major") or []],
                        mesh_automatic=[str(x) for x in r.get("mesh_automatic") or []],
                        image_ids=[str(x) for x in r.get("image_ids") or []],
                        indication=str(r.get("indication") or ""),
                        comparison=str(r.get("comparison") or ""),
                        image_views={str(k): str(v) for k, v in (r.get("image_views") or {}).items()},
                    )
                )
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                if problems is not None:
                    from lab.data.dataset import Problem

                    problems.append(Problem(Path(f"{path}:{lineno}"), f"broken report line ({exc})"))
    return out
