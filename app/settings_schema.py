"""What each setting in settings.json means, its type, its limits, and whether a restart is needed.

The Settings dialog is built from this table and validates through it, so every key the application reads
has a place in the dialog (tests check that) and a bad value is refused with a sentence instead of being
written. Qt-free.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SettingSpec:
    key: str
    label: str
    kind: str  # bool | int | float | text | choice | path | dir | json
    default: Any
    page: str
    help: str = ""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    restart: bool = False
    check: Callable[[Any], str] | None = None  # extra rule: returns a problem or ''
    optional: bool = True  # an empty path / text is allowed
    internal: bool = False  # remembered by the app (layouts, last user): shown read-only, never typed
    json_type: type | None = field(default=None)


def _device(value: str) -> str:
    return "" if re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", value or "") else \
        "device must be auto, cpu, cuda, cuda:N or mps"


def _engines() -> tuple[str, ...]:
    try:
        from engines.backends.registry import available_backends

        return tuple(sorted(available_backends()))
    except Exception:  # noqa: BLE001 - the list is a convenience; typing a name still works
        return ("diffusion",)


def _db_url(value: str) -> str:
    if not value:
        return ""
    try:
        from sqlalchemy.engine import make_url

        make_url(value)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several types
        return f"not a database URL ({exc})"
    return ""


SPECS: tuple[SettingSpec, ...] = (
    # -- reading -------------------------------------------------------------------------------------
    SettingSpec("startup_view", "On start-up show", "choice", "worklist", "Reading",
                "The worklist, or the study that was open when RadStation last closed",
                choices=("worklist", "last_study")),
    SettingSpec("worklist_refresh_s", "Worklist refresh (seconds, 0 = off)", "float", 15, "Reading",
                "How often the worklist re-reads the database while it is shown", minimum=0, maximum=3600),
    SettingSpec("hanging_protocols_enabled", "Use hanging protocols", "bool", True, "Reading",
                "Lay studies out by modality, series and priors (current + prior, PA + lateral) when opened"),
    SettingSpec("hanging_protocols", "Site hanging protocols (JSON list)", "json", [], "Reading",
                'e.g. [{"name": "Mammo", "layout": "2x2", "modalities": ["MG"], "slots": [{"source": "current"}]}]',
                json_type=list),
    SettingSpec("anonymise_overlays", "Hide patient name/ID in image overlays", "bool", False, "Reading",
                "For teaching and screen sharing"),
    SettingSpec("site_templates_dir", "Site report templates folder", "dir", "", "Reading",
                "Shared templates and macros for every user of this workstation (empty: in the data folder)"),
    SettingSpec("report_letterhead", "Report letterhead (JSON file)", "path", "", "Reading",
                "Header, footer and logo of the PDF report (empty: the bundled letterhead)"),
    SettingSpec("fhir_patient_id_system", "FHIR patient identifier system", "text", "", "Reading",
                "URI of the site's patient IDs in exported FHIR bundles, when the study names no issuer"),
    # -- AI engine -------------------------------------------------------------------------------------
    SettingSpec("engine", "Engine", "choice", "diffusion", "AI engine", "Which engine drafts and answers",
                choices=(), restart=True),
    SettingSpec("engine_device", "Device", "text", "auto", "AI engine", "auto, cpu, cuda, cuda:N or mps",
                check=_device, restart=True),
    SettingSpec("engine_model_path", "Model folder", "dir", "", "AI engine",
                "Weights to load (empty: the shipped default weights)", restart=True),
    SettingSpec("engine_threads", "CPU threads (0 = automatic)", "int", 0, "AI engine", minimum=0, maximum=256,
                restart=True),
    SettingSpec("engine_backend", "Backbone runtime", "choice", "onnx-int8", "AI engine",
                "Built-in engine: onnx-int8 (onnxruntime, drafts with int8 matrix products on CPUs with VNNI: "
                "faster, scores differ slightly; float32 onnx elsewhere), onnx (onnxruntime, float32; torch when it "
                "is missing), compiled (torch.compile, compiled in the background) or torch",
                choices=("onnx-int8", "onnx", "compiled", "torch"), restart=True),
    SettingSpec("engine_options", "Engine options (JSON object)", "json", {}, "AI engine",
                'Backend-specific, e.g. {"max_new_tokens": 120}', json_type=dict, restart=True),
    SettingSpec("auto_draft_on_open", "Draft the report when a study opens", "bool", False, "AI engine"),
    SettingSpec("draft_mode", "Draft style", "choice", "", "AI engine",
                "Empty: the engine's default; sentences: findings picked sentence by sentence; free: free text",
                choices=("", "sentences", "free")),
    SettingSpec("uncertain_word_threshold", "Shade AI draft text at uncertainty (0-1)", "float", 0.48, "AI engine",
                "Unreviewed AI sentences (words in free-text drafts) whose uncertainty (1 - the engine's confidence) "
                "is at least this are shaded. The default is chosen on training drafts: from this score on, a "
                "sentence contradicted the image's labels more often than not (radstation-eval uncertain-words).",
                minimum=0.0, maximum=1.0),
    SettingSpec("similar_k", "Similar studies to show", "int", 5, "AI engine", minimum=1, maximum=50),
    SettingSpec("similar_on_open", "Find similar studies when a study opens", "bool", False, "AI engine"),
    SettingSpec("similar_cases_dir", "Similar-case index folder", "dir", "", "AI engine",
                "Signed studies of this site (empty: in the data folder)"),
    SettingSpec("similar_backend", "Similar-case index kind", "choice", "auto", "AI engine",
                "auto: the department's PostgreSQL (pgvector) index when the database is PostgreSQL, else the "
                "folder on this workstation", choices=("auto", "faiss", "pgvector"), restart=True),
    SettingSpec("similar_db_url", "Similar-case database URL", "text", "", "AI engine",
                "A postgresql:// URL for the shared index (empty: the study database)", check=_db_url, restart=True),
    SettingSpec("similar_dev_index", "Development similar-case index", "dir", "", "AI engine",
                "An index of curated training data (python -m lab.build.case_index), for development only: shown "
                "under Similar studies, and the cases drafts vote with while the site's own index has too few "
                "(empty: none)"),
    # -- security --------------------------------------------------------------------------------------
    SettingSpec("session_timeout_minutes", "Lock the screen after (minutes idle)", "float", 30, "Security",
                "Any key, click or scroll in the application counts as activity", minimum=1, maximum=720),
    SettingSpec("auth_max_failures", "Failed log-ins before lock-out", "int", 5, "Security", minimum=1, maximum=20),
    SettingSpec("auth_lockout_minutes", "Lock-out (minutes)", "float", 15, "Security", minimum=1, maximum=1440),
    SettingSpec("kiosk_mode", "Kiosk mode: read without logging in", "bool", False, "Security",
                "Shows patient data before anyone logs in. Only for a site that controls access otherwise."),
    # -- PACS / database ----------------------------------------------------------------------------------
    SettingSpec("pacs_prefetch", "Prior prefetch (JSON object)", "json",
                {"enabled": False, "node": "", "max_priors": 3, "same_modality": True}, "PACS",
                "enabled, node (a PACS node name), max_priors (0-20), same_modality", json_type=dict),
    SettingSpec("pacs_cget_transport", "C-GET transport", "choice", "auto", "PACS",
                "auto: DCMTK's getscu when it is installed and the node is not TLS (faster, less CPU), else "
                "pynetdicom; getscu proposes uncompressed transfer syntaxes only (see docs/network_import.md)",
                choices=("auto", "pynetdicom", "dcmtk")),
    SettingSpec("db_url", "Database URL (empty: local SQLite)", "text", "", "PACS",
                "Any SQLAlchemy URL, e.g. postgresql+psycopg://user@host/radstation; RADSTATION_DB_URL wins",
                check=_db_url, restart=True),
    # -- remembered by the app ------------------------------------------------------------------------------
    SettingSpec("pacs_nodes", "PACS nodes", "json", [], "PACS", "Edited with PACS > Nodes and Storage SCP",
                internal=True, json_type=list),
    SettingSpec("storage_scp", "Storage SCP", "json", {}, "PACS", "Edited with PACS > Nodes and Storage SCP",
                internal=True, json_type=dict),
    SettingSpec("key_bindings", "Remapped keys", "json", {}, "Reading", "Edited with Tools > Keyboard shortcuts",
                internal=True, json_type=dict),
    SettingSpec("screen_layouts", "Saved screen layouts", "json", {}, "Reading", "View > Save screen layout",
                internal=True, json_type=dict),
    SettingSpec("window_state", "Window layout at last exit", "json", {}, "Reading", internal=True, json_type=dict),
    SettingSpec("last_user", "Last user", "text", "", "Security", internal=True),
    SettingSpec("last_study_uid", "Last study", "text", "", "Reading", internal=True),
)
BY_KEY = {s.key: s for s in SPECS}


def engine_choices() -> tuple[str, ...]:
    return _engines()


def validate(spec: SettingSpec, value: Any) -> str:
    """'' when `value` is acceptable for `spec`, else a sentence saying why not."""
    name = spec.label
    if spec.kind == "bool":
        return "" if isinstance(value, bool) else f"{name}: must be on or off"
    if spec.kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or (spec.kind == "int" and
                                                                              not isinstance(value, int)):
            return f"{name}: must be a {'whole ' if spec.kind == 'int' else ''}number"
        if spec.minimum is not None and value < spec.minimum:
            return f"{name}: at least {spec.minimum:g}"
        if spec.maximum is not None and value > spec.maximum:
            return f"{name}: at most {spec.maximum:g}"
    if spec.kind == "choice" and spec.choices and value not in spec.choices:
        return f"{name}: one of {', '.join(spec.choices)}"
    if spec.kind in ("path", "dir", "text", "choice") and not isinstance(value, str):
        return f"{name}: must be text"
    if spec.kind in ("path", "dir") and value:
        p = Path(value).expanduser()
        if spec.kind == "dir" and not p.is_dir():
            return f"{name}: folder {value} does not exist"
        if spec.kind == "path" and not p.is_file():
            return f"{name}: file {value} does not exist"
    if spec.kind == "json":
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            return f"{name}: not valid JSON"
        if spec.json_type is not None and not isinstance(value, spec.json_type):
            return f"{name}: must be a JSON {'list' if spec.json_type is list else 'object'}"
    if spec.check is not None:
        problem = spec.check(value)
        if problem:
            return f"{name}: {problem}"
    if spec.key == "pacs_prefetch":
        from app.pacs.prefetch import PrefetchSettings

        p = PrefetchSettings(enabled=bool(value.get("enabled", False)), node=str(value.get("node", "")),
                             max_priors=value.get("max_priors", 3), same_modality=bool(value.get("same_modality", True)))
        if problems := p.problems():
            return f"{name}: {'; '.join(problems)}"
    if spec.key == "hanging_protocols":
        from viewer.hanging import load_protocols

        _, problems = load_protocols(value)
        if problems:
            return f"{name}: {'; '.join(problems)}"
    return ""


def validate_all(values: dict[str, Any]) -> list[str]:
    return [p for k, v in values.items() if k in BY_KEY and (p := validate(BY_KEY[k], v))]
