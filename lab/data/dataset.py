"""A validated, split-aware collection of Samples with the list of files that were skipped and why."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engines.data.sample import Sample


class EmptyDatasetError(ValueError):
    """No usable item was found: an error, never an empty run."""


class SplitLeakError(ValueError):
    """One patient appears in more than one split."""


@dataclass(frozen=True)
class Problem:
    path: Path
    reason: str

    def __iter__(self) -> Iterator[object]:  # so `for path, reason in ds.problems` works
        return iter((self.path, self.reason))

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Dataset(Sequence[Sample]):
    """Samples plus the problems met while reading (each a path and a reason, the file was skipped).

    Construction validates: at least one sample (else EmptyDatasetError) and no patient in two splits
    (else SplitLeakError), because a leak silently inflates every metric computed on it."""

    samples: list[Sample]
    problems: list[Problem] = field(default_factory=list)
    name: str = "dataset"

    def __post_init__(self) -> None:
        if not self.samples:
            detail = f"; {len(self.problems)} file(s) skipped, first: {self.problems[0]}" if self.problems else ""
            raise EmptyDatasetError(f"{self.name}: no usable items{detail}")
        check_patient_splits(self.samples)
        self._index = {s.image_id: i for i, s in enumerate(self.samples)}

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self.samples[i]
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def get(self, image_id: str) -> Sample | None:
        i = self._index.get(image_id)
        return None if i is None else self.samples[i]

    def by_split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def split_counts(self) -> dict[str, int]:
        return dict(Counter(s.split for s in self.samples))

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.split_counts().items()))
        return f"{self.name}: {len(self)} items ({counts}); {len(self.problems)} skipped"

    def replace_samples(self, samples: Iterable[Sample]) -> Dataset:
        return Dataset(list(samples), list(self.problems), self.name)


def check_patient_splits(samples: Iterable[Sample]) -> None:
    """Raise SplitLeakError when a (source, patient) pair has samples in two splits."""
    seen: dict[tuple[str, str], str] = {}
    for s in samples:
        key = (s.source, s.patient_id)
        prev = seen.setdefault(key, s.split)
        if prev != s.split:
            raise SplitLeakError(f"patient {s.patient_id} ({s.source}) is in both {prev} and {s.split}")
