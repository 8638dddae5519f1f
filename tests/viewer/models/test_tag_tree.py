"""Tag tree building and search, without Qt."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from viewer.models.tag_tree import dataset_nodes, filter_nodes


def _ds() -> Dataset:
    ds = Dataset()
    ds.PatientName = "Roe^Rich"
    ds.Modality = "CT"
    item = Dataset()
    item.CodeValue = "T-D3000"
    item.CodeMeaning = "Chest"
    ds.AnatomicRegionSequence = Sequence([item])
    ds.PixelData = b"\0" * 32
    return ds


def test_sequences_nest_and_bulk_data_is_summarised():
    nodes = dataset_nodes(_ds(), include_meta=False)
    seq = next(n for n in nodes if n.keyword == "AnatomicRegionSequence")
    assert seq.vr == "SQ" and seq.value == "1 item(s)"
    assert [c.keyword for c in seq.children[0].children] == ["CodeValue", "CodeMeaning"]
    pixel = next(n for n in nodes if n.tag == "(7FE0,0010)")
    assert "32 bytes" in pixel.value
    assert next(n for n in nodes if n.keyword == "PatientName").value == "Roe Rich"


def test_search_keeps_ancestors_of_nested_hits():
    nodes = dataset_nodes(_ds(), include_meta=False)
    hits = filter_nodes(nodes, "chest")
    assert len(hits) == 1 and hits[0].keyword == "AnatomicRegionSequence"
    assert [c.keyword for c in hits[0].children[0].children] == ["CodeMeaning"]
    assert [n.tag for n in filter_nodes(nodes, "00080060")] == ["(0008,0060)"]
    assert filter_nodes(nodes, "no such thing") == []
    assert filter_nodes(nodes, "  ") == nodes
