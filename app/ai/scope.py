"""The input gate as the app sees it: job params that feed it, the sentence a panel shows, and the audit
record of an override.

The gate itself runs in the engine worker (engines.scope.guard): every job that reads images returns its
scope decision (`result.scope`, a ScopeDecision), and an out-of-scope job returns that alone (an `OutOfScope`)
unless it was submitted with `override_scope`. An override is the user's explicit choice; when a job ran
under one, the app writes it to the audit log (action `ai_scope_override`) and the draft's provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

from app.db.database import Database
from app.reports import audit
from engines.backends.results import JobResult, OutOfScope
from engines.scope.gate import ScopeDecision
from engines.scope.guard import OUT_OF_SCOPE

__all__ = ["OUT_OF_SCOPE", "gate_params", "is_out_of_scope", "overridden", "record_override", "scope_dict",
           "scope_line"]


def gate_params(images: Sequence[Any], override: bool = False) -> dict[str, Any]:
    """The params a job needs for the gate: each image's header (StudyImage.header) and the override flag."""
    return {"headers": tuple(dict(getattr(im, "header", {}) or {}) for im in images), "override_scope": bool(override)}


def is_out_of_scope(result: JobResult | dict[str, Any]) -> TypeGuard[OutOfScope]:
    return isinstance(result, OutOfScope)


def scope_dict(result: JobResult) -> dict[str, Any] | None:
    """The gate's decision in the form the panels, the report provenance and the audit log keep; None when the
    job read no image (or the engine did not say)."""
    scope: ScopeDecision | None = result.scope
    return scope.to_dict() if scope is not None else None


def overridden(scope: dict[str, Any] | None) -> bool:
    """True when the job ran on an out-of-scope input because the user overrode the gate."""
    return bool(scope) and bool(scope.get("override")) and not bool(scope.get("in_scope"))


def scope_line(scope: dict[str, Any] | None) -> str:
    """The sentence a panel shows; empty when the engine did not say (an old worker)."""
    if not scope:
        return ""
    return str(scope.get("summary") or "")


def record_override(db: Database | None, username: str, study_uid: str, job: str, scope: dict[str, Any]) -> bool:
    """Append the override to the hash-chained audit log; False when there is no database to write to."""
    if db is None:
        return False
    details = {"study_uid": study_uid, "job": job, "reason": str(scope.get("reason", "")),
               "summary": scope_line(scope),
               "images": [{k: im.get(k) for k in ("index", "reasons", "ood_score", "frontal_probability")}
                          for im in scope.get("images") or []]}
    # retried while another writer holds the database: an override the radiologist made is never lost
    db.run_write(lambda s: audit.append(s, "ai_scope_override", username or "unknown", "study", study_uid, details))
    return True
