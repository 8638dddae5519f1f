"""A study's presentation states and key image selections, indexed by the images they refer to.

Built once when a study opens, from the PR/KO objects stored with it. A file that cannot be read is
named in `problems` (shown to the user) and skipped; it never stops the study from opening.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from viewer.presentation.gsps import GSPS_CLASS, PR_PREFIX, PresentationState, PresentationStateReadError
from viewer.presentation.key_images import KOS_CLASS, KeyObjectReadError, KeySelection


@dataclass
class StudyObjects:
    """Presentation states and key image selections of one study."""

    states: list[PresentationState] = field(default_factory=list)
    key_selections: list[KeySelection] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_paths(cls, paths: Iterable[str | Path]) -> StudyObjects:
        """Read every GSPS and KOS among `paths`; other objects are ignored, unreadable ones reported."""
        out = cls()
        for path in paths:
            try:
                ds = pydicom.dcmread(path)
            except Exception as exc:  # noqa: BLE001 - a broken file is reported, the study still opens
                out.problems.append(f"{path}: not a readable DICOM file ({exc})")
                continue
            uid = str(ds.get("SOPClassUID", ""))
            try:
                if uid == KOS_CLASS:
                    out.key_selections.append(KeySelection.from_dataset(ds, str(path)))
                elif uid == GSPS_CLASS:
                    out.states.append(PresentationState.from_dataset(ds, str(path)))
                elif uid.startswith(PR_PREFIX):
                    out.problems.append(f"{path}: colour/other presentation states are not applied (SOP Class {uid})")
            except (PresentationStateReadError, KeyObjectReadError) as exc:
                out.problems.append(str(exc))
        # newest first: the most recent presentation of an image is the one applied by default
        out.states.sort(key=lambda s: s.date, reverse=True)
        return out

    def states_for(self, sop_uid: str) -> list[PresentationState]:
        """The presentation states that reference image `sop_uid`, newest first."""
        return [s for s in self.states if s.applies_to(sop_uid)]

    def key_titles(self, sop_uid: str, frame: int | None = None) -> list[str]:
        """Titles of the selections that mark image `sop_uid` (and 0-based `frame`, when limited to frames)."""
        out = []
        for sel in self.key_selections:
            if sop_uid not in sel.images:
                continue
            frames = sel.frames.get(sop_uid)
            if frames and frame is not None and frame + 1 not in frames:
                continue
            out.append(sel.title)
        return list(dict.fromkeys(out))

    def key_image_counts(self, series_uids: Iterable[str] = ()) -> dict[str, int]:
        """Series UID -> number of distinct key images in it (images whose series the KOS does not name are
        left out)."""
        per_series: dict[str, set[str]] = {}
        for sel in self.key_selections:
            for sop, series in sel.images.items():
                if series:
                    per_series.setdefault(series, set()).add(sop)
        wanted = set(series_uids)
        return {k: len(v) for k, v in per_series.items() if not wanted or k in wanted}

    def key_images(self) -> set[str]:
        return {sop for sel in self.key_selections for sop in sel.images}
