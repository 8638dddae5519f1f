"""The words of each patient's name, so the worklist finds "john doe" from an index, not a table scan.

Rows are written by database triggers from `patient.name_search` (migration 0007_study_counts), never by
the application; on PostgreSQL the word column sorts bytewise (collation "C") so a prefix is an index range.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base

WORD_LENGTH = 64


class PatientNameWord(Base):
    __tablename__ = "patient_name_word"
    __table_args__ = (Index("ix_patient_name_word_patient", "patient_db_id"),)

    word: Mapped[str] = mapped_column(String(WORD_LENGTH).with_variant(String(WORD_LENGTH, collation="C"),
                                                                      "postgresql"), primary_key=True)
    patient_db_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), primary_key=True)
