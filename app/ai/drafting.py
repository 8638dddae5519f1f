"""Drafting reports through the engine: one study on demand or a batch from the worklist.

Each finished draft is stored (AiDraft: engine, weights hash, seed, time, images used) and handed on
through `draftReady(study_uid, draft)`; the main window passes it to ReportEditor.load_ai_draft(
draft["findings"], draft["impression"], draft["provenance"], draft["token_uncertainty"]). Each token there
is {text, confidence, uncertainty (= 1 - confidence), entropy, section, start, end, step}.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from PySide6.QtCore import QObject, Signal

from app.ai.ai_store import save_draft
from app.ai.engine_client import EngineClient
from app.ai.scope import gate_params, is_out_of_scope, overridden, record_override, scope_dict, scope_line
from app.ai.section_order import template_section_order
from app.ai.study_images import StudyImage, describe_used, order_for_engine
from app.db.database import Database
from engines.backends.results import JobResult, TextOutput
from engines.worker.requests import DraftRequest


@dataclass
class _Pending:
    study_uid: str
    images: list[StudyImage]
    batch: bool
    username: str = ""


@dataclass
class _Batch:
    jobs: set[str] = field(default_factory=set)
    total: int = 0
    done: int = 0
    failed: int = 0
    out_of_scope: int = 0
    fraction: dict[str, float] = field(default_factory=dict)


class DraftService(QObject):
    """draftReady(study_uid, draft dict) | draftFailed(study_uid, message) | draftStarted(study_uid, job_id) |
    draftOutOfScope(study_uid, scope dict: the input gate stopped it, nothing was drafted) |
    batchProgress(value, maximum) | batchFinished(drafted, failed)."""

    draftReady = Signal(str, object)
    draftFailed = Signal(str, str)
    draftOutOfScope = Signal(str, object)
    draftStarted = Signal(str, str)
    batchProgress = Signal(int, int)
    batchFinished = Signal(int, int)

    def __init__(self, client: EngineClient, db: Database | None = None, parent: QObject | None = None,
                 steps: int | None = None, mode: str | None = None) -> None:
        super().__init__(parent)
        self.client, self.db, self.steps = client, db, steps
        self.mode = mode  # "sentences" | "free" | None (the engine's default); the 'draft_mode' setting
        self._pending: dict[str, _Pending] = {}
        self._batch: _Batch | None = None
        self.last_batch_out_of_scope = 0  # of the failed studies of the last batch, those the input gate stopped
        client.finished.connect(self._on_finished)
        client.failed.connect(self._on_failed)
        client.cancelled.connect(lambda jid: self._on_failed(jid, "cancelled"))
        client.progress.connect(self._on_progress)

    def draft(self, study_uid: str, images: list[StudyImage], seed: int = 0, *, override: bool = False,
              username: str = "", _batch: bool = False) -> str:
        """Queue a draft of one study; the images go frontal-first so single-image engines read the PA/AP.
        The engine's input gate stops an out-of-scope study (draftOutOfScope) unless `override` (the user's
        explicit choice, audited under `username`)."""
        ordered = order_for_engine(images)
        if not ordered:
            raise ValueError(f"study {study_uid} has no image to draft from")
        request = DraftRequest(images=tuple(im.pixels for im in ordered), seed=int(seed),
                               section_order=tuple(self.section_order(study_uid, ordered)),
                               steps=int(self.steps) if self.steps else None, mode=str(self.mode) if self.mode else None,
                               **gate_params(ordered, override))
        job_id = self.client.submit(request, label=self._label(study_uid))
        self._pending[job_id] = _Pending(study_uid, ordered, _batch, username)
        self.draftStarted.emit(study_uid, job_id)
        return job_id

    def section_order(self, study_uid: str, images: list[StudyImage]) -> tuple[str, ...]:
        return template_section_order(self.db, study_uid, images)

    def _label(self, study_uid: str) -> str:
        """'Draft DOE, JANE · ACC123' (patient and accession, as the worklist shows them), not a UID."""
        if self.db is not None:
            from sqlalchemy import select

            from app.db.models import Study
            from app.formatting import format_date, person_name

            try:
                with self.db.session() as s:
                    study = s.scalar(select(Study).where(Study.study_uid == study_uid))
                    if study is not None:
                        who = person_name(study.patient.name) or study.patient.patient_id
                        what = study.accession or format_date(study.study_date) or study.description
                        return f"Draft {who} \u00b7 {what}" if what else f"Draft {who}"
            except Exception:  # noqa: BLE001 - a label is never worth failing a draft
                pass
        return f"Draft {study_uid[-16:]}"

    def draft_batch(self, studies: list[tuple[str, list[StudyImage]]], seed: int = 0) -> list[str]:
        """Pre-draft several studies; one progress bar (batchProgress) follows them all."""
        studies = [(uid, imgs) for uid, imgs in studies if order_for_engine(imgs)]
        if not studies:
            return []
        self._batch = batch = _Batch(total=len(studies))
        self.last_batch_out_of_scope = 0
        self.batchProgress.emit(0, batch.total * 100)
        for uid, imgs in studies:
            batch.jobs.add(self.draft(uid, imgs, seed, _batch=True))
        return sorted(batch.jobs)

    def cancel_batch(self) -> None:
        if self._batch is not None:
            for job_id in sorted(self._batch.jobs):
                self.client.cancel(job_id)

    @property
    def batch_running(self) -> bool:
        return self._batch is not None

    # -- job events -----------------------------------------------------------------------------------
    def _on_progress(self, job_id: str, done: int, total: int) -> None:
        batch = self._batch
        if batch is not None and job_id in batch.jobs and total > 0:
            batch.fraction[job_id] = done / total
            self._emit_batch()

    def _on_finished(self, job_id: str, result: JobResult) -> None:
        pending = self._pending.get(job_id)
        if pending is None:
            return
        scope = scope_dict(result)
        if is_out_of_scope(result):  # nothing drafted, nothing stored: say why
            self._pending.pop(job_id)
            self._batch_step(job_id, ok=False, out_of_scope=True)
            self.draftOutOfScope.emit(pending.study_uid, scope or {})
            return
        if not isinstance(result, TextOutput):  # e.g. a refusal: no draft to show
            self._on_failed(job_id, f"the engine answered with a '{result.kind}' result, not a draft")
            return
        self._pending.pop(job_id)
        extra = result.extra or {}
        used = [int(i) for i in result.images_used]
        used_images = [pending.images[i] for i in used if 0 <= i < len(pending.images)]
        uids = [im.sop_instance_uid for im in used_images]
        draft_id = save_draft(self.db, pending.study_uid, result, uids) if self.db is not None else None
        prov = dict(result.provenance or {})
        told = extra.get("told_findings")
        if told is not None:  # kept with the draft's provenance in the report version
            prov["told_findings"] = ", ".join(told)
        probs = extra.get("finding_probabilities")
        if probs:  # JSON text: the report version keeps provenance values as text (AI results SR reads it)
            prov["finding_probabilities"] = json.dumps(probs, sort_keys=True)
        prov.update({"seed": result.seed, "steps": result.steps, "draft_id": draft_id,
                     "created": datetime.now(UTC).isoformat(timespec="seconds"), "job_id": job_id})
        if scope:  # the input gate's decision travels with the draft (report version provenance)
            prov["scope"] = scope_line(scope)
            if overridden(scope):
                prov["scope_override"] = f"yes, by {pending.username or 'unknown'}"
                record_override(self.db, pending.username, pending.study_uid, "draft", scope)
        draft = {"study_uid": pending.study_uid, "findings": result.findings,
                 "impression": result.impression, "text": result.text,
                 "token_uncertainty": [{**dataclasses.asdict(t), "uncertainty": round(1.0 - float(t.confidence), 4)}
                                       for t in result.tokens],
                 "confidence": result.confidence,
                 "provenance": prov, "images_used": [im.name for im in used_images], "images_used_uids": uids,
                 "images_note": describe_used(pending.images, used), "elapsed_s": result.elapsed_s,
                 "told_findings": told, "sentences": extra.get("sentences"),
                 "draft_mode": extra.get("draft_mode"),
                 "scope": scope,
                 "reading": extra.get("reading") or {},
                 "disagreements": extra.get("disagreements") or [],
                 "stated_uncertain": extra.get("stated_uncertain") or []}
        self._batch_step(job_id, ok=True)
        self.draftReady.emit(pending.study_uid, draft)

    def _on_failed(self, job_id: str, message: str) -> None:
        pending = self._pending.pop(job_id, None)
        if pending is None:
            return
        self._batch_step(job_id, ok=False)
        self.draftFailed.emit(pending.study_uid, message)

    def _batch_step(self, job_id: str, ok: bool, out_of_scope: bool = False) -> None:
        batch = self._batch
        if batch is None or job_id not in batch.jobs:
            return
        batch.jobs.discard(job_id)
        batch.fraction.pop(job_id, None)
        batch.done += 1
        batch.failed += 0 if ok else 1
        batch.out_of_scope += int(out_of_scope)
        self.last_batch_out_of_scope = batch.out_of_scope
        self._emit_batch()
        if not batch.jobs:
            self._batch = None
            self.batchFinished.emit(batch.done - batch.failed, batch.failed)

    def _emit_batch(self) -> None:
        batch = self._batch
        if batch is not None:
            value = batch.done * 100 + int(sum(batch.fraction.values()) * 100)
            self.batchProgress.emit(min(value, batch.total * 100), batch.total * 100)

