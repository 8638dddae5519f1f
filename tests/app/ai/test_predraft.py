"""Batch pre-drafting of a worklist (`radstation engine predraft`): drafts stored with their provenance for the
radiologist to load later from the AI panel; over the department's engine service on a real local Ray
cluster, with the batch stopping cleanly when the service goes away."""

from __future__ import annotations

import pytest

from app.ai.ai_store import drafts_for, save_draft
from app.ai.predraft import Predrafter, select_studies
from app.cli import main
from app.db.database import Database
from app.db.models import Instance, Patient, Series, Study
from app.demo_studies import ensure_demo_imported
from engines.backends import create_backend
from engines.backends.results import TextOutput, TokenUncertainty
from engines.models.tiny import make_tiny_checkpoint


@pytest.fixture
def demo_db(tmp_path, monkeypatch):
    """The demo studies imported into a fresh database, plus one study whose images this workstation lacks."""
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'pre.db'}"
    db = Database.open(url)  # the store in RADSTATION_HOME, where the command looks too
    ensure_demo_imported(db)
    with db.session() as s:  # listed in the (shared) database, its file on another workstation
        study = Study(study_uid="1.2.3.404", patient=Patient(patient_key="|X", patient_id="X", name="NO^FILES"),
                      modalities="DX", report_status="none")
        series = Series(series_uid="1.2.3.404.1", study=study, modality="DX")
        s.add(Instance(sop_instance_uid="1.2.3.404.1.1", series=series, number_of_frames=1,
                       file_path="1.2.3.404/1.2.3.404.1/1.2.3.404.1.1.dcm"))
    yield db, url
    db.dispose()


def _dx_uids(db: Database) -> list[str]:
    return select_studies(db, modality="DX")


def test_predraft_with_the_local_engine_stores_drafts_for_later(demo_db, tmp_path) -> None:
    db, _url = demo_db
    uids = _dx_uids(db)
    assert "1.2.3.404" in uids and len(uids) >= 3
    backend = create_backend("diffusion", path=str(make_tiny_checkpoint(tmp_path / "tiny")), device="cpu")
    seen = []
    outcomes = Predrafter(db, backend, "diffusion", concurrency=4, steps=3, seed=2).run(
        uids, lambda o, done, total: seen.append((o.study_uid, done, total)))
    by_uid = {o.study_uid: o for o in outcomes}
    assert by_uid["1.2.3.404"].state == "skipped" and "no image" in by_uid["1.2.3.404"].message
    drafted = [u for u in uids if u != "1.2.3.404"]
    assert all(by_uid[u].state == "drafted" and by_uid[u].draft_id for u in drafted)
    assert [d for _u, d, _t in seen] == list(range(1, len(uids) + 1))  # one report line per study, in order
    stored = drafts_for(db, drafted[0])
    assert len(stored) == 1 and stored[0]["engine"] == "diffusion" and stored[0]["seed"] == 2
    assert stored[0]["weights_hash"] == backend.weights_hash and stored[0]["images_used"]
    # drafted studies drop out of the next batch; --redraft takes them again
    assert select_studies(db, modality="DX") == ["1.2.3.404"]
    assert set(select_studies(db, modality="DX", redraft=True)) == set(uids)


