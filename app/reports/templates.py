"""Report templates: built-in, site and personal, matched to the exam by modality, body part and procedure.

A template is one JSON file (`<id>.json`) read at run time; nothing is compiled in. Three places hold them,
later ones overriding earlier ones with the same id for the matching rules' tie-break:

* built-in: `resources/templates/` (shipped, read-only in an installed bundle),
* site: `<data dir>/templates/site/` or the `site_templates_dir` setting (shared by the workstation's users),
* personal: `<data dir>/templates/personal/<username>/`.

File keys: `exam_type` (the id), `title`, `modality`, `procedure_code` (`value`/`scheme`/`meaning`, used in
the SR and FHIR exports), `sections` (any of indication, technique, comparison, findings, impression) and
`match` (`modalities`, `body_parts`, `procedures`: keywords looked for in the study description). Section
text may hold fields, `[option one|option two]` (a pick-list) or `[label]` (free text); see
`app/reports/fields.py`. A report is never signed with a field left unfilled.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from app.reports.content import SECTION_KEYS, ReportContent

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "resources" / "templates"
SCOPES: tuple[str, ...] = ("builtin", "site", "personal")
SCOPE_LABELS = {"builtin": "Built-in", "site": "Site", "personal": "Personal"}
_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
# Body-part words radiologists write in study descriptions, mapped to DICOM BodyPartExamined terms.
BODY_PART_WORDS: dict[str, tuple[str, ...]] = {
    "CHEST": ("chest", "thorax", "thoracic", "lung", "lungs", "cxr"),
    "HEAD": ("head", "brain", "cranial", "skull"),
    "ABDOMEN": ("abdomen", "abdominal", "abd", "liver"),
    "PELVIS": ("pelvis", "pelvic"),
    "SPINE": ("spine", "spinal", "cervical", "thoracic spine", "lumbar", "cspine", "lspine"),
    "KNEE": ("knee",),
    "NECK": ("neck",),
}


class TemplateError(ValueError):
    """A template file that is missing or malformed (the message names the file and the problem)."""


@dataclass(frozen=True)
class TemplateMatch:
    """When a template applies: any listed modality, body part, procedure keyword. Empty lists match all."""

    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any, source: str) -> TemplateMatch:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise TemplateError(f"{source}: 'match' must be an object")
        out = {}
        for key in ("modalities", "body_parts", "procedures"):
            value = data.get(key, [])
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TemplateError(f"{source}: 'match.{key}' must be a list of text")
            clean = [v.strip() for v in value if v.strip()]
            out[key] = tuple(v.lower() if key == "procedures" else v.upper() for v in clean)
        return cls(**out)

    def to_json(self) -> dict[str, list[str]]:
        return {"modalities": list(self.modalities), "body_parts": list(self.body_parts),
                "procedures": list(self.procedures)}


@dataclass(frozen=True)
class ReportTemplate:
    exam_type: str
    title: str
    modality: str
    procedure_code: dict[str, str]
    content: ReportContent
    match: TemplateMatch = field(default_factory=TemplateMatch)
    scope: str = "builtin"
    owner: str = ""  # the user of a personal template
    path: Path | None = None

    @property
    def key(self) -> str:
        """Unique across scopes: `personal:rad:chest_xray`, `site:ct_head`, `builtin:generic`."""
        return ":".join(p for p in (self.scope, self.owner, self.exam_type) if p)

    @property
    def label(self) -> str:
        return f"{self.title} ({SCOPE_LABELS.get(self.scope, self.scope).lower()})"

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "<template>", *, scope: str = "builtin",
                  owner: str = "", path: Path | None = None) -> ReportTemplate:
        if not isinstance(data, dict):
            raise TemplateError(f"{source}: a template is a JSON object")
        try:
            sections = data["sections"]
            exam_type = str(data["exam_type"]).strip()
        except (KeyError, TypeError) as exc:
            raise TemplateError(f"{source}: needs 'exam_type' and 'sections'") from exc
        if not exam_type:
            raise TemplateError(f"{source}: 'exam_type' is empty")
        if not isinstance(sections, dict) or not set(sections) <= set(SECTION_KEYS):
            raise TemplateError(f"{source}: 'sections' must map some of {SECTION_KEYS} to text")
        if not all(isinstance(v, str) for v in sections.values()):
            raise TemplateError(f"{source}: every section in 'sections' must be text")
        code = data.get("procedure_code") or {}
        if not isinstance(code, dict):
            raise TemplateError(f"{source}: 'procedure_code' must be an object with value/scheme/meaning")
        return cls(
            exam_type=exam_type,
            title=str(data.get("title", exam_type)),
            modality=str(data.get("modality", "")),
            procedure_code={str(k): str(v) for k, v in code.items()},
            content=ReportContent({k: str(v) for k, v in sections.items()}),
            match=TemplateMatch.from_json(data.get("match"), source),
            scope=scope,
            owner=owner,
            path=path,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"exam_type": self.exam_type, "title": self.title, "modality": self.modality,
                               "procedure_code": dict(self.procedure_code),
                               "match": self.match.to_json(), "sections": self.content.to_dict()}
        return out


@dataclass(frozen=True)
class ExamInfo:
    """What the template choice looks at: the study's modalities, body parts and description."""

    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    description: str = ""

    def body_parts_with_description(self) -> set[str]:
        """Body parts from the headers plus the ones the description names (headers are often empty)."""
        parts = {p.upper() for p in self.body_parts if p}
        words = set(re.findall(r"[a-z]+", self.description.lower()))
        text = " ".join(sorted(words))
        for part, names in BODY_PART_WORDS.items():
            if any((n in words) if " " not in n else (n in text) for n in names):
                parts.add(part)
        return parts


