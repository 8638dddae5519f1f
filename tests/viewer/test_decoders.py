"""Decoder plugins: the imagecodecs plugin decodes what the others do, and the choice is measured."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import uid
from pydicom.pixels import get_decoder

from tests.support.compressed_samples import compressed_dataset, smooth_pixels
from viewer.io import decoders
from viewer.io.decoders import PluginTiming, choose, ensure_registered
from viewer.io.image import DicomImage

SYNTAXES = [uid.JPEG2000Lossless, uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.JPEGLSLossless]


@pytest.mark.parametrize("syntax", SYNTAXES, ids=lambda s: s.keyword)
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_imagecodecs_plugin_is_lossless_like_the_others(syntax, signed):
    ensure_registered()
    pixels = smooth_pixels(96, signed=signed)
    ds = compressed_dataset(pixels, syntax)
    assert "imagecodecs" in get_decoder(syntax).available_plugins
    ours = get_decoder(syntax).as_array(ds, decoding_plugin="imagecodecs")[0]
    assert ours.dtype == pixels.dtype
    np.testing.assert_array_equal(ours, pixels)


def test_dicom_image_decodes_htj2k_with_the_chosen_plugin():
    pixels = smooth_pixels(64)
    image = DicomImage.from_dataset(compressed_dataset(pixels, uid.HTJ2K))
    np.testing.assert_array_equal(image.frame(0), pixels)
    assert decoders.preferred_plugin(uid.HTJ2K) in get_decoder(uid.HTJ2K).available_plugins


def test_ranking_times_every_plugin_and_checks_its_pixels():
    timings = decoders.rank_plugins(uid.JPEGLSLossless, repeats=1)
    plugins = {t.plugin for t in timings}
    assert {"imagecodecs", "pyjpegls"} <= plugins
    assert all(t.ok and t.seconds > 0 for t in timings)
    assert choose(timings) in plugins


def test_choice_skips_a_plugin_that_holds_the_gil_and_breaks_ties_by_stall():
    rows = [
        PluginTiming("x", "holder", 0.010, 0.010),  # faster, but other threads wait the whole decode
        PluginTiming("x", "free", 0.020, 0.001),
        PluginTiming("x", "broken", 0.001, 0.0, "wrong pixels"),
    ]
    assert choose(rows) == "free"
    assert choose([PluginTiming("x", "holder", 0.010, 0.010)]) == "holder"  # better than nothing
    tie = [PluginTiming("x", "a", 0.0100, 0.006), PluginTiming("x", "b", 0.0105, 0.001)]
    assert choose(tie) == "b"
    assert choose([PluginTiming("x", "broken", 0.001, 0.0, "boom")]) == ""
