"""One cancellation family across the layers, and out-of-memory recognised by type where torch has one."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from app.pacs.errors import PacsError, RetrieveCancelled
from engines.backends import EngineBackend, TextOutput, register_backend
from engines.backends.errors import is_out_of_memory
from engines.errors import Cancelled, JobCancelled
from engines.worker.protocol import decode, encode
from engines.worker.server import WorkerServer
from viewer.volume import VolumeCancelled


def test_every_cancellation_is_one_family() -> None:
    for exc in (JobCancelled("x"), VolumeCancelled("x"), RetrieveCancelled("x")):
        assert isinstance(exc, Cancelled)
    assert isinstance(RetrieveCancelled("x"), PacsError)  # still a PACS outcome for the retrieve queue
    assert not issubclass(Cancelled, (MemoryError, PacsError))


def test_torch_out_of_memory_is_matched_by_its_type_not_its_text() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError(""))  # no message to match: only the type says it
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(MemoryError())
    impostor = type("OutOfMemoryError", (Exception,), {})  # the old name match took any class so named
    assert not is_out_of_memory(impostor("not torch's"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not an allocator failure


def test_a_real_cpu_allocator_failure_is_out_of_memory() -> None:
    with pytest.raises(RuntimeError) as info:
        torch.empty(1 << 60, dtype=torch.uint8)  # torch raises a plain RuntimeError for the CPU allocator
    assert is_out_of_memory(info.value), str(info.value)


class _LoadsAVolume(EngineBackend):
    """A backend whose draft is stopped by another layer's cancellation (the volume loader's)."""

    name = "volume-cancel-test"
    capabilities = frozenset({"draft"})

    def describe(self) -> dict:
        return {"name": self.name}

    def draft(self, images, **kw) -> TextOutput:
        raise VolumeCancelled("volume load cancelled")


def test_the_worker_reports_any_cancellation_of_the_family_as_cancelled() -> None:
    register_backend("volume-cancel-test", _LoadsAVolume)
    out = io.BytesIO()
    job = {"type": "job", "id": "j", "kind": "draft", "params": {"images": [np.zeros((16, 16))]}}
    WorkerServer(io.BytesIO(encode({"type": "load", "backend": "volume-cancel-test", "config": {}}) + encode(job)),
                 out, log=io.StringIO()).serve()
    replies = [decode(line) for line in out.getvalue().splitlines()]
    assert {"type": "cancelled", "id": "j"} in replies, replies
