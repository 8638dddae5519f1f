"""Tamper benchmark: random byte flips and semantic edits against every signed artefact.

    python benchmarks/tamper.py [--flips 50] [--seed 19]

Signs one report in a fresh database (admin, radiologist with a registered key, one study), then attacks
each artefact the way an insider with a copy of the database and the exported files would:
  * stored report (database rows), DICOM SR, DICOM encapsulated PDF, signed PDF, DICOM key object selection,
    audit log;
  * `--flips` single-byte changes at random offsets (random non-zero XOR mask) per artefact;
  * the semantic edits of issue 19 (added items, changed identity, swapped references, renamed observer,
    moved signature, rewritten and re-hashed audit chain, ...).
Each changed artefact goes through `radstation verify` / `audit verify` (the same functions) and counts
as detected (TAMPERED), undetected (VALID) or crashed (an exception escaped). Undetected flips are listed
with the region they hit, so one can check that they change no content. Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "correct horse 1"
STUDY_UID = "1.2.826.0.1.3680043.8.498.1001"


# -- setting up one signed report -------------------------------------------------------------------------
def setup(work: Path):
    os.environ["RADSTATION_HOME"] = str(work / "home")
    from argon2 import PasswordHasher, Type

    from app.reports import keys
    from tests.support.reports_testing import PRODUCTION_P12_KDF_ROUNDS, add_study

    keys.P12_KDF_ROUNDS = PRODUCTION_P12_KDF_ROUNDS  # the shipped key-file encryption, not the tests' cheap one

    from app.db.database import Database
    from app.reports.keys import create_self_signed, default_p12_path
    from app.reports.service import ReportService
    from app.reports.users import UserService

    db = Database.open(f"sqlite:///{work / 'base.db'}")
    users = UserService(db, hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=Type.ID))
    service = ReportService(db, users)
    add_study(db)
    add_study(db, study_uid="1.2.826.0.1.3680043.8.498.2001", series_uid="1.2.826.0.1.3680043.8.498.2002",
              sop_uids=("1.2.826.0.1.3680043.8.498.2003",), patient_id="PAT002")
    users.add_user("root", PASSWORD, "admin")
    admin = users.authenticate("root", PASSWORD)
    for name in ("rad", "rad2"):
        users.add_user(name, PASSWORD, "radiologist", display_name=f"Dr {name.title()}", actor=admin)
        ident = create_self_signed(f"Dr {name.title()}", PASSWORD, default_p12_path(name))
        users.pin_certificate(name, ident.certificate_der, actor=admin)
    users.add_user("res", PASSWORD, "resident", actor=admin)
    me = users.authenticate("rad", PASSWORD)
    v = service.open_or_create(STUDY_UID, me)
    service.save_draft(v.id, {**v.content.to_dict(), "indication": "Cough.",
                              "findings": "Small right pleural effusion; no pneumothorax.",
                              "impression": "Small right effusion."}, me)
    signed = service.sign(v.id, me, PASSWORD)
    service.record_export(signed.id, me, "sr", "/exports/r.dcm")
    service.record_export(signed.id, me, "pdf", "/exports/r.pdf")
    files = {}
    for kind, name in (("sr", "sr.dcm"), ("pdf_dicom", "pdf.dcm"), ("signed_pdf", "r.pdf"), ("kos", "kos.dcm")):
        files[kind] = work / name
        files[kind].write_bytes(service.artefact(signed.id, kind))
    db.dispose()
    return signed.id, files


# -- verdicts -----------------------------------------------------------------------------------------------
def judge(fn: Callable[[], bool]) -> str:
    try:
        return "detected" if not fn() else "undetected"
    except Exception as exc:  # noqa: BLE001 - a crash is exactly what this benchmark counts
        return f"crashed ({type(exc).__name__}: {exc})"


def verify_file_ok(path: Path, db_url: str) -> bool:
    from app.db.database import Database
    from app.reports.verify_documents import verify_file

    db = Database.open(db_url, migrate=False)
    try:
        return verify_file(path, db).ok
    finally:
        db.dispose()


def with_db_copy(work: Path, edit_sql: list[str] | Callable, check: Callable[[object], bool]) -> bool:
    """Apply an edit to a copy of the database (triggers dropped: the attacker can), then check it."""
    from sqlalchemy import text

    from app.db.database import Database

    copy = work / "attacked.db"
    shutil.copy(work / "base.db", copy)
    for suffix in ("-wal", "-shm"):
        if (work / f"base.db{suffix}").exists():
            shutil.copy(work / f"base.db{suffix}", work / f"attacked.db{suffix}")
    db = Database.open(f"sqlite:///{copy}", migrate=False)
    try:
        with db.engine.begin() as c:
            for (trig,) in c.execute(text("select name from sqlite_master where type='trigger'")).fetchall():
                c.execute(text(f'drop trigger "{trig}"'))
        if callable(edit_sql):
            edit_sql(db)
        else:
            with db.engine.begin() as c:
                for sql in edit_sql:
                    c.execute(text(sql))
        return check(db)
    finally:
        db.dispose()
        for f in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
            f.unlink(missing_ok=True)


def stored_ok(version_id: int) -> Callable[[object], bool]:
    def check(db) -> bool:
        from app.reports.verify_documents import verify_version

        return verify_version(db, version_id).ok
    return check


def audit_ok(db) -> bool:
    from app.reports.audit import verify_chain

    with db.session() as s:
        return verify_chain(s).ok


# -- where a flip landed (for the list of undetected flips) --------------------------------------------------
def dicom_region(data: bytes, offset: int) -> str:
    if offset < 128:
        return "preamble"
    if offset < 132:
        return "DICM prefix"
    from app.reports.dicom_signature import dataset_offset

    try:
        start = dataset_offset(data)
    except ValueError:
        return "file meta"
    if offset < start:
        pos = 132
        while pos < start:
            tag = (int.from_bytes(data[pos:pos + 2], "little"), int.from_bytes(data[pos + 2:pos + 4], "little"))
            vr = data[pos + 4:pos + 6]
            if vr in (b"OB", b"UN", b"SQ", b"UT", b"OW"):
                end = pos + 12 + int.from_bytes(data[pos + 8:pos + 12], "little")
            else:
                end = pos + 8 + int.from_bytes(data[pos + 6:pos + 8], "little")
            if offset < end:
                return f"file meta ({tag[0]:04X},{tag[1]:04X})"
            pos = end
    return f"dataset byte {offset - start}"


def pdf_region(data: bytes, offset: int) -> str:
    start = data.rfind(b"/Contents <", 0, offset + 1)
    if start >= 0:
        hex_start = start + len(b"/Contents <")
        end = data.find(b">", hex_start)
        if hex_start <= offset < end:
            blob = bytes.fromhex(data[hex_start:end].decode("ascii"))
            if blob[:2] == b"\x30\x82":
                der_len = 4 + int.from_bytes(blob[2:4], "big")
                if offset - hex_start >= 2 * der_len:
                    return "zero padding after the CMS signature in /Contents (not part of any signed or signature value)"
            return f"inside the CMS signature in /Contents (hex digit {offset - hex_start})"
    return f"PDF byte {offset}"


# -- the attacks -------------------------------------------------------------------------------------------
def file_flips(path: Path, db_url: str, n: int, rng: random.Random, region) -> tuple[dict, list[str]]:
    raw = path.read_bytes()
    counts = {"detected": 0, "undetected": 0, "crashed": 0}
    undetected = []
    out = path.with_name("flipped" + path.suffix)
    for _ in range(n):
        i = rng.randrange(len(raw))
        bad = bytearray(raw)
        bad[i] ^= rng.randrange(1, 256)
        out.write_bytes(bytes(bad))
        verdict = judge(lambda: verify_file_ok(out, db_url))
        key = verdict.split(" ")[0]
        counts[key] += 1
        if key != "detected":
            undetected.append(f"{path.name} byte {i}: {region(raw, i)} -> {verdict}")
    return counts, undetected


def dicom_edits(kind: str, path: Path, db_url: str) -> dict[str, str]:
    from pydicom import dcmread
    from pydicom.dataset import Dataset

    def code(value, scheme, meaning):
        c = Dataset()
        c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
        return c

    def add_text(ds):
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
        item.ConceptNameCodeSequence = [code("121075", "DCM", "Recommendation")]
        item.TextValue = "Recommendation: urgent CT-guided biopsy"
        ds.ContentSequence[-1].ContentSequence.append(item)

    def add_code(ds):
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "CODE"
        item.ConceptNameCodeSequence = [code("121071", "DCM", "Finding")]
        item.ConceptCodeSequence = [code("363358000", "SCT", "Malignant tumor of lung")]
        ds.ContentSequence.append(item)

    def swap_ref(ds):
        for section in ds.ContentSequence:
            for item in getattr(section, "ContentSequence", []):
                if item.ValueType == "IMAGE":
                    item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.2003"
                    return
        ev = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
        ev.ReferencedSOPSequence[0].ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.2003"

    def drop_signature(ds):
        del ds.DigitalSignaturesSequence
        del ds.MACParametersSequence

    common = {
        "changed patient ID": lambda ds: setattr(ds, "PatientID", "PAT002"),
        "changed patient name": lambda ds: setattr(ds, "PatientName", "ROE^RICHARD"),
        "changed birth date": lambda ds: setattr(ds, "PatientBirthDate", "19800101"),
        "changed sex": lambda ds: setattr(ds, "PatientSex", "M"),
        "moved to another study": lambda ds: setattr(ds, "StudyInstanceUID", "1.2.826.0.1.3680043.8.498.2001"),
        "added unsigned element": lambda ds: setattr(ds, "ImageComments", "urgent biopsy"),
        "signature removed": drop_signature,
    }
    if kind == "sr":
        edits = {**common, "added recommendation item": add_text, "added coded finding": add_code,
                 "swapped image reference": swap_ref,
                 "renamed verifying observer": lambda ds: setattr(ds.VerifyingObserverSequence[0],
                                                                  "VerifyingObserverName", "Mallory^Eve")}
    elif kind == "kos":
        def swap_key_image(ds):  # another patient's image listed as a key image (evidence list)
            for series in ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence:
                for ref in series.ReferencedSOPSequence:
                    if ref.ReferencedSOPClassUID != "1.2.840.10008.5.1.4.1.1.88.33":  # an image, not the SR
                        ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.2003"
                        return
            raise ValueError("no image in the KOS")
        edits = {**common, "swapped key image": swap_key_image}
    else:
        edits = {**common, "retitled document": lambda ds: setattr(ds, "DocumentTitle", "Normal chest")}
    results = {}
    out = path.with_name("edited.dcm")
    for name, change in edits.items():
        def attempt(change=change):
            ds = dcmread(path)
            change(ds)
            ds.save_as(out, enforce_file_format=True)
            return verify_file_ok(out, db_url)
        results[name] = judge(attempt)
    results.update(resigned_edits(kind, path, db_url, out))
    return results


def resigned_edits(kind: str, path: Path, db_url: str, out: Path) -> dict[str, str]:
    """The signer themself edits a copy and signs it again with their own registered key: a perfect
    signature, refuted only because no sign entry records that document."""
    from pydicom import dcmread

    from app.reports.dicom_signature import sign_dataset
    from app.reports.keys import default_p12_path, load_p12

    identity = load_p12(default_p12_path("rad"), PASSWORD)

    def resign(change):
        def attempt():
            ds = dcmread(path)
            change(ds)
            del ds.DigitalSignaturesSequence
            del ds.MACParametersSequence
            out.write_bytes(sign_dataset(ds, identity, purpose="5" if kind == "sr" else "1"))
            return verify_file_ok(out, db_url)
        return attempt

    return {"changed birth date, re-signed by the signer": judge(resign(
                lambda ds: setattr(ds, "PatientBirthDate", "19800101"))),
            "moved to another patient, re-signed by the signer": judge(resign(
                lambda ds: (setattr(ds, "PatientID", "PAT002"), setattr(ds, "PatientName", "ROE^RICHARD"))))}


def pdf_edits(path: Path, db_url: str) -> dict[str, str]:
    import io

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    raw = path.read_bytes()
    out = path.with_name("edited.pdf")

    def incremental(fn):
        def attempt():
            w = IncrementalPdfFileWriter(io.BytesIO(raw), strict=False)
            fn(w)
            buf = io.BytesIO()
            w.write(buf)
            out.write_bytes(buf.getvalue())
            return verify_file_ok(out, db_url)
        return attempt

    def add_text_page(w):
        from pyhanko.pdf_utils import generic
        info = w.root
        info["/RadStationNote"] = generic.TextStringObject("Recommendation: urgent CT-guided biopsy")
        w.update_root()

    def replace_text(old: bytes, new: bytes):
        def attempt():
            i = raw.find(old)
            if i < 0:
                raise ValueError(f"{old!r} not in the PDF")
            out.write_bytes(raw[:i] + new + raw[i + len(old):])
            return verify_file_ok(out, db_url)
        return attempt

    return {
        "incremental update after signing": judge(incremental(add_text_page)),
        "signer name in /Name changed": judge(replace_text(b"/Name (Dr Rad)", b"/Name (Dr Eve)")),
        "producer string changed": judge(replace_text(b"/Producer", b"/Producez")),
        "truncated after the signature": judge(lambda: (out.write_bytes(raw[: len(raw) - 40]),
                                                        verify_file_ok(out, db_url))[1]),
    }


def stored_attacks(work: Path, vid: int, n: int, rng: random.Random) -> tuple[dict, dict[str, str]]:
    """Flips in the stored rows (sections, signature, certificate, documents) and semantic edits."""
    from sqlalchemy import text

    counts = {"detected": 0, "undetected": 0, "crashed": 0}
    columns = [("report_version", "sections", "id"), ("report_signature", "canonical", "version_id"),
               ("report_signature", "signature", "version_id"), ("report_signature", "certificate_der", "version_id"),
               ("report_artifact", "data", "version_id")]
    for _ in range(n):
        table, col, key = rng.choice(columns)

        def flip(db, table=table, col=col, key=key):
            with db.engine.begin() as c:
                rows = c.execute(text(f"select rowid, {col} from {table} where {key}=:v"), {"v": vid}).fetchall()
                rowid, value = rng.choice(rows)
                data = bytearray(value.encode() if isinstance(value, str) else value)
                i = rng.randrange(len(data))
                data[i] ^= rng.randrange(1, 256)
                new = bytes(data).decode("utf-8", "replace") if isinstance(value, str) else bytes(data)
                c.execute(text(f"update {table} set {col}=:d where rowid=:r"), {"d": new, "r": rowid})
        counts[judge(lambda: with_db_copy(work, flip, stored_ok(vid))).split(" ")[0]] += 1
    edits = {
        "section text changed": [f"update report_version set sections=json_set(sections, '$.impression', "
                                 f"'Recommendation: urgent CT-guided biopsy') where id={vid}"],
        "signature moved to another user": [f"update report_signature set signer_id=(select id from app_user "
                                            f"where username='rad2') where version_id={vid}"],
        "signing time changed": [f"update report_version set signed_at='2020-01-01T00:00:00+00:00' where id={vid}"],
        "report moved to another study": ["update report set study_uid='1.2.826.0.1.3680043.8.498.2001'"],
        "signed PDF deleted": [f"delete from report_artifact where version_id={vid} and kind='signed_pdf'"],
        "SR replaced by an unsigned one": [f"update report_artifact set data=x'00' where version_id={vid} and "
                                           "kind='sr'"],
        "signer demoted before signing (role history rewritten)": [
            "update audit_entry set details='{\"role\":\"resident\"}' where action='user_add' and object_id='rad'"],
        "certificate registered to a resident": [
            "update app_user set cert_sha256=(select cert_sha256 from app_user where username='rad'), "
            "cert_der=(select cert_der from app_user where username='rad') where username='res'",
            "update app_user set cert_sha256='', cert_der=NULL where username='rad'"],
    }
    return counts, {name: judge(lambda sql=sql: with_db_copy(work, sql, stored_ok(vid))) for name, sql in edits.items()}


def audit_attacks(work: Path, n: int, rng: random.Random) -> tuple[dict, dict[str, str]]:
    from sqlalchemy import select, text
    from sqlalchemy.orm import Session

    from app.reports import audit
    from app.reports.models import AuditEntry, AuditHead

    counts = {"detected": 0, "undetected": 0, "crashed": 0}
    cols = ["at", "username", "action", "object_type", "object_id", "details", "prev_hash", "entry_hash", "mac"]
    for _ in range(n):
        col = rng.choice(cols)

        def flip(db, col=col):
            with db.engine.begin() as c:
                rows = c.execute(text(f"select id, {col} from audit_entry")).fetchall()
                rid, value = rng.choice(rows)
                data = bytearray(value.encode())
                i = rng.randrange(len(data))
                data[i] = (data[i] + rng.randrange(1, 95) - 32) % 95 + 32  # another printable character
                c.execute(text(f"update audit_entry set {col}=:d where id=:r"), {"d": data.decode(), "r": rid})
        counts[judge(lambda: with_db_copy(work, flip, audit_ok)).split(" ")[0]] += 1

    def rehash(db, mutate):
        with Session(db.engine) as s:
            mutate(s)
            s.flush()
            prev = audit.GENESIS_HASH
            seq = 0
            for seq, e in enumerate(s.scalars(select(AuditEntry).order_by(AuditEntry.id)), 1):
                e.seq, e.prev_hash = seq, prev
                e.entry_hash = audit.chain_hash(prev, audit.entry_content(seq, e.at, e.username, e.action,
                                                                          e.object_type, e.object_id, e.details))
                prev = e.entry_hash
            head = s.get(AuditHead, 1)
            head.count, head.last_hash = seq, prev
            s.commit()

    def delete_exports(s):
        for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "export")):
            s.delete(e)

    def move_sign(s):
        for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "sign")):
            e.username = "rad2"

    def forge_entry(s):
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        s.add(AuditEntry(seq=last.seq + 1, at=last.at, username="rad2", action="view", object_type="report_version",
                         object_id="1", details="{}", prev_hash="", entry_hash="", mac=last.mac))

    def roll_back(db):
        """Cut the two newest entries off and put back the head row as it was stored when the entry before
        them was the newest (the insider saved it then; its keyed checkpoint is genuine)."""
        from app.reports import audit_key

        key = audit_key.load_key(create=False)
        with db.engine.begin() as c:
            n = c.execute(text("select max(seq) from audit_entry")).scalar() - 2
            h = c.execute(text("select entry_hash from audit_entry where seq=:n"), {"n": n}).scalar()
            c.execute(text("delete from audit_entry where seq > :n"), {"n": n})
            c.execute(text("update audit_head set count=:n, last_hash=:h, mac=:m"),
                      {"n": n, "h": h, "m": audit_key.head_mac(key, n, h)})

    edits = {
        "newest entries cut off, earlier head put back": roll_back,
        "export entries deleted, chain recomputed": lambda db: rehash(db, delete_exports),
        "signature moved to another user, chain recomputed": lambda db: rehash(db, move_sign),
        "entry appended with a copied checkpoint": lambda db: rehash(db, forge_entry),
        "last entries cut off, head rewritten": [
            "delete from audit_entry where seq > (select max(seq) - 2 from audit_entry)",
            "update audit_head set count=count-2, last_hash=(select entry_hash from audit_entry order by seq desc "
            "limit 1)"],
        "resident's user_add rewritten to radiologist": [
            "update audit_entry set details='{\"role\":\"radiologist\"}' where action='user_add' and object_id='res'"],
    }
    return counts, {name: judge(lambda e=e: with_db_copy(work, e, audit_ok)) for name, e in edits.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flips", type=int, default=50)
    ap.add_argument("--seed", type=int, default=19)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="radstation-tamper-"))
    t0 = time.perf_counter()
    try:
        vid, files = setup(work)
        db_url = f"sqlite:///{work / 'base.db'}"
        flips: dict[str, dict] = {}
        edits: dict[str, dict[str, str]] = {}
        undetected: list[str] = []
        flips["stored report"], edits["stored report"] = stored_attacks(work, vid, args.flips, rng)
        for kind, label in (("sr", "DICOM SR"), ("pdf_dicom", "DICOM encapsulated PDF"),
                            ("kos", "DICOM key object selection")):
            flips[label], und = file_flips(files[kind], db_url, args.flips, rng, dicom_region)
            undetected += und
            edits[label] = dicom_edits(kind, files[kind], db_url)
        flips["signed PDF"], und = file_flips(files["signed_pdf"], db_url, args.flips, rng, pdf_region)
        undetected += und
        edits["signed PDF"] = pdf_edits(files["signed_pdf"], db_url)
        flips["audit log"], edits["audit log"] = audit_attacks(work, args.flips, rng)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"# Tamper benchmark ({platform.node()}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, seed {args.seed}, {time.perf_counter() - t0:.0f} s)\n")
    print(f"## {args.flips} random one-byte flips per artefact\n")
    print("| artefact | detected | undetected | crashed |\n| --- | ---: | ---: | ---: |")
    for name, c in flips.items():
        print(f"| {name} | {c['detected']} | {c['undetected']} | {c['crashed']} |")
    print("\n## Semantic edits\n")
    print("| artefact | edits | detected | undetected | crashed |\n| --- | ---: | ---: | ---: | ---: |")
    for name, res in edits.items():
        verdicts = [v.split(" ")[0] for v in res.values()]
        print(f"| {name} | {len(res)} | {verdicts.count('detected')} | {verdicts.count('undetected')} | "
              f"{verdicts.count('crashed')} |")
    misses = [f"{a}: {e} -> {v}" for a, res in edits.items() for e, v in res.items() if v != "detected"]
    print("\nSemantic edits not detected:" + ("".join(f"\n- {m}" for m in misses) if misses else " none"))
    print("\nUndetected or crashed flips:" + ("".join(f"\n- {u}" for u in undetected) if undetected else " none"))
    print("\nEdits: " + "; ".join(f"{a}: {', '.join(res)}" for a, res in edits.items()))


if __name__ == "__main__":
    main()
