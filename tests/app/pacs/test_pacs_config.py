"""Node and SCP configuration and query criteria: validation happens before any network traffic."""

from __future__ import annotations

import pytest

from app.pacs.errors import PacsConfigError
from app.pacs.nodes import NodeStore, PacsNode, StorageScpConfig
from app.pacs.query import QueryFilter
from app.settings import Settings


def test_valid_dimse_and_dicomweb_nodes_pass() -> None:
    PacsNode("main", ae_title="PACS", host="10.0.0.5", port=104).validate()
    PacsNode("web", protocol="dicomweb", url="https://pacs.example/dicom-web", auth="bearer", token="t").validate()


def test_every_problem_is_reported_at_once() -> None:
    node = PacsNode("", ae_title="WAY_TOO_LONG_AE_TITLE", host="bad host!", port=70000, retrieve="ftp")
    with pytest.raises(PacsConfigError) as info:
        node.validate()
    text = str(info.value)
    for fragment in ("name is empty", "called AE title", "host 'bad host!'", "port must be", "retrieve must be"):
        assert fragment in text
    assert len(info.value.problems) == 5


@pytest.mark.parametrize(
    ("node", "fragment"),
    [
        (PacsNode("w", protocol="dicomweb", url="ftp://x"), "must start with http"),
        (PacsNode("w", protocol="dicomweb", url="http://x", auth="basic"), "user name"),
        (PacsNode("w", protocol="dicomweb", url="http://x", auth="bearer"), "token"),
        (PacsNode("d", ae_title="A\\B", host="h"), "backslash"),
        (PacsNode("d", ae_title="PACS", host="h", calling_ae=""), "calling AE title is empty"),
        (PacsNode("d", ae_title="PACS", host="h", timeout=0), "timeout"),
    ],
)
def test_invalid_settings_name_the_field(node: PacsNode, fragment: str) -> None:
    with pytest.raises(PacsConfigError, match=fragment):
        node.validate()


def test_node_store_round_trip_keeps_unknown_keys_and_refuses_duplicates(tmp_path) -> None:
    settings = Settings(tmp_path / "settings.json")
    store = NodeStore(settings)
    store.upsert(PacsNode("Main", ae_title="PACS", host="pacs.local", port=11112))
    store.upsert(PacsNode("Web", protocol="dicomweb", url="http://h/dicom-web"))
    raw = Settings(tmp_path / "settings.json").get("pacs_nodes")
    raw[0]["future_field"] = 1
    settings.set("pacs_nodes", raw)
    settings.save()
    reloaded = NodeStore(Settings(tmp_path / "settings.json"))
    assert [n.name for n in reloaded.load()] == ["Main", "Web"]
    assert reloaded.get("main").port == 11112 and reloaded.get("main").extra == {"future_field": 1}
    with pytest.raises(PacsConfigError, match="two PACS nodes"):
        reloaded.save_all([*reloaded.load(), PacsNode("MAIN", ae_title="X", host="h")])
    with pytest.raises(PacsConfigError, match="no PACS node named 'nope'"):
        reloaded.get("nope")
    reloaded.remove("Web")
    assert [n.name for n in NodeStore(Settings(tmp_path / "settings.json")).load()] == ["Main"]


def test_storage_scp_config_is_off_by_default_and_validated(tmp_path) -> None:
    settings = Settings(tmp_path / "settings.json")
    cfg = StorageScpConfig.from_settings(settings)
    assert cfg.enabled is False and cfg.ae_title == "RADSTATION"
    with pytest.raises(PacsConfigError, match="SCP port"):
        StorageScpConfig(port=0).validate()
    StorageScpConfig(enabled=True, ae_title="RS1", port=11113, accepted_calling_aes=("CT1",)).to_settings(settings)
    again = StorageScpConfig.from_settings(Settings(tmp_path / "settings.json"))
    assert again.enabled and again.port == 11113 and again.accepted_calling_aes == ("CT1",)


def test_query_filter_normalizes_and_rejects_bad_input() -> None:
    q = QueryFilter(patient_name="doe", date_from="2024-01-01", date_to="20241231", modality="ct").normalized()
    assert q.date_range == "20240101-20241231" and q.modality == "CT" and q.name_pattern() == "doe*"
    assert QueryFilter(date_from="20240101").normalized().date_range == "20240101-"
    assert QueryFilter(patient_name="D?E*").name_pattern() == "D?E*"
    with pytest.raises(PacsConfigError, match="after to-date"):
        QueryFilter(date_from="20250101", date_to="20240101").normalized()
    with pytest.raises(PacsConfigError, match="not a real date"):
        QueryFilter(date_from="20240231").normalized()
    with pytest.raises(PacsConfigError, match="modality"):
        QueryFilter(modality="C T").normalized()
