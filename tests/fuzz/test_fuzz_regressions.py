"""Every input in the fuzz corpus (seeds, and each input that once crashed or hung a target) is replayed
through its target: none may raise anything but the refusal the target allows, nor take long."""

from __future__ import annotations

import time

import pytest

from fuzz.targets import CORPUS, TARGETS

CASES = sorted((t, p) for t in TARGETS for p in (CORPUS / t).iterdir() if p.is_file()) if CORPUS.is_dir() else []


def test_every_target_has_a_corpus() -> None:
    for target in TARGETS:
        assert any((CORPUS / target).iterdir()), f"tests/fuzz/corpus/{target} is empty"


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t}/{p.name}" for t, p in CASES])
def test_corpus_input_is_handled(target: str, path) -> None:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    TARGETS[target](path.read_bytes())
    assert time.perf_counter() - started < 20, "a hang: the fuzzer's limit is 10 s per input"
