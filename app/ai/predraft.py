"""Batch pre-drafting of a worklist without the GUI: `radstation engine predraft`.

Studies are chosen with the worklist's own filters (app.db.queries.search_studies), by default those with
no report and no AI draft yet. Each draft is stored like one made in the AI panel (AiDraft: engine,
weights hash, seed, images used), so the radiologist finds it on opening the study and accepts, edits or
discards it there. With an engine that takes concurrent jobs (the department's engine on Ray Serve) the
batch keeps `concurrency` studies in flight and the service spreads them over its replicas; a local
engine drafts one study at a time. If the engine service goes away mid-batch, the batch stops at the first
study that finds it gone (the rest are reported "not attempted") instead of failing each in turn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from app.ai.ai_store import save_draft, study_images_from_db
from app.ai.scope import gate_params, is_out_of_scope
from app.ai.section_order import template_section_order
from app.ai.study_images import StudyImage, order_for_engine
from app.db.database import Database
from app.db.queries import search_studies
from engines.backends import BackendError, EngineBackend
from engines.backends.errors import ServiceUnavailable
from engines.backends.results import TextOutput
from engines.errors import JobCancelled
from engines.worker.dispatch import provenance, run_job
from engines.worker.requests import DraftRequest, RequestError

UNREPORTED = ("none", "")
ImagesFor = Callable[[Database, str], list[StudyImage]]


@dataclass
class PredraftOutcome:
    study_uid: str
    state: str  # drafted | failed | skipped | cancelled | not attempted
    message: str = ""
    draft_id: int | None = None
    seconds: float = 0.0
    served_by: str = ""


def select_studies(db: Database, *, study_uids: Sequence[str] = (), include_reported: bool = False,
                   redraft: bool = False, limit: int | None = None, **filters: Any) -> list[str]:
    """Study UIDs to pre-draft, in worklist order: the given UIDs, or the worklist filtered by `filters`
    (name, patient_id, accession, date_from, date_to, modality); reported and already drafted studies are
    left out unless asked for."""
    with db.session() as s:
        rows = search_studies(s, limit=None, **filters)
    wanted = set(study_uids)
    picked = [r for r in rows if (not wanted or r.study_uid in wanted)
              and (include_reported or (r.report_status or "") in UNREPORTED)
              and (redraft or not r.has_ai_draft)]
    uids = [r.study_uid for r in picked]
    return uids[:limit] if limit else uids


class Predrafter:
    """Drafts studies with one loaded backend and stores each draft as it arrives."""

    def __init__(self, db: Database, backend: EngineBackend, engine_name: str, *, concurrency: int = 4,
                 steps: int | None = None, seed: int = 0, mode: str | None = None,
                 images_for: ImagesFor = study_images_from_db) -> None:
        """`mode`: the 'draft_mode' setting ("sentences" | "free" | None: the engine's default), as in the AI panel."""
        self.db, self.backend, self.engine_name, self.mode = db, backend, engine_name, mode or None
        self.concurrency = max(1, int(concurrency)) if backend.concurrent_jobs else 1
        self.steps, self.seed, self.images_for = steps, int(seed), images_for

    def run(self, study_uids: Sequence[str], on_outcome: Callable[[PredraftOutcome, int, int], None] | None = None,
            cancel: threading.Event | None = None) -> list[PredraftOutcome]:
        cancel = cancel or threading.Event()
        stop: list[str] = []  # the reason the service is gone, once one study finds out
        total = len(study_uids)
        outcomes: dict[str, PredraftOutcome] = {}
        pending = list(study_uids)

        def finished(outcome: PredraftOutcome) -> None:
            outcomes[outcome.study_uid] = outcome
            if on_outcome is not None:
                on_outcome(outcome, len(outcomes), total)

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="predraft") as pool:
            running: dict[Future, str] = {}
            while pending or running:
                while pending and len(running) < self.concurrency and not stop and not cancel.is_set():
                    uid = pending.pop(0)
                    running[pool.submit(self._one, uid, cancel, stop)] = uid
                if not running:
                    break
                try:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:  # Ctrl-C: the studies in flight stop at their next step
                    cancel.set()
                    continue
                for fut in done:
                    running.pop(fut)
                    finished(fut.result())
        why = stop[0] if stop else "cancelled"
        for uid in pending:
            finished(PredraftOutcome(uid, "not attempted" if stop else "cancelled", why))
        return [outcomes[uid] for uid in study_uids]

    def _draft_options(self, uid: str, images: list[StudyImage]) -> dict[str, Any]:
        """The AI panel's draft options (the dispatch passes them to engines that take them), so a pre-draft is
        the draft the radiologist would have got on opening the study."""
        options: dict[str, Any] = {"section_order": list(template_section_order(self.db, uid, images))}
        if self.mode:
            options["mode"] = self.mode
        return options

    def _one(self, uid: str, cancel: threading.Event, stop: list[str]) -> PredraftOutcome:
        t0 = time.perf_counter()
        try:
            images = order_for_engine(self.images_for(self.db, uid))
        except Exception as exc:  # noqa: BLE001 - one unreadable study never stops the batch
            return PredraftOutcome(uid, "failed", f"its images could not be read: {exc}")
        if not images:
            return PredraftOutcome(uid, "skipped", "no image of this study is on this workstation")
        try:  # the AI panel's job, input gate included (engines.worker.dispatch), on this engine or the service
            request = DraftRequest(images=tuple(im.pixels for im in images), steps=self.steps, seed=self.seed,
                                   **gate_params(images), **self._draft_options(uid, images))
            result = run_job(self.backend, request, lambda *_a: None, cancel.is_set)
        except ServiceUnavailable as exc:
            stop.append(str(exc))
            return PredraftOutcome(uid, "failed", str(exc), seconds=time.perf_counter() - t0)
        except (BackendError, RequestError) as exc:
            return PredraftOutcome(uid, "failed", str(exc), seconds=time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, JobCancelled):
                return PredraftOutcome(uid, "cancelled", "cancelled", seconds=time.perf_counter() - t0)
            return PredraftOutcome(uid, "failed", f"engine error: {type(exc).__name__}: {exc}",
                                   seconds=time.perf_counter() - t0)
        if is_out_of_scope(result):  # the gate stopped it: nothing stored, the radiologist reads it unaided
            return PredraftOutcome(uid, "skipped", f"out of the engine's scope: {result.message}",
                                   seconds=time.perf_counter() - t0)
        if not isinstance(result, TextOutput):
            return PredraftOutcome(uid, "failed", f"the engine answered with a '{result.kind}' result, not a draft",
                                   seconds=time.perf_counter() - t0)
        result.provenance = provenance(self.backend, self.engine_name)
        used = [images[i].sop_instance_uid for i in result.images_used if 0 <= i < len(images)]
        draft_id = save_draft(self.db, uid, result, used)
        return PredraftOutcome(uid, "drafted", "", draft_id, time.perf_counter() - t0,
                               str((result.extra or {}).get("served_by", "")))
