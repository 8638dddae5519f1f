"""A DICOM dataset as a tree of displayable rows, and the search that filters it.

Qt-free so filtering is tested without a window; the TagBrowser widget only shows these nodes.
Bulk values (Pixel Data, other OB/OW data) are summarised by size and never read from disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_description
from pydicom.dataset import Dataset

BULK_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
MAX_VALUE_CHARS = 160


@dataclass
class TagNode:
    """One row: an element, or a sequence item (tag '' and keyword 'Item N')."""

    tag: str
    keyword: str
    name: str
    vr: str
    value: str
    children: list[TagNode] = field(default_factory=list)

    def matches(self, needle: str) -> bool:
        """True if `needle` (already normalised by `_norm`) is in the tag, keyword, name or value."""
        hay = (_norm(self.tag), self.keyword.lower(), self.name.lower(), self.value.lower())
        return any(needle in h for h in hay if h)

    def count(self) -> int:
        return 1 + sum(c.count() for c in self.children)


def _norm(text: str) -> str:
    """Lower-case; tags written '(0010,0010)', '0010,0010' or '00100010' all compare equal."""
    t = text.strip().lower()
    stripped = t.replace("(", "").replace(")", "").replace(",", "").replace(" ", "")
    return stripped if len(stripped) <= 8 and all(c in "0123456789abcdef" for c in stripped) and stripped else t


def _is_bulk(vr: str, tag: Any) -> bool:
    return tag == 0x7FE00010 or vr in BULK_VRS or "OB" in vr or "OW" in vr


def _length(raw: Any) -> int:
    """Byte length without loading a deferred value (raw elements carry it; in-memory ones have bytes)."""
    length = getattr(raw, "length", None)
    if length:
        return int(length)
    value = getattr(raw, "value", None)
    return len(value) if isinstance(value, bytes | bytearray) else 0


def _value_text(elem: Any) -> str:
    if _is_bulk(str(elem.VR), elem.tag):
        return f"<{elem.VR} data, {_length(elem)} bytes>"
    try:
        value = elem.value
    except Exception as exc:  # a malformed value: show why instead of failing the whole tree
        return f"<unreadable: {exc}>"
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = str(value) if not isinstance(value, list | tuple) else "\\".join(str(v) for v in value)
    if elem.VR == "PN":
        text = text.replace("^", " ").strip()
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "\u2026"


def dataset_nodes(ds: Dataset, include_meta: bool = True) -> list[TagNode]:
    """Every element of `ds` (file meta first), sequences nested with one node per item."""
    nodes: list[TagNode] = []
    meta = getattr(ds, "file_meta", None) if include_meta else None
    if meta is not None:
        nodes.extend(_elements(meta))
    nodes.extend(_elements(ds))
    return nodes


def _elements(ds: Dataset) -> list[TagNode]:
    out: list[TagNode] = []
    for tag in ds.keys():
        raw = ds.get_item(tag)
        vr = str(getattr(raw, "VR", "") or "")
        tag_text = f"({tag.group:04X},{tag.element:04X})"
        try:
            name = dictionary_description(tag)
        except KeyError:
            name = "Private tag" if tag.is_private else "Unknown"
        if _is_bulk(vr, tag):
            out.append(TagNode(tag_text, _keyword(tag), name, vr, f"<{vr} data, {_length(raw)} bytes>"))
            continue
        try:
            elem = ds[tag]
        except Exception as exc:
            out.append(TagNode(tag_text, _keyword(tag), name, vr, f"<unreadable: {exc}>"))
            continue
        keyword = elem.keyword or _keyword(tag)
        if elem.VR == "SQ":
            items = elem.value or []
            node = TagNode(tag_text, keyword, name, "SQ", f"{len(items)} item(s)")
            for i, item in enumerate(items, start=1):
                node.children.append(TagNode("", f"Item {i}", f"Item {i}", "", "", _elements(item)))
            out.append(node)
        else:
            out.append(TagNode(tag_text, keyword, elem.name if elem.name else name, elem.VR, _value_text(elem)))
    return out


def _keyword(tag: Any) -> str:
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag) or ""


def filter_nodes(nodes: list[TagNode], text: str) -> list[TagNode]:
    """The tree reduced to rows matching `text` plus their ancestors (so a nested hit keeps its path);
    a matching sequence keeps all its items. Empty text returns everything."""
    needle = _norm(text)
    if not needle:
        return nodes
    out: list[TagNode] = []
    for n in nodes:
        if n.matches(needle):
            out.append(n)
            continue
        kids = filter_nodes(n.children, text)
        if kids:
            out.append(TagNode(n.tag, n.keyword, n.name, n.vr, n.value, kids))
    return out
