from __future__ import annotations

import numpy as np
import pytest

from engines.backends import BackendError, EngineBackend, available_backends, create_backend, register_backend
from engines.backends.base import check_images
from engines.backends.results import TextOutput, split_sections, tokens_by_section
from engines.data.images import to_uint8


class _Echo(EngineBackend):
    """A minimal real backend: drafts the image size, so the registry is tested without a model."""

    name = "echo"
    capabilities = frozenset({"draft"})

    def __init__(self, prefix: str = "size") -> None:
        self.prefix = prefix

    def describe(self) -> dict:
        return {"name": self.name, "device": "cpu", "model": self.prefix}

    def draft(self, images, **kw) -> TextOutput:
        h, w = check_images(images)[0].shape
        return TextOutput(text=f"{self.prefix} {h}x{w}")


def test_registry_lists_builtin_engines() -> None:
    assert {"diffusion", "diffusion-onnx", "hf-vlm", "diffusers-t2i"} <= set(available_backends())


def test_register_and_create_by_name_with_config() -> None:
    register_backend("echo-test", _Echo, "test echo")
    backend = create_backend("echo-test", prefix="dims")
    assert backend.draft([np.zeros((10, 12))]).text == "dims 10x12"
    with pytest.raises(BackendError, match="cannot answer .*it can: draft"):
        backend.answer([np.zeros((10, 12))], "why?")


def test_unknown_engine_and_bad_settings_are_clear_errors() -> None:
    with pytest.raises(BackendError, match="unknown engine 'nope'.*registered:.*hf-vlm"):
        create_backend("nope")
    register_backend("echo-test2", _Echo)
    with pytest.raises(BackendError, match="does not accept these settings"):
        create_backend("echo-test2", colour="blue")


def test_missing_model_directories_are_clear_errors(tmp_path) -> None:
    with pytest.raises(BackendError, match="needs 'engine_model_path'"):
        create_backend("hf-vlm")
    with pytest.raises(BackendError, match="does not exist"):
        create_backend("hf-vlm", path=tmp_path / "absent")
    with pytest.raises(BackendError, match="no config.json"):
        create_backend("hf-vlm", path=tmp_path)
    with pytest.raises(BackendError, match="no model_index.json"):
        create_backend("diffusers-t2i", path=tmp_path)
    with pytest.raises(BackendError, match="weights folder .* does not exist"):
        create_backend("diffusion", path=tmp_path / "absent")


def test_image_validation() -> None:
    with pytest.raises(BackendError, match="no image"):
        check_images([])
    with pytest.raises(BackendError, match="expected a 2D"):
        check_images([np.zeros((4, 4, 4, 4))])
    rgb = check_images([np.ones((16, 20, 3))])[0]
    assert rgb.shape == (16, 20)
    u8 = to_uint8(np.array([[0.0, 0.5], [1.0, 1.0]]))
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255


def test_sections_split_and_token_offsets_follow_them() -> None:
    text = "Findings: Heart normal. Impression: No acute disease."
    findings, impression, f_off, i_off = split_sections(text)
    assert (findings, impression) == ("Heart normal.", "No acute disease.")
    assert text[f_off:f_off + len(findings)] == findings and text[i_off:i_off + len(impression)] == impression
    spans = [(text.index("Heart"), text.index("Heart") + 5, 0.9, 0.1, 0), (text.index("acute"), text.index("acute") + 5, 0.2, 2.0, 3)]
    _, _, tokens = tokens_by_section(text, spans)
    assert [(t.section, t.text, findings[t.start:t.end] if t.section == "findings" else impression[t.start:t.end])
            for t in tokens] == [("findings", "Heart", "Heart"), ("impression", "acute", "acute")]
    assert split_sections("just one block")[:2] == ("just one block", "")


def test_catalogue_options_are_parameters_the_engines_really_take() -> None:
    """What the settings dialog offers under engine_options is what each built-in factory accepts."""
    import importlib
    import inspect

    from engines.backends import engine_catalogue, engine_info

    specs = {"diffusion": "engines.backends.diffusion:MedimBackend",
             "diffusion-onnx": "engines.backends.diffusion:MedimOnnxBackend",
             "hf-vlm": "engines.backends.hf_vlm:HfVlmBackend",
             "diffusers-t2i": "engines.backends.diffusers_t2i:DiffusersT2IBackend",
             "openai-compatible": "engines.backends.openai_compat:OpenAICompatibleBackend",
             "ray-serve": "engines.backends.ray_serve:RayServeBackend"}
    catalogue = {i.name: i for i in engine_catalogue()}
    for name, spec in specs.items():
        module, _, attr = spec.partition(":")
        accepted = set(inspect.signature(getattr(importlib.import_module(module), attr)).parameters)
        info = catalogue[name]
        assert info.source == "built-in" and not info.plugin and info.options, name
        assert set(info.options) <= accepted, (name, set(info.options) - accepted)
        assert info.remote == ("url" in info.options), name
    assert engine_info("ray-serve").to_dict()["remote"] is True
    with pytest.raises(BackendError, match="unknown engine 'nope' .*ray-serve"):
        engine_info("nope")