def test_ai_panel_offers_the_stored_draft_and_loads_it_on_click(qtbot, demo_db) -> None:
    from PySide6.QtCore import Qt

    from app.ai.drafting import DraftService
    from app.ai.engine_client import EngineClient
    from app.widgets.ai_panel import AiPanel

    db, _url = demo_db
    uid = _dx_uids(db)[0]
    result = TextOutput(text="The lungs are clear. Impression: Normal chest.", findings="The lungs are clear.",
                        impression="Normal chest.", seed=4, steps=3, confidence=0.8,
                        tokens=[TokenUncertainty("clear", 0.8, 0.1, "findings", 14, 19, 1)],
                        provenance={"engine": "ray-serve", "weights_hash": "abc123", "model": "/srv/w",
                                    "device": "served"})
    save_draft(db, uid, result, ["1.2.9"])
    client = EngineClient("diffusion", {})  # no worker starts: nothing is submitted
    panel = AiPanel(client, DraftService(client, db))
    qtbot.addWidget(panel)
    panel.set_study("1.2.3.404", [])
    assert not panel.load_stored_button.isVisibleTo(panel)
    panel.set_study(uid, [])
    assert panel.load_stored_button.isVisibleTo(panel) and "by ray-serve" in panel.stored_label.text()
    with qtbot.waitSignal(panel.draftReady, timeout=5000) as sig:
        qtbot.mouseClick(panel.load_stored_button, Qt.MouseButton.LeftButton)
    got_uid, draft = sig.args
    assert got_uid == uid and draft["findings"] == "The lungs are clear." and draft["impression"] == "Normal chest."
    prov = draft["provenance"]
    assert prov["engine"] == "ray-serve" and prov["weights_hash"] == "abc123" and prov["seed"] == 4 and prov["draft_id"]
    assert draft["token_uncertainty"][0]["uncertainty"] == 0.2
    client.shutdown()


def test_predraft_command_fans_a_worklist_out_over_the_engine_service(tiny_engine_service, demo_db, capsys) -> None:
    url, weights = tiny_engine_service
    db, db_url = demo_db
    uids = _dx_uids(db)
    code = main(["engine", "predraft", "--db-url", db_url, "--modality", "DX", "--engine", "ray-serve", "--url", url,
                 "--concurrency", "3", "--steps", "3"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"pre-drafting {len(uids)} studies with 'ray-serve' (3 at a time)" in out
    assert "drafted in" in out and "(replica " in out and "1.2.3.404 skipped: no image" in out
    assert f"pre-draft finished: {len(uids) - 1} drafted, 1 skipped" in out
    local = create_backend("diffusion", path=str(weights), device="cpu")
    for uid in uids[:-1] if uids[-1] == "1.2.3.404" else [u for u in uids if u != "1.2.3.404"]:
        (row,) = drafts_for(db, uid)
        assert row["engine"] == "ray-serve" and row["weights_hash"] == local.weights_hash
    # nothing left to do: the next run says so and drafts nothing twice
    assert main(["engine", "predraft", "--db-url", db_url, "--modality", "DX", "--engine", "ray-serve", "--url", url,
                 "--study", uids[0]]) == 0
    assert "no study to pre-draft" in capsys.readouterr().out


def test_predraft_command_says_when_the_service_is_down(demo_db, capsys) -> None:
    import socket

    _db, db_url = demo_db
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/radstation"
    assert main(["engine", "predraft", "--db-url", db_url, "--engine", "ray-serve", "--url", dead]) == 2
    err = capsys.readouterr().err
    assert f"engine 'ray-serve' is not usable: cannot reach the engine service at {dead} (connection refused)" in err
    assert "radstation engine serve" in err


def test_batch_stops_at_the_first_study_that_finds_the_service_gone(ray_cluster, tiny_engine_service, demo_db) -> None:
    from engines.serve.launch import stop

    _url, weights = tiny_engine_service
    db, _db_url = demo_db
    gone = ray_cluster.deploy(model=str(weights), device="cpu", replicas=1, name="radstation-gone",
                              route_prefix="/gone", cpus_per_replica=0.1)
    backend = create_backend("ray-serve", url=gone)
    stop(ray_cluster.address, name="radstation-gone")
    uids = [u for u in _dx_uids(db) if u != "1.2.3.404"]
    outcomes = Predrafter(db, backend, "ray-serve", concurrency=1).run(uids)
    assert outcomes[0].state == "failed" and "no RadStation engine is deployed at" in outcomes[0].message
    assert [o.state for o in outcomes[1:]] == ["not attempted"] * (len(uids) - 1)
    assert outcomes[1].message == outcomes[0].message
    assert all(not drafts_for(db, u) for u in uids)
