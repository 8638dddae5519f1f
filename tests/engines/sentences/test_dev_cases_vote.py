"""Where the drafts' vote comes from in the engine backend: the site's own index once it holds the cases the
vote needs (sentence_decoding.cases, and min_index_cases in all), until then the development index of curated
cases (setting similar_dev_index), and the reader alone when neither can answer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.backends.diffusion import MedimBackend
from engines.similar import CaseIndex, CaseRecord
from engines.similar.embeddings import index_name

torch.set_num_threads(1)


def _write(folder: Path, prefix: str, n: int, dim: int = 1024) -> None:
    rng = np.random.default_rng(len(prefix) + n)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    idx = CaseIndex.open_or_create(folder, dim, index_name("pixels32"))
    idx.add([CaseRecord(f"{prefix}{i}", "Right lower lobe pneumonia.", "Pneumonia.", "dev") for i in range(n)], vecs)
    idx.save(folder)


@pytest.fixture(scope="module")
def backend(tmp_path_factory) -> MedimBackend:
    root = tmp_path_factory.mktemp("cases")
    _write(root / "dev" / "pixels32", "dev", 24)
    b = MedimBackend(device="cpu", cases_dir=root / "site", dev_cases_dir=root / "dev")
    assert b.pipe.decode_settings.case_embedding == "pixels32" and b.pipe.decode_settings.cases == 10
    assert b.pipe.decode_settings.min_index_cases == 1000  # shipped; scaled down here to keep the test small
    b.pipe.decode_settings = replace(b.pipe.decode_settings, min_index_cases=20)
    return b


def test_a_site_with_too_few_cases_votes_with_the_development_index_then_its_own(backend):
    site = backend.cases_dir / "pixels32"
    backend._refresh_cases()  # no site index yet
    assert backend.pipe.case_index is not None and len(backend.pipe.case_index) == 24
    _write(site, "site", 3)  # three signed studies: not enough for a vote of 10
    backend._refresh_cases()
    assert len(backend.pipe.case_index) == 24 and backend.pipe.case_index.get("dev0") is not None
    _write(site, "site", 12)  # enough for a vote of 10, but its 10 nearest would be nearly every case it holds
    backend._refresh_cases()
    assert len(backend.pipe.case_index) == 24 and backend.pipe.case_index.get("dev0") is not None
    _write(site, "site", 20)  # min_index_cases signed studies: the site's own index
    backend._refresh_cases()
    assert len(backend.pipe.case_index) == 20 and backend.pipe.case_index.get("site0") is not None
    backend._refresh_cases()  # unchanged files: still the site's
    assert backend.pipe.case_index.get("site0") is not None
    image = (np.arange(128 * 128).reshape(128, 128) % 251).astype(np.uint8)
    _, cases = backend.pipe.study_reading([image], backend.pipe.decode_settings)
    assert cases is not None and all(c.startswith("site") for c in cases)


def test_without_any_index_the_reader_reads_alone(tmp_path):
    b = MedimBackend(device="cpu", cases_dir=tmp_path / "site", dev_cases_dir=tmp_path / "missing")
    b._refresh_cases()
    assert b.pipe.case_index is None and b.cases_error == ""
    broken = tmp_path / "broken" / "pixels32"
    broken.mkdir(parents=True)
    (broken / "vectors.faiss").write_bytes(b"not an index")
    (broken / "cases.sqlite").write_bytes(b"not a database")
    b2 = MedimBackend(device="cpu", cases_dir=tmp_path / "site", dev_cases_dir=tmp_path / "broken")
    b2._refresh_cases()  # a broken development index: drafting goes on without it, and says so
    assert b2.pipe.case_index is None and "development cases not used" in b2.cases_error


def test_a_small_site_index_without_a_development_index_offers_sentences_but_does_not_vote(tmp_path):
    """Twelve signed studies answer a vote of 10 with nearly the same 10 for every image: every draft would state
    that handful's findings. The reader reads alone (its own thresholds); the cases' sentences are still offered."""
    b = MedimBackend(device="cpu", cases_dir=tmp_path / "site", dev_cases_dir=tmp_path / "missing")
    image = (np.arange(128 * 128).reshape(128, 128) % 251).astype(np.uint8)
    alone, none = b.pipe.study_reading([image], b.pipe.decode_settings)
    assert none is None
    _write(tmp_path / "site" / "pixels32", "site", 12)
    b._refresh_cases()
    assert b.pipe.case_index is not None and len(b.pipe.case_index) == 12
    reading, cases = b.pipe.study_reading([image], b.pipe.decode_settings)
    assert cases is not None and len(cases) == 10  # offered as candidates and provenance
    assert reading.thresholds == alone.thresholds and reading.states == alone.states  # but no vote
    voting = replace(b.pipe.decode_settings, min_index_cases=12)
    voted, _ = b.pipe.study_reading([image], voting)
    assert voted.thresholds != alone.thresholds  # the same index votes once it is large enough
