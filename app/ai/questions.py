"""Questions about the open study: scope check, the engine's answer with its confidence, history in the DB.

An answer below `min_confidence`, or a question outside what an image shows, is returned as an honest
"cannot answer from this image" (with the reason) and stored that way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.ai.ai_store import qa_history, save_qa
from app.ai.engine_client import EngineClient
from app.ai.question_scope import CANNOT_ANSWER, question_scope
from app.ai.scope import gate_params, is_out_of_scope, overridden, record_override, scope_dict, scope_line
from app.ai.study_images import StudyImage, order_for_engine
from app.db.database import Database
from engines.backends.results import JobResult, Refused, RegionMaps, TextOutput
from engines.worker.requests import AnswerRequest, RegionMapRequest

#: Backend answer modes that pick one of a few fixed answers (engines.backends.diffusion).
CHOICE_MODES = frozenset({"closed", "finding head", "finding reader"})


@dataclass
class _Asked:
    study_uid: str
    question: str
    images: list[StudyImage]
    username: str = ""


class QaService(QObject):
    """answered(study_uid, message) | failed(study_uid, question, error) | regionMap(study_uid, question, map)."""

    answered = Signal(str, object)
    failed = Signal(str, str, str)
    regionMap = Signal(str, str, object)

    def __init__(self, client: EngineClient, db: Database | None = None, parent: QObject | None = None,
                 min_confidence: float = 0.35, region_maps: bool = True, min_choice_confidence: float = 0.6) -> None:
        super().__init__(parent)
        self.client, self.db = client, db
        self.min_confidence = float(min_confidence)
        # A yes/no pick scored between two candidates is >= 0.5 by construction: near 0.5 is a coin flip.
        self.min_choice_confidence = float(min_choice_confidence)
        self.region_maps = region_maps
        self._asked: dict[str, _Asked] = {}
        self._maps: dict[str, _Asked] = {}
        self._local: list[dict[str, Any]] = []  # history of studies not in the database
        client.finished.connect(self._on_finished)
        client.failed.connect(self._on_failed)
        client.cancelled.connect(lambda jid: self._on_failed(jid, "cancelled"))

    def ask(self, study_uid: str, question: str, images: list[StudyImage], *, override: bool = False,
            username: str = "") -> str:
        """Returns the job id, or "" when the question was answered at once (out of scope). The engine refuses
        questions outside what it reads, and its input gate stops an out-of-scope image unless `override`
        (the user's explicit choice, audited under `username`)."""
        question = question.strip()
        scope = question_scope(question)
        if not scope.in_scope:
            self._finish(study_uid, question, f"{CANNOT_ANSWER} ({scope.reason})", None, "", False, "")
            return ""
        ordered = order_for_engine(images)
        if not ordered:
            self._finish(study_uid, question, f"{CANNOT_ANSWER} (the study has no image)", None, "", False, "")
            return ""
        request = AnswerRequest(images=tuple(im.pixels for im in ordered), question=question,
                                **gate_params(ordered, override))
        job_id = self.client.submit(request, label=f"Question: {question[:40]}")
        self._asked[job_id] = _Asked(study_uid, question, ordered, username)
        return job_id

    def history(self, study_uid: str) -> list[dict[str, Any]]:
        stored = qa_history(self.db, study_uid) if self.db is not None else []
        return stored + [m for m in self._local if m["study_uid"] == study_uid]

    def threshold_for(self, extra: dict[str, Any]) -> float:
        """The confidence an answer needs: a choice between two answers (yes/no scored by the answer segment,
        or by the finding head) starts at 50%, so it needs `min_choice_confidence`; free text `min_confidence`."""
        return self.min_choice_confidence if extra.get("mode") in CHOICE_MODES else self.min_confidence

    def _on_finished(self, job_id: str, result: JobResult) -> None:
        if job_id in self._maps:
            asked = self._maps.pop(job_id)
            maps = result.maps if isinstance(result, RegionMaps) else {}  # an out-of-scope map job has none
            if "attention" in maps:
                self.regionMap.emit(asked.study_uid, asked.question, maps["attention"])
            return
        asked = self._asked.pop(job_id, None)
        if asked is None:
            return
        engine = str((result.provenance or {}).get("engine", ""))
        scope = scope_dict(result)
        if isinstance(result, Refused):  # the engine has no basis for this question
            answer = f"{CANNOT_ANSWER} Refused: {result.reason}. {result.can_answer}".strip()
            self._finish(asked.study_uid, asked.question, answer, None, engine, False, "", refused=True)
            return
        if is_out_of_scope(result):  # the input gate stopped it: nothing was read
            answer = f"Not answered: {scope_line(scope)}"
            self._finish(asked.study_uid, asked.question, answer, None, engine, False, "", scope=scope)
            return
        if not isinstance(result, TextOutput):  # an answer is text; anything else is the engine's mistake
            self.failed.emit(asked.study_uid, asked.question,
                             f"the engine answered with a '{result.kind}' result, not an answer")
            return
        conf = float(result.confidence or 0.0)
        raw = str(result.text).strip()
        extra = result.extra or {}
        if not raw:
            answer = f"{CANNOT_ANSWER} (the engine gave no answer)"
        elif "uncertain_band" in extra:  # a calibrated yes/no/uncertain: the band already says when it cannot tell
            answer = raw
        elif conf < self.threshold_for(extra):
            answer = f"{CANNOT_ANSWER} (the engine's confidence was only {conf:.0%}; its guess: \"{raw}\")"
        else:
            answer = raw
        if overridden(scope):
            record_override(self.db, asked.username, asked.study_uid, "answer", scope or {})
        self._finish(asked.study_uid, asked.question, answer, conf, engine, True, raw, scope=scope, extra=extra)
        caps = self.client.last_status.get("capabilities") or []
        if self.region_maps and "explain" in caps and answer == raw:
            request = RegionMapRequest(images=(asked.images[0].pixels,), text=f"{asked.question} {raw}")
            map_job = self.client.submit(request, label="Region map")
            self._maps[map_job] = asked

    def _on_failed(self, job_id: str, message: str) -> None:
        self._maps.pop(job_id, None)
        asked = self._asked.pop(job_id, None)
        if asked is not None:
            self.failed.emit(asked.study_uid, asked.question, message)

    def _finish(self, study_uid: str, question: str, answer: str, confidence: float | None, engine: str,
                in_scope: bool, raw: str, *, refused: bool = False, scope: dict[str, Any] | None = None,
                extra: dict[str, Any] | None = None) -> None:
        extra = extra or {}
        msg_id = save_qa(self.db, study_uid, question, answer, confidence, engine) if self.db is not None else None
        message = {"id": msg_id, "study_uid": study_uid, "question": question, "answer": answer,
                   "confidence": confidence, "engine": engine, "in_scope": in_scope, "raw_answer": raw,
                   "refused": refused, "input_out_of_scope": bool(scope) and not scope.get("in_scope", True)
                   and not scope.get("override"), "scope": scope,
                   "finding": extra.get("finding"), "probability": extra.get("probability"),
                   "prevalence": extra.get("prevalence"), "calibrated": extra.get("calibrated")}
        if msg_id is None:
            self._local.append(message)
        self.answered.emit(study_uid, message)
