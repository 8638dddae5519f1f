"""Extra job kinds (engines.worker.jobs) and the dataclass wire format they return results in."""

from __future__ import annotations

import numpy as np
import pytest

from engines.counterfactual.edits import diff_reports
from engines.counterfactual.metrics import Preservation
from engines.worker.jobs import load_job_modules, pipeline_of
from engines.worker.protocol import decode, encode
from engines.worker.wire import WireError, from_wire, to_wire


def test_nested_dataclasses_with_arrays_survive_the_wire() -> None:
    edit = diff_reports("Small left pleural effusion.", "No pleural effusion.")
    sent = {"edit": edit, "p": Preservation(0.9, 0.5, 1.0, 9.0, 0.1), "grid": np.eye(3, dtype=bool)}
    back = from_wire(decode(encode({"type": "result", **to_wire(sent)})))
    assert back["edit"] == edit and isinstance(back["edit"].changes, tuple)
    assert hash(back["edit"].changes) == hash(edit.changes)  # tuples again: frozen results stay hashable
    assert back["p"] == sent["p"] and back["grid"].dtype == bool and back["grid"].tolist() == np.eye(3).tolist()


@pytest.mark.parametrize("tag", ["os:system", "subprocess:Popen", "engines.worker.wire:to_wire", "engines.nope:X"])
def test_only_this_projects_dataclasses_are_rebuilt(tag: str) -> None:
    with pytest.raises(WireError):
        from_wire({"__dataclass__": tag, "args": "rm -rf /"})


def test_job_modules_load_and_bad_ones_are_named() -> None:
    jobs = load_job_modules(["explain.worker_jobs", "engines.counterfactual.worker_jobs"])
    assert set(jobs) == {"explain_study", "whatif"}
    with pytest.raises(ValueError, match="cannot be imported"):
        load_job_modules(["engines.no_such_module"])
    with pytest.raises(ValueError, match="offers no WORKER_JOBS"):
        load_job_modules(["engines.worker.wire"])
    with pytest.raises(ValueError, match="already served"):
        load_job_modules(["explain.worker_jobs", "explain.worker_jobs"])


def test_model_internal_jobs_refuse_a_third_party_engine() -> None:
    class Vlm:
        name = "hf-vlm"

    from engines.backends import BackendError

    with pytest.raises(BackendError, match="built-in diffusion engine"):
        pipeline_of(Vlm(), "explain_study")
