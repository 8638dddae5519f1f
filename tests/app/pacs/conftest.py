"""Fixtures for the PACS tests: a temp database, a known set of studies in the shared Orthanc, nodes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pydicom.dataset import Dataset

from app.db.database import Database
from app.pacs.nodes import PacsNode
from tests.support.orthanc_fixture import OrthancServer, make_study
from tests.support.pacs_helpers import dimse_node, web_node

# Fixed UIDs so a test can tell cheaply whether another test file cleared the shared Orthanc.
ROOT = "1.2.826.0.1.3680043.10.1138"


@dataclass(frozen=True)
class Catalog:
    """What `pacs_studies` put into Orthanc, by role."""

    prior_ct: list[Dataset]  # patient PAT-A, CT, 2023
    current_ct: list[Dataset]  # patient PAT-A, CT, 2024, 2 series
    mr: list[Dataset]  # patient PAT-A, MR, 2022
    other_cr: list[Dataset]  # patient PAT-B, CR

    @property
    def all(self) -> list[Dataset]:
        return [*self.prior_ct, *self.current_ct, *self.mr, *self.other_cr]


def _catalog() -> Catalog:
    return Catalog(
        prior_ct=make_study("PAT-A", "DOE^JANE", study_uid=f"{ROOT}.1", study_date="20230310",
                            accession="ACC-PRIOR", description="CT CHEST", n_instances=3, seed=1),
        current_ct=make_study("PAT-A", "DOE^JANE", study_uid=f"{ROOT}.2", study_date="20240415",
                              accession="ACC-CUR", description="CT CHEST FOLLOW-UP", n_series=2,
                              n_instances=3, seed=2),
        mr=make_study("PAT-A", "DOE^JANE", study_uid=f"{ROOT}.3", modality="MR", study_date="20220101",
                      accession="ACC-MR", description="MR BRAIN", n_instances=2, seed=3),
        other_cr=make_study("PAT-B", "ROE^RICHARD", study_uid=f"{ROOT}.4", modality="CR",
                            study_date="20240102", accession="ACC-B", description="CHEST PA", n_instances=1, seed=4),
    )


_CATALOG = _catalog()


@pytest.fixture(autouse=True)
def private_secrets(tmp_path, monkeypatch) -> None:
    """Node passwords go to an encrypted file in the test's own home, never a developer's real keyring."""
    monkeypatch.setenv("RADSTATION_SECRET_BACKEND", "file")
    if "RADSTATION_HOME" not in __import__("os").environ:
        monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))


@pytest.fixture
def pacs_studies(orthanc: OrthancServer) -> Catalog:
    """The catalog, stored into the shared Orthanc if it is not there (another test may have cleared it)."""
    present = set(orthanc.study_uids())
    wanted = {ds.StudyInstanceUID for ds in _CATALOG.all}
    if not wanted <= present or orthanc.instance_count() < len(_CATALOG.all):
        for ds in _CATALOG.all:
            orthanc.upload(ds)
    return _CATALOG


@pytest.fixture
def pacs_catalog() -> Catalog:
    """The catalog's datasets without touching Orthanc (for SCP tests)."""
    return _CATALOG


@pytest.fixture
def database(tmp_path, monkeypatch) -> Iterator[Database]:
    monkeypatch.setenv("RADSTATION_HOME", str(tmp_path / "home"))
    db = Database.open(f"sqlite:///{tmp_path / 'rad.db'}", store_dir=tmp_path / "store")
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def dimse(orthanc: OrthancServer) -> PacsNode:
    return dimse_node(orthanc)


@pytest.fixture
def web(orthanc: OrthancServer) -> PacsNode:
    return web_node(orthanc)
