"""PgCaseIndex on a real PostgreSQL with pgvector: the CaseIndex behaviour (same test for both backends), one
index shared by two workstations, HNSW recall and use, and clear errors when pgvector is missing or refused."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from engines.similar import CaseIndex, CaseRecord
from engines.similar.pg_index import PgCaseIndex, PgVectorMissing, engine_for, hnsw_index_name

EMB = "medim-image-tokens"


def _vec(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=np.float32)


@pytest.fixture(params=["faiss", "pgvector"])
def make_index(request):
    """A factory of empty 3-d indexes, and a function giving the index as another process would see it later
    (FAISS: saved and loaded; pgvector: opened again over a new connection)."""
    opened = []
    if request.param == "faiss":
        folder = request.getfixturevalue("tmp_path") / "ix"

        def reopen(idx):
            idx.save(folder)
            return CaseIndex.load(folder)

        yield (lambda: CaseIndex(3)), reopen
        return
    url = request.getfixturevalue("postgres").new_database()

    def make():
        opened.append(PgCaseIndex.open(url, EMB, 3))
        return opened[-1]

    def reopen(_idx):
        opened.append(PgCaseIndex.open(url, EMB))
        return opened[-1]

    yield make, reopen
    for idx in opened:
        idx.close()


def test_search_replace_remove_and_persist(make_index):
    make, reopen = make_index
    idx = make()
    idx.add([CaseRecord("a", "Large left pleural effusion.", "Left effusion.", "site"),
             CaseRecord("b", "The lungs are clear.", "Normal chest.", "dev"),
             CaseRecord("c", "Cardiomegaly.", "Enlarged heart.", "site")],
            np.stack([_vec(1, 0, 0), _vec(0, 1, 0), _vec(0.9, 0.1, 0)]))
    hits = idx.search(_vec(1, 0, 0), 2)
    assert [h.case_id for h in hits] == ["a", "c"] and hits[0].score == pytest.approx(1.0)
    assert hits[1].score == pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-5)
    assert hits[0].labels["Pleural Effusion"] == 1 and ("impression", "Left effusion.") in hits[0].sentences()
    assert [h.case_id for h in idx.search(_vec(1, 0, 0), 2, exclude=["a"])] == ["c", "b"]
    assert [h.case_id for h in idx.search(_vec(1, 0, 0), 1, origin="dev")] == ["b"]
    assert idx.search(_vec(1, 0, 0), 0) == []
    assert idx.label_share(hits)["Pleural Effusion"] == 0.5
    idx.add([CaseRecord("a", "No effusion.", "Normal.", "site")], _vec(0, 0, 1)[None])  # amended: replaced
    assert len(idx) == 3 and idx.search(_vec(0, 0, 1), 1)[0].findings == "No effusion."
    assert idx.remove(["c"]) == 1 and len(idx) == 2 and idx.get("c") is None
    back = reopen(idx)
    assert len(back) == 2 and back.get("b").impression == "Normal chest."
    assert [h.case_id for h in back.search(_vec(0, 1, 0), 1)] == ["b"]


def test_wrong_sizes_are_clear_errors(make_index):
    make, _ = make_index
    idx = make()
    with pytest.raises(ValueError, match="size 4"):
        idx.add([CaseRecord("a", "x.", "y.")], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        idx.add([CaseRecord("a", "x.", "y.")], np.full((1, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="query embedding has size 2"):
        idx.search(np.ones(2, np.float32))
    assert len(idx) == 0


def test_two_workstations_share_one_index_and_embeddings_stay_apart(postgres):
    url = postgres.new_database()
    ws1, ws2 = PgCaseIndex.open(url, EMB, 3), PgCaseIndex.open(url, EMB, 3)
    pix = PgCaseIndex.open(url, "pixels32", 5)  # the drafts' embedding: its own size, its own HNSW index
    try:
        ws1.add([CaseRecord("1.2.3", "Right upper lobe pneumonia.", "Pneumonia.", "site", image_ref="1.2.3/4")],
                _vec(0, 0, 2)[None])
        hit = ws2.search(_vec(0, 0.1, 1), 1)[0]  # the other workstation finds it at once
        assert (hit.case_id, hit.image_ref, hit.labels["Pneumonia"]) == ("1.2.3", "1.2.3/4", 1)
        assert len(pix) == 0 and pix.search(np.ones(5, np.float32), 3) == []
        with pytest.raises(ValueError, match="size 3, not 4"):
            PgCaseIndex.open(url, EMB, 4)
        with pytest.raises(LookupError, match="no other-emb"):
            PgCaseIndex.open(url, "other-emb")
        with pytest.raises(ValueError, match="embedding name"):
            PgCaseIndex.open(url, "x'; DROP TABLE similar_case; --", 3)
    finally:
        for i in (ws1, ws2, pix):
            i.close()


def test_hnsw_index_is_used_and_finds_the_exact_neighbours(postgres):
    url = postgres.new_database()
    rng = np.random.default_rng(0)
    dim, n = 16, 3000
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    idx = PgCaseIndex.open(url, EMB, dim)
    try:
        idx.add([CaseRecord(f"c{i}", "Heart size normal.", "", "site" if i % 3 else "dev", {"No Finding": 1})
                 for i in range(n)], vecs)
        unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        recall = []
        for q in rng.standard_normal((20, dim)).astype(np.float32):
            exact = {f"c{i}" for i in np.argsort(-(unit @ q))[:10]}
            recall.append(len(exact & {h.case_id for h in idx.search(q, 10)}) / 10)
            dev = idx.search(q, 10, origin="dev", exclude=["c0"])  # a filter still returns K rows
            assert len(dev) == 10 and all(h.origin == "dev" and h.case_id != "c0" for h in dev)
            assert [h.score for h in dev] == sorted((h.score for h in dev), reverse=True)
        assert np.mean(recall) >= 0.95
        with idx.engine.begin() as conn:  # with statistics (autovacuum's ANALYZE) the planner takes the HNSW index
            conn.execute(sa.text("ANALYZE similar_case"))
            plan = "\n".join(r[0] for r in conn.execute(sa.text(
                f"EXPLAIN SELECT case_id FROM similar_case WHERE embedder = '{EMB}' ORDER BY "
                f"embedding::vector({dim}) <=> CAST('{[0.0] * (dim - 1) + [1.0]}' AS vector({dim})) LIMIT 5")))
        assert hnsw_index_name(EMB) in plan
    finally:
        idx.close()


def test_pgvector_refused_is_a_clear_error_and_the_migration_still_runs(postgres):
    """A workstation user who may not create extensions: the schema migrates, the index says what the admin
    runs; after CREATE EXTENSION vector the index works without another migration."""
    from app.db.database import Database

    name = "t_noext_" + np.random.default_rng().integers(1 << 30).astype(str)
    postgres.execute("DO $$ BEGIN CREATE ROLE ws LOGIN NOSUPERUSER; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    postgres.execute(f'CREATE DATABASE "{name}" OWNER ws')
    url = f"postgresql+psycopg://ws@{postgres.host}:{postgres.port}/{name}"
    db = Database.open(url)
    try:
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT to_regclass('similar_case')")).scalar() is None
        with pytest.raises(PgVectorMissing, match="CREATE EXTENSION vector") as err:
            PgCaseIndex.open(url, EMB, 3)
        assert name in str(err.value) and "permission denied" in str(err.value)
        postgres.execute("CREATE EXTENSION vector", database=name)
        idx = PgCaseIndex.open(url, EMB, 3)
        idx.add([CaseRecord("a", "x.", "y.")], np.ones((1, 3), np.float32))
        assert [h.case_id for h in idx.search(np.ones(3, np.float32), 1)] == ["a"]
        idx.close()
    finally:
        db.engine.dispose()


def test_the_migration_creates_the_extension_and_tables(postgres):
    from app.db.database import Database

    url = postgres.new_database()
    db = Database.open(url)
    try:
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT extname FROM pg_extension WHERE extname = 'vector'")).scalar()
            assert conn.execute(sa.text("SELECT to_regclass('similar_case')")).scalar() == "similar_case"
        assert engine_for(url.replace("postgresql+psycopg", "postgresql")).url.drivername == "postgresql+psycopg"
        with pytest.raises(ValueError, match="PostgreSQL URL"):
            engine_for("sqlite:///x.db")
    finally:
        db.engine.dispose()


def test_a_signed_study_indexed_in_postgres_grounds_drafts_on_every_workstation(postgres):
    """index_case (worker job) writes both embeddings to the department database; another workstation's engine,
    configured with the same URL, drafts from it (the reading names the case) and finds it by `similar`."""
    import torch

    from engines.backends.diffusion import MedimBackend
    from engines.similar.worker_jobs import index_case, similar

    torch.set_num_threads(1)
    url = postgres.new_database()
    yy, xx = np.mgrid[0:128, 0:128]
    image = (120 + 50 * np.sin(xx / 9.0) * np.cos(yy / 13.0)).astype(np.uint8)
    backend = MedimBackend(device="cpu", cases_url=url.replace("postgresql+psycopg", "postgresql"))
    params = {"images": [image], "case_id": "1.2.840.5", "findings": "Large right pleural effusion.",
              "impression": "Right pleural effusion.", "cases_url": backend.cases_url, "image_ref": "1.2.840.5/1"}
    assert index_case(backend, params, lambda *a: None, lambda: False)["total"] == 1
    out = backend.draft([image])
    assert backend.cases_error == "" and "cases_error" not in out.extra and out.text.strip()
    assert type(backend.pipe.case_index).__name__ == "PgCaseIndex"
    _, cases = backend.pipe.study_reading([image], backend.pipe.decode_settings)  # what the draft grounded on
    assert list(cases) == ["1.2.840.5"] and ("impression", "Right pleural effusion.") in cases["1.2.840.5"]
    found = similar(backend, {"images": [image], "k": 3, "cases_url": backend.cases_url, "cases_dir": "/nonexistent"},
                    lambda *a: None, lambda: False)
    assert [h["case_id"] for h in found.hits] == ["1.2.840.5"] and found.hits[0]["score"] > 0.99
    assert found.hits[0]["image_ref"] == "1.2.840.5/1"
    down = similar(backend, {"images": [image], "cases_url": "postgresql://nobody@127.0.0.1:1/x"},
                   lambda *a: None, lambda: False)  # database unreachable: a note, no traceback
    assert down.hits == [] and "site index not used" in down.notes[0] and "127.0.0.1" in down.notes[0]
    # the department database goes away between drafts: the draft is written without similar cases, and says so
    postgres.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    out = backend.draft([image])
    assert out.text.strip() and "similar cases not used" in out.extra["cases_error"]


def test_a_workstation_folder_is_copied_into_the_department_index(postgres, tmp_path, capsys):
    from engines.similar.copy_index import main

    folder = tmp_path / "similar_cases"
    tokens, pixels = CaseIndex(3), CaseIndex(4, "pixels32")
    records = [CaseRecord("1.1", "Left pleural effusion.", "Effusion.", "site", image_ref="1.1/7", title="A"),
               CaseRecord("1.2", "The lungs are clear.", "Normal chest.", "site", title="B")]
    tokens.add(records, np.stack([_vec(1, 0, 0), _vec(0, 1, 0)]))
    pixels.add(records, np.stack([_vec(1, 0, 0, 0), _vec(0, 0, 0, 1)]))
    tokens.save(folder)
    pixels.save(folder / "pixels32")
    url = postgres.new_database()
    assert main(["--from", str(folder), "--to", url]) == 0
    assert "medim-image-tokens: 2 cases copied" in capsys.readouterr().out
    dest, pix = PgCaseIndex.open(url, EMB), PgCaseIndex.open(url, "pixels32")
    try:
        want = tokens.search(_vec(0.9, 0.2, 0), 2)
        got = dest.search(_vec(0.9, 0.2, 0), 2)
        assert [(h.case_id, h.image_ref, h.title, h.labels) for h in got] == \
            [(h.case_id, h.image_ref, h.title, h.labels) for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-6)
        assert pix.search(_vec(0, 0, 0, 1), 1)[0].case_id == "1.2"
    finally:
        dest.close()
        pix.close()
    assert main(["--from", str(tmp_path / "nothing"), "--to", url]) == 1
    assert "holds no case index" in capsys.readouterr().err
