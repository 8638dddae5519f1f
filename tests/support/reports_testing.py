"""Helpers for report tests: a fresh migrated SQLite database, a study, users with signing keys."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher, Type

from app.db.database import Database
from app.db.models import Instance, Patient, Series, Study
from app.reports import keys
from app.reports.keys import create_self_signed, default_p12_path
from app.reports.service import ReportService
from app.reports.users import UserService

# Key files in these tests are written and opened many times on two shared cores: a cheaper KDF here; the
# production setting is kept in PRODUCTION_P12_KDF_ROUNDS and checked in the written file by test_reports_ca.
PRODUCTION_P12_KDF_ROUNDS = keys.P12_KDF_ROUNDS
keys.P12_KDF_ROUNDS = 10_000
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID)
STUDY_UID = "1.2.826.0.1.3680043.8.498.1001"
SERIES_UID = "1.2.826.0.1.3680043.8.498.1002"
SOP_UIDS = ("1.2.826.0.1.3680043.8.498.1003", "1.2.826.0.1.3680043.8.498.1004")
CR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1"
PASSWORD = "correct horse 1"


@dataclass
class ReportEnv:
    db: Database
    users: UserService
    service: ReportService
    home: Path
    study_uid: str = STUDY_UID


def add_study(db: Database, study_uid: str = STUDY_UID, series_uid: str = SERIES_UID,
              sop_uids: tuple[str, ...] = SOP_UIDS, patient_id: str = "PAT001") -> None:
    with db.session() as s:
        patient = Patient(patient_key=f"|{patient_id}", patient_id=patient_id, name="DOE^JANE",
                          name_search="DOE JANE", birth_date="19700101", sex="F")
        study = Study(study_uid=study_uid, patient=patient, study_date=dt.date(2026, 11, 20),
                      study_time="101500", accession="ACC123", description="CHEST PA AND LATERAL",
                      referring_physician="SMITH^JOHN", modalities="CR")
        series = Series(series_uid=series_uid, study=study, modality="CR", series_number=1)
        for i, uid in enumerate(sop_uids, 1):
            series.instances.append(Instance(sop_instance_uid=uid, sop_class_uid=CR_SOP_CLASS, instance_number=i,
                                             number_of_frames=1, rows=64, columns=64, file_path=f"x/{uid}.dcm"))
        s.add_all([patient, study, series])


_KEY_CACHE: dict[str, bytes] = {}

TRIGGER_TABLES = {"audit_entry_no_update": "audit_entry", "audit_entry_no_delete": "audit_entry",
                  "report_version_final_immutable": "report_version", "report_signature_immutable": "report_signature",
                  "audit_head_forward_only": "audit_head"}


def drop_trigger(conn, name: str) -> None:
    """What an attacker with database-owner rights does first: remove a rule trigger (SQLite or PostgreSQL)."""
    from sqlalchemy import text

    on = f" ON {TRIGGER_TABLES[name]}" if conn.dialect.name == "postgresql" else ""
    conn.execute(text(f"DROP TRIGGER {name}{on}"))


ADMIN = "root"


def admin_session(env: ReportEnv):
    """The bootstrap admin (created as the first account of the database on first use)."""
    if env.users.count() == 0:
        env.users.add_user(ADMIN, PASSWORD, "admin", display_name="Site Admin")
    return env.users.authenticate(ADMIN, PASSWORD)


def make_user(env: ReportEnv, username: str, role: str, with_key: bool = True):
    """Add a user through the admin; a signing user also gets a PKCS#12 key registered by the admin."""
    admin = admin_session(env)
    env.users.add_user(username, PASSWORD, role, display_name=f"Dr {username.title()}", actor=admin)
    if with_key:
        from app.reports.keys import load_p12

        path = default_p12_path(username)
        if username in _KEY_CACHE:  # RSA key generation is the slow part; reuse across tests
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_KEY_CACHE[username])
        else:
            create_self_signed(f"Dr {username.title()}", PASSWORD, path)
            _KEY_CACHE[username] = path.read_bytes()
        env.users.pin_certificate(username, load_p12(path, PASSWORD).certificate_der, actor=admin)
    return env.users.authenticate(username, PASSWORD)




def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drop_all_triggers(db: Database) -> None:
    """What an insider with the database file does first: remove every guarding trigger."""
    from sqlalchemy import text

    with db.engine.begin() as c:
        for (name,) in c.execute(text("select name from sqlite_master where type='trigger'")).fetchall():
            c.execute(text(f'drop trigger "{name}"'))
