"""The findings sections a sentence draft follows: the order of the study's report template.

Shared by the AI panel's drafts (app.ai.drafting) and batch pre-drafts (app.ai.predraft), which must write the
same draft for the same study; no Qt here, so the headless `radstation engine predraft` can use it.
"""

from __future__ import annotations

from app.ai.study_images import StudyImage
from app.db.database import Database
from app.reports.templates import TemplateError, guess_exam_type, load_template


def template_section_order(db: Database | None, study_uid: str, images: list[StudyImage]) -> tuple[str, ...]:
    """The findings sections in the order of the study's report template (its report's exam type, else
    the one guessed from the modality), for sentence drafts (the AI panel's and batch pre-drafts)."""
    from engines.sentences.sections import section_order

    exam_type = ""
    if db is not None:
        from sqlalchemy import select

        from app.reports.models import Report

        try:
            with db.session() as s:
                exam_type = s.scalar(select(Report.exam_type).where(Report.study_uid == study_uid)
                                     .order_by(Report.id.desc()).limit(1)) or ""
        except Exception:  # noqa: BLE001 - a database problem must not stop a draft; the default order serves
            exam_type = ""
    if not exam_type and images:  # as the editor chooses: modality, body part and series description
        header = images[0].header or {}
        exam_type = guess_exam_type(images[0].modality or str(header.get("Modality", "")),
                                    str(header.get("SeriesDescription", "")), str(header.get("BodyPartExamined", "")))
    try:
        tpl = load_template(exam_type or guess_exam_type(""))
    except TemplateError:
        return section_order("")
    return section_order(tpl.content.sections.get("findings", ""))
