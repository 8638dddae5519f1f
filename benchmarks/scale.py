"""Worklist refresh time at 10k / 100k / 1M instances (SQLite by default, any SQLAlchemy URL with --url).

Fills a fresh, migrated database with a synthetic archive through the real schema (its count triggers
fire for every row, as on import), then times `app.db.queries.search_studies` - what the worklist runs on
each refresh - for the default view and every sort and filter a reader uses, median of --repeat runs.
Beside it, in the same run on the same database:

- `before`: the worklist query as it was before the kept counts (two correlated COUNT subqueries per
  study and a modality EXISTS per study), same rows;
- `floor`: the cheapest page of that many rows - study + patient columns, newest first, through the bare
  DBAPI cursor (no counts, no ORM) - which any listing costs; `ratio` = product / floor (CPU).

Wall and CPU milliseconds of this process are both printed: on a shared, loaded machine the CPU time is
the steadier figure (for SQLite it is the query's whole cost; for PostgreSQL the server's part is not in it).

Archive mixes (`--mix`): `hospital` (CR/DX 55 %, CT 17 %, MR 10 %, MG 10 %, US 8 %; about 80 instances per
study, 12k studies at 1M) and `cr` (a radiograph clinic: 1-3 images per study, about 500k studies at 1M).

    .venv/bin/python benchmarks/scale.py                      # 10k, 100k, 1M on SQLite, both mixes
    .venv/bin/python benchmarks/scale.py --sizes 1000000 --mix cr --url postgresql+psycopg://u@host/db
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, create_engine, exists, func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.db.database import Database  # noqa: E402
from app.db.models import AiDraft, Instance, Patient, Series, Study  # noqa: E402
from app.db.queries import search_studies  # noqa: E402

LIMIT = 2000  # what WorklistWidget asks for
TODAY = date(2025, 6, 30)
SURNAMES = ("SMITH JONES TAYLOR BROWN WILLIAMS WILSON JOHNSON DAVIES ROBINSON WRIGHT THOMPSON EVANS WALKER "
            "WHITE ROBERTS GREEN HALL WOOD JACKSON CLARKE MULLER SCHMIDT SCHNEIDER FISCHER WEBER MEYER WAGNER "
            "BECKER SCHULZ HOFFMANN MARTIN BERNARD DUBOIS THOMAS ROBERT RICHARD PETIT DURAND LEROY MOREAU "
            "ROSSI RUSSO FERRARI ESPOSITO BIANCHI ROMANO COLOMBO GARCIA FERNANDEZ LOPEZ MARTINEZ SANCHEZ PEREZ "
            "NGUYEN TRAN LE PHAM WANG LI ZHANG LIU CHEN YANG KIM LEE PARK CHOI SATO SUZUKI TAKAHASHI TANAKA").split()
GIVEN = ("JOHN MARY JAMES ANNA ROBERT LINDA MICHAEL SARAH DAVID LAURA PETER EMMA PAUL JULIA MARK SOPHIE "
         "THOMAS CLARA HANS MARIE LUCA GIULIA JOSE CARMEN MINH LAN WEI FANG JIN YUNA HIRO AIKO").split()

# (modality, share of studies, series per study (lo, hi), instances per series (lo, hi), description)
MIXES: dict[str, tuple[tuple[str, float, tuple[int, int], tuple[int, int], str], ...]] = {
    "hospital": (("CR", 0.35, (1, 2), (1, 2), "CHEST PA/LAT"), ("DX", 0.20, (1, 1), (1, 3), "KNEE 3 VIEWS"),
                 ("CT", 0.17, (2, 4), (60, 300), "CT CHEST ABDOMEN"), ("MR", 0.10, (5, 9), (20, 40), "MR BRAIN"),
                 ("MG", 0.10, (1, 1), (4, 4), "MAMMOGRAPHY SCREENING"), ("US", 0.08, (1, 1), (10, 30), "US ABDOMEN")),
    "cr": (("CR", 0.7, (1, 1), (1, 3), "CHEST PA"), ("DX", 0.3, (1, 2), (1, 2), "HAND"),),
}
STATUSES = (("final", 0.80), ("none", 0.12), ("draft", 0.04), ("preliminary", 0.03), ("amended", 0.01))


def _choose(rng: random.Random, weighted: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    x, acc = rng.random(), 0.0
    for item in weighted:
        acc += item[1]
        if x < acc:
            return item
    return weighted[-1]


def fill(db: Database, n_instances: int, mix: str, seed: int = 7) -> dict[str, int]:
    """Write a synthetic archive of about `n_instances` instances; returns the row counts."""
    rng = random.Random(seed)
    kinds = MIXES[mix]
    patients: list[dict[str, Any]] = []
    studies: list[dict[str, Any]] = []
    series: list[dict[str, Any]] = []
    instances: list[dict[str, Any]] = []
    drafts: list[dict[str, Any]] = []
    totals = {"patients": 0, "studies": 0, "series": 0, "instances": 0}
    now = TODAY
    uid_root = "1.2.826.0.1.3680043.8.498."
    with db.engine.begin() as conn:
        pid = conn.execute(select(func.coalesce(func.max(Patient.id), 0))).scalar_one()
        stid = conn.execute(select(func.coalesce(func.max(Study.id), 0))).scalar_one()
        seid = conn.execute(select(func.coalesce(func.max(Series.id), 0))).scalar_one()

    def flush(final: bool = False) -> None:
        if not final and len(instances) < 50_000:
            return
        with db.engine.begin() as conn:
            for table, rows in ((Patient, patients), (Study, studies), (Series, series), (Instance, instances),
                                (AiDraft, drafts)):
                if rows:
                    conn.execute(insert(table), rows)
                    rows.clear()

    while totals["instances"] < n_instances:
        pid += 1
        totals["patients"] += 1
        name = f"{rng.choice(SURNAMES)}^{rng.choice(GIVEN)}"
        patients.append({"id": pid, "patient_key": f"id:|P{pid:08d}", "patient_id": f"P{pid:08d}", "issuer": "",
                         "name": name, "name_search": name.replace("^", " "), "birth_date": "19600101", "sex": "O"})
        for _ in range(1 + int(rng.expovariate(1.2))):  # most patients have one or two studies
            modality, _share, nser, nins, description = _choose(rng, kinds)
            stid += 1
            totals["studies"] += 1
            day = now - timedelta(days=int(rng.random() ** 2 * 3650))  # more recent studies than old ones
            studies.append({"id": stid, "study_uid": f"{uid_root}{stid}", "patient_db_id": pid, "study_date": day,
                            "study_time": f"{rng.randrange(7, 20):02d}{rng.randrange(60):02d}00",
                            "accession": f"A{stid:09d}", "description": description, "referring_physician": "",
                            "modalities": modality, "report_status": _choose(rng, STATUSES)[0],
                            "created_at": now, "updated_at": now})
            if rng.random() < 0.05:
                drafts.append({"study_db_id": stid, "engine": "diffusion", "weights_hash": "", "findings": "x",
                               "impression": "", "images_used": [], "created_at": now})
            for number in range(1, rng.randint(*nser) + 1):
                seid += 1
                totals["series"] += 1
                series.append({"id": seid, "series_uid": f"{uid_root}{stid}.{number}", "study_db_id": stid,
                               "modality": modality, "series_number": number, "description": description,
                               "body_part": "", "frame_of_reference_uid": ""})
                for k in range(1, rng.randint(*nins) + 1):
                    totals["instances"] += 1
                    sop = f"{uid_root}{stid}.{number}.{k}"
                    instances.append({"sop_instance_uid": sop, "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
                                      "series_db_id": seid, "instance_number": k, "number_of_frames": 1,
                                      "rows": 512, "columns": 512, "image_position": [0.0, 0.0, float(k)],
                                      "image_orientation": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], "slice_location": float(k),
                                      "transfer_syntax_uid": "1.2.840.10008.1.2.1",
                                      "file_path": f"{stid % 256:02x}/{uid_root}{stid}/{seid}/{sop}.dcm",
                                      "file_size": 526_000, "file_sha256": f"{hash(sop) & (2**256 - 1):064x}",
                                      "imported_at": now})
            flush()
    flush(final=True)
    return totals


def _before_statement(sort: str, modality: str = "", name: str = "", limit: int = LIMIT) -> Any:
    """The worklist query before migration 0004 (correlated COUNTs, EXISTS per study), for comparison."""
    series_n = (select(func.count(Series.id)).where(Series.study_db_id == Study.id).correlate(Study)
                .scalar_subquery())
    inst_n = (select(func.count(Instance.id)).join(Series, Instance.series_db_id == Series.id)
              .where(Series.study_db_id == Study.id).correlate(Study).scalar_subquery())
    draft = exists().where(AiDraft.study_db_id == Study.id).correlate(Study)
    keys = {"date": Study.study_date, "images": inst_n, "name": Patient.name}
    stmt = select(Study.study_uid, Patient.name, Patient.patient_id, Study.study_date, Study.study_time,
                  Study.modalities, Study.description, Study.accession, series_n, inst_n, Study.report_status,
                  draft).join(Patient, Study.patient_db_id == Patient.id)
    conds: list[ColumnElement[bool]] = [Patient.name_search.ilike(f"%{w}%") for w in name.upper().split()]
    if modality:
        conds.append(exists().where(and_(Series.study_db_id == Study.id, Series.modality == modality)))
    if conds:
        stmt = stmt.where(and_(*conds))
    key = sort.removeprefix("-")
    col = keys[key]
    desc = sort.startswith("-")
    return stmt.order_by(col.desc() if desc else col.asc(),
                         Study.study_time.desc() if desc else Study.study_time.asc(), Study.id).limit(limit)


# (label, search_studies keywords, before-query arguments or None when there was no such case)
CASES: tuple[tuple[str, dict[str, Any], dict[str, Any] | None], ...] = (
    ("refresh (newest first)", {"sort": "-date"}, {"sort": "-date"}),
    ("sort by images", {"sort": "-images"}, {"sort": "-images"}),
    ("sort by patient name", {"sort": "name"}, {"sort": "name"}),
    ("filter modality CT", {"modality": "CT"}, {"sort": "-date", "modality": "CT"}),
    ("filter name 'smith'", {"name": "smith"}, {"sort": "-date", "name": "smith"}),
    ("filter name 'smith john'", {"name": "smith john"}, None),
    ("filter patient ID", {"patient_id": "P0000123"}, None),
    ("last 30 days", {"date_from": TODAY - timedelta(days=29), "date_to": TODAY}, None),
    ("sort by report status", {"sort": "report_status"}, None),
    ("sort by AI draft", {"sort": "-ai_draft"}, None),
    ("sort by series", {"sort": "-series"}, None),
    ("sort by description", {"sort": "description"}, None),
)


def _median_ms(fn: Any, repeat: int) -> tuple[float, float, Any]:
    """Median wall and median CPU milliseconds of this process (SQLite runs in it; on a shared machine
    the CPU time is the steadier figure, for PostgreSQL it leaves out the server's work)."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3, out


def measure(db: Database, repeat: int, before_repeat: int) -> list[dict[str, Any]]:
    rows_out: list[dict[str, Any]] = []
    floor_sql = ("SELECT study.study_uid, patient.name, patient.patient_id, study.study_date, study.study_time, "
                 "study.modalities, study.description, study.accession, study.report_status FROM study "
                 "JOIN patient ON study.patient_db_id = patient.id "
                 "ORDER BY study.study_date DESC, study.study_time DESC, study.id DESC LIMIT :n")
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        sql, params = floor_sql.replace(":n", "%(n)s" if db.engine.dialect.paramstyle == "pyformat" else "?"), None
        params = {"n": LIMIT} if db.engine.dialect.paramstyle == "pyformat" else (LIMIT,)

        def floor() -> int:
            cur.execute(sql, params)
            return len(cur.fetchall())

        floor()  # warm the cache like the product's first run
        floor_ms, floor_cpu, _ = _median_ms(floor, repeat)
    finally:
        raw.close()
    for label, kwargs, before in CASES:
        with db.session() as session:
            search_studies(session, limit=LIMIT, **kwargs)  # warm-up
            product_ms, product_cpu, result = _median_ms(lambda: search_studies(session, limit=LIMIT, **kwargs), repeat)  # noqa: B023
            before_ms = before_cpu = None
            if before is not None and before_repeat > 0:
                stmt = _before_statement(**before)
                before_ms, before_cpu, old = _median_ms(lambda: session.execute(stmt).all(), before_repeat)  # noqa: B023
                # the kept counts agree with the counted ones on every study both pages list
                counted = {r[0]: (r[8], r[9]) for r in old}
                kept = {r.study_uid: (r.series_count, r.instance_count) for r in result}
                assert all(counted[u] == kept[u] for u in counted.keys() & kept.keys()), label
        rows_out.append({"case": label, "rows": len(result), "product_ms": round(product_ms, 2),
                         "product_cpu_ms": round(product_cpu, 2),
                         "before_ms": None if before_ms is None else round(before_ms, 1),
                         "before_cpu_ms": None if before_cpu is None else round(before_cpu, 1),
                         "floor_ms": round(floor_ms, 2), "floor_cpu_ms": round(floor_cpu, 2),
                         "ratio": round(product_cpu / max(floor_cpu, 1e-3), 2)})
    return rows_out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000", help="instance counts, comma-separated")
    ap.add_argument("--mix", default="hospital,cr", help="archive mixes: hospital, cr (comma-separated)")
    ap.add_argument("--url", help="an empty database to fill (any SQLAlchemy URL); default a temp SQLite file")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--before-repeat", type=int, default=3, help="runs of the old query (0: skip it)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON objects")
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    for mix in args.mix.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            tmp = Path(tempfile.mkdtemp(prefix="radstation-scale-"))
            try:
                url = args.url or f"sqlite:///{tmp / 'scale.db'}"
                if args.url:  # start from an empty schema every time
                    eng = create_engine(url)
                    with eng.begin() as conn:
                        if eng.dialect.name == "postgresql":
                            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
                    eng.dispose()
                db = Database.open(url, store_dir=tmp / "store")
                try:
                    t0 = time.perf_counter()
                    totals = fill(db, size, mix)
                    fill_s = time.perf_counter() - t0
                    if db.engine.dialect.name == "postgresql":
                        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                            conn.execute(text("VACUUM ANALYZE"))  # what autovacuum does after a bulk load
                    rows = measure(db, args.repeat, args.before_repeat)
                finally:
                    db.dispose()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            backend = make_url(url).get_backend_name()
            print(f"\n{backend}, mix {mix}: {totals['instances']:,} instances, {totals['series']:,} series, "
                  f"{totals['studies']:,} studies, {totals['patients']:,} patients (filled in {fill_s:.0f} s); "
                  f"median of {args.repeat} (before: {args.before_repeat}); {platform.processor() or platform.machine()}")
            print(f"{'case':26} {'rows':>5} {'product ms':>10} {'(cpu)':>7} {'before ms':>10} {'(cpu)':>8} "
                  f"{'floor ms':>9} {'(cpu)':>6} {'ratio':>6}")
            for r in rows:
                before = "-" if r["before_ms"] is None else f"{r['before_ms']:.1f}"
                before_cpu = "-" if r["before_cpu_ms"] is None else f"{r['before_cpu_ms']:.1f}"
                print(f"{r['case']:26} {r['rows']:>5} {r['product_ms']:>10.1f} {r['product_cpu_ms']:>7.1f} "
                      f"{before:>10} {before_cpu:>8} {r['floor_ms']:>9.1f} {r['floor_cpu_ms']:>6.1f} "
                      f"{r['ratio']:>6.2f}")
                results.append({"backend": backend, "mix": mix, **totals, **r})
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
