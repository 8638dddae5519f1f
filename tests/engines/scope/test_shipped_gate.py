"""The shipped weights' input gate on images the app really opens: the demo radiographs pass (header and
image), and the image checks alone (no header to help) stop the demo CT phantom, an MR, and demo radiographs
that were rotated or inverted."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from engines.default_weights import DEFAULT_WEIGHTS
from engines.scope.stats import JSON_NAME

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "resources" / "demo"
pytestmark = pytest.mark.skipif(not (DEFAULT_WEIGHTS / JSON_NAME).exists(), reason="no shipped gate statistics")


@pytest.fixture(scope="module")
def gate():
    import torch

    from engines.backends import create_backend
    from engines.scope.guard import build_gate

    torch.set_num_threads(1)
    # the embedding the shipped statistics were fitted on, chosen as in the engine worker
    g = build_gate(create_backend("diffusion", path=DEFAULT_WEIGHTS, device="cpu"))
    assert g.image_check == "on", g.image_check
    return g


def _demo(patient: str):
    from app.ai.study_images import load_study_images

    return load_study_images(sorted((DEMO / patient).rglob("IM*")))


@pytest.mark.parametrize("patient", ["PT000000", "PT000001", "PT000002"])
def test_demo_radiographs_are_in_scope(gate, patient) -> None:
    (im,) = _demo(patient)
    d = gate.check([im.pixels], [im.header])
    assert d.in_scope, d.summary()
    assert d.summary().startswith("In scope (header and image checked)")


def test_image_checks_stop_what_the_header_does_not_say(gate) -> None:
    from pydicom.data import get_testdata_file

    from app.ai.study_images import load_study_images

    (cxr,) = _demo("PT000001")
    phantom = _demo("PT000003")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (mr,) = load_study_images([Path(get_testdata_file("MR_small.dcm"))])
    pixels = cxr.pixels.astype(np.float32)
    cases = {"CT phantom": phantom[len(phantom) // 2].pixels, "MR": mr.pixels, "rotated": np.rot90(pixels),
             "inverted": pixels.max() - pixels}
    for what, img in cases.items():
        d = gate.check([img], [None])  # pixels only: a PNG, or a header that lies
        assert not d.in_scope, f"{what}: {d.summary()}"
        assert d.images[0].image_checked and any("unlike" in r or "frontal chest" in r for r in d.images[0].reasons)
