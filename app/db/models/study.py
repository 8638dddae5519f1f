"""The DICOM information model as stored: Patient > Study > Series > Instance.

Instances point at files in the managed store (paths relative to the store root) so the database never
depends on removable media and the data folder can move.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from app.db.base import Base, utcnow

REPORT_STATUSES: tuple[str, ...] = ("none", "draft", "preliminary", "final", "amended")


class Patient(Base):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Identity across studies: issuer|PatientID, or the name when the ID is empty (anonymised data).
    patient_key: Mapped[str] = mapped_column(String(200), unique=True)
    patient_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    issuer: Mapped[str] = mapped_column(String(64), default="")
    name: Mapped[str] = mapped_column(String(200), default="", index=True)
    # Upper-case name with '^' as spaces, so "john doe" finds "DOE^JOHN" word by word.
    name_search: Mapped[str] = mapped_column(String(200), default="", index=True)
    birth_date: Mapped[str] = mapped_column(String(8), default="")
    sex: Mapped[str] = mapped_column(String(16), default="")

    studies: Mapped[list[Study]] = relationship(back_populates="patient", cascade="all, delete-orphan")


class Study(Base):
    __tablename__ = "study"
    # Every worklist sort key followed by the study-time tie-break, so a sorted page is an index range.
    __table_args__ = (
        Index("ix_study_date_time", "study_date", "study_time"),
        Index("ix_study_images_time", "instance_count", "study_time"),
        Index("ix_study_series_time", "series_count", "study_time"),
        Index("ix_study_modalities_time", "modalities", "study_time"),
        Index("ix_study_description_time", "description", "study_time"),
        Index("ix_study_status_time", "report_status", "study_time"),
        Index("ix_study_accession_time", "accession", "study_time"),
        Index("ix_study_draft_time", "has_ai_draft", "study_time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(64), unique=True)
    patient_db_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"), index=True)
    study_date: Mapped[date | None] = mapped_column(Date)
    study_time: Mapped[str] = mapped_column(String(16), default="")
    accession: Mapped[str] = mapped_column(String(64), default="")
    description: Mapped[str] = mapped_column(String(200), default="")
    referring_physician: Mapped[str] = mapped_column(String(200), default="")
    # Backslash-joined distinct series modalities ("CT\\SR"), kept by the importer for listing and search.
    modalities: Mapped[str] = mapped_column(String(100), default="")
    report_status: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    # Kept by database triggers (migration 0007_study_counts) whoever inserts or deletes series, instances
    # or AI drafts; the application never writes them. (Expression indexes on upper(accession) and
    # upper(patient_id) are in that migration too: they differ per database.)
    series_count: Mapped[int] = mapped_column(Integer, server_default="0")
    instance_count: Mapped[int] = mapped_column(Integer, server_default="0")
    has_ai_draft: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="studies")
    series: Mapped[list[Series]] = relationship(back_populates="study", cascade="all, delete-orphan")

    @validates("report_status")
    def _check_status(self, _key: str, value: str) -> str:
        if value not in REPORT_STATUSES:
            raise ValueError(f"report_status must be one of {REPORT_STATUSES}, not {value!r}")
        return value


class Series(Base):
    __tablename__ = "series"
    __table_args__ = (Index("ix_series_modality_study", "modality", "study_db_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    series_uid: Mapped[str] = mapped_column(String(64), unique=True)
    study_db_id: Mapped[int] = mapped_column(ForeignKey("study.id", ondelete="CASCADE"), index=True)
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_number: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(200), default="")
    body_part: Mapped[str] = mapped_column(String(64), default="")
    frame_of_reference_uid: Mapped[str] = mapped_column(String(64), default="")
    instance_count: Mapped[int] = mapped_column(Integer, server_default="0")  # kept by triggers, as Study's

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(back_populates="series", cascade="all, delete-orphan")


class Instance(Base):
    __tablename__ = "instance"

    id: Mapped[int] = mapped_column(primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64), default="")
    series_db_id: Mapped[int] = mapped_column(ForeignKey("series.id", ondelete="CASCADE"), index=True)
    instance_number: Mapped[int | None] = mapped_column(Integer)
    number_of_frames: Mapped[int] = mapped_column(Integer, default=0)  # 0: no pixel data (SR, RT plan...)
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    image_position: Mapped[list[float] | None] = mapped_column(JSON)
    image_orientation: Mapped[list[float] | None] = mapped_column(JSON)
    slice_location: Mapped[float | None] = mapped_column(Float)
    transfer_syntax_uid: Mapped[str] = mapped_column(String(64), default="")
    file_path: Mapped[str] = mapped_column(Text)  # relative to the managed store root, '/'-separated
    file_size: Mapped[int] = mapped_column(BigInteger, default=0)
    file_sha256: Mapped[str] = mapped_column(String(64), default="")
    # Why the stored file is not whole (a truncated structure); '' for a complete object.
    incomplete: Mapped[str] = mapped_column(Text, default="", server_default="")
    import_batch_id: Mapped[int | None] = mapped_column(ForeignKey("import_batch.id", ondelete="SET NULL"))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)

    series: Mapped[Series] = relationship(back_populates="instances")

    def position_along_normal(self) -> float | None:
        """Distance of the slice along its normal: the order a volume is stacked in."""
        pos, ori = self.image_position, self.image_orientation
        if not pos or not ori or len(pos) != 3 or len(ori) != 6:
            return None
        r, c = ori[:3], ori[3:]
        n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
        return float(sum(p * k for p, k in zip(pos, n, strict=True)))
