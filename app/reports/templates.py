"""Report templates per exam type, read from editable JSON files in resources/templates/.

A site edits or adds `<exam_type>.json` files; nothing is compiled in. Each file holds
`{"exam_type", "title", "modality", "procedure_code": {...}, "sections": {section: text}}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.reports.content import SECTION_KEYS, ReportContent

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "resources" / "templates"


class TemplateError(ValueError):
    """A template file that is missing or malformed."""


@dataclass(frozen=True)
class ReportTemplate:
    exam_type: str
    title: str
    modality: str
    procedure_code: dict[str, str]
    content: ReportContent

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "<template>") -> ReportTemplate:
        try:
            sections = data["sections"]
            exam_type = str(data["exam_type"])
        except (KeyError, TypeError) as exc:
            raise TemplateError(f"{source}: needs 'exam_type' and 'sections'") from exc
        if not isinstance(sections, dict) or not set(sections) <= set(SECTION_KEYS):
            raise TemplateError(f"{source}: 'sections' must map some of {SECTION_KEYS} to text")
        return cls(
            exam_type=exam_type,
            title=str(data.get("title", exam_type)),
            modality=str(data.get("modality", "")),
            procedure_code=dict(data.get("procedure_code") or {}),
            content=ReportContent({k: str(v) for k, v in sections.items()}),
        )


def available_templates(directory: Path | None = None) -> dict[str, ReportTemplate]:
    """All templates in `directory`, by exam type; a broken file raises with its name."""
    directory = directory or TEMPLATES_DIR
    out: dict[str, ReportTemplate] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise TemplateError(f"cannot read template {path}: {exc}") from exc
        tpl = ReportTemplate.from_json(data, str(path))
        out[tpl.exam_type] = tpl
    return out


def load_template(exam_type: str, directory: Path | None = None) -> ReportTemplate:
    templates = available_templates(directory)
    if exam_type not in templates:
        raise TemplateError(f"no template for exam type {exam_type!r}; have: {', '.join(sorted(templates))}")
    return templates[exam_type]


def guess_exam_type(modality: str, description: str = "") -> str:
    """Pick a template from DICOM modality + study description (chest radiograph is the default)."""
    desc = description.lower()
    if modality.upper() == "CT":
        return "ct_chest" if ("chest" in desc or "thorax" in desc or not desc) else "ct_generic"
    return "chest_xray"