def score(template: ReportTemplate, exam: ExamInfo) -> float | None:
    """How well `template` fits `exam` (higher is better); None when it does not apply at all.

    A listed modality or body part that the exam contradicts rules the template out, so a brain MR never
    gets a chest radiograph template. Procedure keywords in the description weigh most, then body part,
    then modality; personal beats site beats built-in on a tie.
    """
    m = template.match
    mods = {x.upper() for x in exam.modalities if x}
    parts = exam.body_parts_with_description()
    total = 0.0
    if m.modalities:
        if not mods & set(m.modalities):
            return None
        total += 1
    if m.body_parts:
        if parts and not parts & set(m.body_parts):
            return None
        total += 2 if parts else -0.5  # no body part known: prefer the template that assumes none
    if m.procedures:
        desc = exam.description.lower()
        if any(re.search(rf"\b{re.escape(p)}\b", desc) for p in m.procedures):
            total += 4
    return total + {"personal": 0.5, "site": 0.25}.get(template.scope, 0.0)


_CACHE: dict[tuple[str, str, str, bool], tuple[tuple, list[ReportTemplate], list[str]]] = {}


def _read_dir(directory: Path, scope: str, owner: str = "", strict: bool = True,
              problems: list[str] | None = None) -> list[ReportTemplate]:
    """The folder's templates, parsed again only when a file in it changed (opening a study is cheap)."""
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.glob("*.json") if p.name != "macros.json")
    try:
        signature = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    except OSError:
        signature = ()
    key = (str(directory), scope, owner, strict)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == signature and signature:
        if problems is not None:
            problems.extend(cached[2])
        return list(cached[1])
    found: list[str] = []
    out = _parse_dir(files, scope, owner, strict, found)
    _CACHE[key] = (signature, out, found)
    if problems is not None:
        problems.extend(found)
    return list(out)


def _parse_dir(files: list[Path], scope: str, owner: str, strict: bool, problems: list[str]) -> list[ReportTemplate]:
    out: list[ReportTemplate] = []
    for path in files:
        try:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise TemplateError(f"cannot read template {path}: {exc}") from exc
            out.append(ReportTemplate.from_json(data, str(path), scope=scope, owner=owner, path=path))
        except TemplateError as exc:
            if strict:
                raise
            problems.append(str(exc))
    return out


def available_templates(directory: Path | None = None) -> dict[str, ReportTemplate]:
    """All templates in one directory (default: the built-in ones), by exam type; a broken file raises."""
    return {t.exam_type: t for t in _read_dir(directory or TEMPLATES_DIR, "builtin")}


def load_template(exam_type: str, directory: Path | None = None) -> ReportTemplate:
    """A template by id: from `directory` when given, otherwise personal/site/built-in (first found)."""
    if directory is not None:
        templates = available_templates(directory)
    else:
        templates = {}
        for tpl in TemplateLibrary.default().templates():
            templates.setdefault(tpl.exam_type, tpl)
    if exam_type not in templates:
        raise TemplateError(f"no template for exam type {exam_type!r}; have: {', '.join(sorted(templates))}")
    return templates[exam_type]


