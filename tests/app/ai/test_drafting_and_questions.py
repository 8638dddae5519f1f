"""DraftService and QaService on a real worker (tiny LLaVA) and a real study database."""

from __future__ import annotations

from app.ai.ai_store import drafts_for, qa_history
from app.ai.drafting import DraftService
from app.ai.question_scope import CANNOT_ANSWER
from app.ai.questions import QaService

TIMEOUT = 60_000


def test_draft_is_stored_with_provenance_and_images_used(qtbot, client, ai_db, study_images) -> None:
    drafts = DraftService(client, ai_db)
    with qtbot.waitSignal(drafts.draftReady, timeout=TIMEOUT) as sig:
        drafts.draft("1.2.3.1", study_images(), seed=7)
    uid, draft = sig.args
    assert uid == "1.2.3.1" and draft["findings"] + draft["impression"]
    assert draft["images_used"] == ["PA", "LATERAL"] and draft["images_note"] == "Used all 2 images: PA, LATERAL"
    prov = draft["provenance"]
    assert prov["engine"] == "hf-vlm" and prov["seed"] == 7 and prov["weights_hash"] and prov["draft_id"]
    stored = drafts_for(ai_db, "1.2.3.1")
    assert len(stored) == 1 and stored[0]["engine"] == "hf-vlm" and stored[0]["seed"] == 7
    assert stored[0]["images_used"] == ["1.9.1", "1.9.2"] and stored[0]["weights_hash"] == prov["weights_hash"]
    assert stored[0]["findings"] == draft["findings"] and stored[0]["token_uncertainty"]["tokens"]
    tok = draft["token_uncertainty"][0]
    assert tok["section"] in ("findings", "impression") and tok["uncertainty"] == round(1 - tok["confidence"], 4)


def test_batch_pre_draft_has_one_progress_bar(qtbot, client, ai_db, study_images) -> None:
    drafts = DraftService(client, ai_db)
    progress: list[tuple[int, int]] = []
    ready: list[str] = []
    drafts.batchProgress.connect(lambda v, m: progress.append((v, m)))
    drafts.draftReady.connect(lambda uid, d: ready.append(uid))
    with qtbot.waitSignal(drafts.batchFinished, timeout=TIMEOUT) as sig:
        jobs = drafts.draft_batch([("1.2.3.1", study_images(1)), ("1.2.3.2", study_images(2)), ("1.2.3.9", [])])
    assert len(jobs) == 2 and sig.args == [2, 0] and sorted(ready) == ["1.2.3.1", "1.2.3.2"]
    assert progress[0] == (0, 200) and progress[-1] == (200, 200)
    assert [v for v, _ in progress] == sorted(v for v, _ in progress)
    assert len(drafts_for(ai_db, "1.2.3.2")) == 1 and not drafts.batch_running


def test_questions_answers_and_honest_refusals_are_kept_per_study(qtbot, client, ai_db, study_images) -> None:
    qa = QaService(client, ai_db, min_confidence=0.0)
    with qtbot.waitSignal(qa.answered, timeout=TIMEOUT) as sig:
        assert qa.ask("1.2.3.1", "Is there a pleural effusion?", study_images())
    msg = sig.args[1]
    assert msg["in_scope"] and msg["answer"] == msg["raw_answer"] and 0 < msg["confidence"] <= 1
    assert msg["engine"] == "hf-vlm"
    with qtbot.waitSignal(qa.answered, timeout=1000) as sig:
        assert qa.ask("1.2.3.1", "What is the patient's name?", study_images()) == ""
    assert sig.args[1]["answer"].startswith(CANNOT_ANSWER) and sig.args[1]["confidence"] is None
    strict = QaService(client, ai_db, min_confidence=0.99)  # a random tiny model is never this sure
    with qtbot.waitSignal(strict.answered, timeout=TIMEOUT) as sig:
        strict.ask("1.2.3.1", "Is the heart enlarged?", study_images())
    assert sig.args[1]["answer"].startswith(CANNOT_ANSWER) and "confidence was only" in sig.args[1]["answer"]
    history = qa_history(ai_db, "1.2.3.1")
    assert [h["question"] for h in history] == ["Is there a pleural effusion?", "What is the patient's name?",
                                                 "Is the heart enlarged?"]
    assert qa_history(ai_db, "1.2.3.2") == [] and len(qa.history("1.2.3.1")) == 3


def test_two_way_answers_need_the_choice_confidence(client) -> None:
    qa = QaService(client, None, min_confidence=0.35, min_choice_confidence=0.6)
    assert qa.threshold_for({"mode": "closed"}) == qa.threshold_for({"mode": "finding head"}) == 0.6
    assert qa.threshold_for({}) == 0.35  # free text
