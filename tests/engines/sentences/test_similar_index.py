"""CaseIndex: add, replace, remove, search (best first, excluding the study itself, by origin), persist, and
clear errors for a wrong embedding size or a broken folder."""

from __future__ import annotations

import numpy as np
import pytest

from engines.similar import CaseIndex, CaseRecord


def _vec(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=np.float32)


def test_search_replace_remove_and_persist(tmp_path):
    idx = CaseIndex(3)
    idx.add([CaseRecord("a", "Large left pleural effusion.", "Left effusion.", "site"),
             CaseRecord("b", "The lungs are clear.", "Normal chest.", "dev"),
             CaseRecord("c", "Cardiomegaly.", "Enlarged heart.", "site")],
            np.stack([_vec(1, 0, 0), _vec(0, 1, 0), _vec(0.9, 0.1, 0)]))
    hits = idx.search(_vec(1, 0, 0), 2)
    assert [h.case_id for h in hits] == ["a", "c"] and hits[0].score == pytest.approx(1.0)
    assert hits[0].labels["Pleural Effusion"] == 1 and ("impression", "Left effusion.") in hits[0].sentences()
    assert [h.case_id for h in idx.search(_vec(1, 0, 0), 2, exclude=["a"])] == ["c", "b"]
    assert [h.case_id for h in idx.search(_vec(1, 0, 0), 1, origin="dev")] == ["b"]
    assert CaseIndex.label_share(hits)["Pleural Effusion"] == 0.5
    idx.add([CaseRecord("a", "No effusion.", "Normal.", "site")], _vec(0, 0, 1)[None])  # amended: replaced
    assert len(idx) == 3 and idx.search(_vec(0, 0, 1), 1)[0].findings == "No effusion."
    assert idx.remove(["c"]) == 1 and len(idx) == 2
    idx.save(tmp_path / "ix")
    back = CaseIndex.load(tmp_path / "ix")
    assert len(back) == 2 and back.get("b").impression == "Normal chest."
    assert [h.case_id for h in back.search(_vec(0, 1, 0), 1)] == ["b"]


def test_wrong_sizes_and_broken_folders_are_clear_errors(tmp_path):
    idx = CaseIndex(3)
    with pytest.raises(ValueError, match="size 4"):
        idx.add([CaseRecord("a", "x.", "y.")], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        idx.add([CaseRecord("a", "x.", "y.")], np.full((1, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="query embedding has size 2"):
        idx.search(np.ones(2, np.float32))
    with pytest.raises(FileNotFoundError, match="holds no case index"):
        CaseIndex.load(tmp_path)
    idx.add([CaseRecord("a", "x.", "y.")], np.ones((1, 3), np.float32))
    idx.save(tmp_path / "ix")
    with pytest.raises(ValueError, match="rebuild it"):
        CaseIndex.open_or_create(tmp_path / "ix", 5, "medim-image-tokens")
    (tmp_path / "ix" / "vectors.faiss").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="cannot read the vector index"):
        CaseIndex.load(tmp_path / "ix")