def guess_exam_type(modality: str, description: str = "", body_part: str = "") -> str:
    """The id of the best built-in/site template for a modality + description (+ body part)."""
    exam = ExamInfo((modality,) if modality else (), (body_part,) if body_part else (), description)
    best = TemplateLibrary.default().choose(exam)
    return best.exam_type if best is not None else "generic"


class TemplateLibrary:
    """Templates from the built-in, site and personal folders; reads tolerate a broken file (listed in
    `problems`) so one bad site template does not stop reporting."""

    def __init__(self, builtin_dir: Path | None = None, site_dir: Path | None = None,
                 personal_root: Path | None = None) -> None:
        from app.paths import data_dir

        self.builtin_dir = builtin_dir or TEMPLATES_DIR
        self.site_dir = site_dir or (data_dir() / "templates" / "site")
        self.personal_root = personal_root or (data_dir() / "templates" / "personal")
        self.problems: list[str] = []

    @classmethod
    def default(cls, settings: Any = None) -> TemplateLibrary:
        """The library for this installation; the `site_templates_dir` setting moves the site folder."""
        site = ""
        try:
            from app.settings import current_settings

            site = (settings or current_settings()).get("site_templates_dir", "") or ""
        except Exception:  # noqa: BLE001 - an unreadable settings file must not stop reporting
            site = ""
        return cls(site_dir=Path(site).expanduser() if site else None)

    def personal_dir(self, username: str) -> Path:
        if not _ID.match(username.lower()):
            raise TemplateError(f"user name {username!r} cannot name a template folder")
        return self.personal_root / username

    def dir_for(self, scope: str, username: str = "") -> Path:
        if scope == "site":
            return self.site_dir
        if scope == "personal":
            return self.personal_dir(username)
        if scope == "builtin":
            return self.builtin_dir
        raise TemplateError(f"unknown template scope {scope!r}")

    def templates(self, username: str = "") -> list[ReportTemplate]:
        """Personal (this user's), then site, then built-in templates."""
        self.problems = []
        out: list[ReportTemplate] = []
        if username:
            out += _read_dir(self.personal_dir(username), "personal", username, strict=False, problems=self.problems)
        out += _read_dir(self.site_dir, "site", strict=False, problems=self.problems)
        out += _read_dir(self.builtin_dir, "builtin", strict=False, problems=self.problems)
        return out

    def ranked(self, exam: ExamInfo, username: str = "") -> list[tuple[ReportTemplate, float]]:
        """Templates that apply to `exam`, best first."""
        scored = [(t, s) for t in self.templates(username) if (s := score(t, exam)) is not None]
        return sorted(scored, key=lambda ts: -ts[1])

    def choose(self, exam: ExamInfo, username: str = "") -> ReportTemplate | None:
        ranked = self.ranked(exam, username)
        return ranked[0][0] if ranked else None

    def find(self, key: str, username: str = "") -> ReportTemplate | None:
        """A template by `key` (scope-qualified) or by bare id (first in personal/site/built-in order)."""
        for tpl in self.templates(username):
            if key in (tpl.key, tpl.exam_type):
                return tpl
        return None

    def save(self, template: ReportTemplate, scope: str, username: str = "") -> ReportTemplate:
        """Write `template` as a site or personal file (atomically); returns it as read back."""
        if scope not in ("site", "personal"):
            raise TemplateError("built-in templates are read-only: save as a site or personal template")
        if not _ID.match(template.exam_type):
            raise TemplateError(f"template id {template.exam_type!r}: use lower-case letters, digits, '_' or '-'")
        if not template.title.strip():
            raise TemplateError("a template needs a title")
        directory = self.dir_for(scope, username)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{template.exam_type}.json"
        data = template.to_json()
        ReportTemplate.from_json(data, str(path))  # refuse to write what could not be read back
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tpl-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        os.replace(tmp, path)
        return replace(template, scope=scope, owner=username if scope == "personal" else "", path=path)

    def delete(self, template: ReportTemplate) -> None:
        if template.scope == "builtin" or template.path is None:
            raise TemplateError("built-in templates cannot be deleted")
        template.path.unlink(missing_ok=True)
