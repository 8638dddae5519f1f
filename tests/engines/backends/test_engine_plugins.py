"""Third-party engines through the `radstation.engines` entry-point group, and clear load failures.

The plug-in here is a real installed distribution (a .dist-info with entry_points.txt on sys.path, as
pip leaves it), found by importlib.metadata like any site package.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from engines.backends import BackendError, create_backend, registry

PLUGIN_MODULE = '''
import numpy as np
from engines.backends.base import EngineBackend, check_images
from engines.backends.results import TextOutput


class SizeReader(EngineBackend):
    """A site's toy model: states the image geometry it was given."""

    name = "site-size-reader"
    capabilities = frozenset({"draft"})

    def __init__(self, device="auto", **config):
        self.config = config

    def describe(self):
        return {"name": self.name, "device": "cpu", "model": "size-reader", "weights_hash": "none"}

    def draft(self, images, **kw):
        arrays = check_images(images)
        h, w = arrays[0].shape
        return TextOutput(text=f"Findings: {len(arrays)} image(s), {h} x {w} pixels.", findings=f"{h} x {w}")


def broken(**config):
    raise RuntimeError("licence file missing")
'''


def _install(site: Path, name: str, entries: dict[str, str]) -> None:
    dist = site / f"{name}-1.2.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (dist / "entry_points.txt").write_text(f"[radstation.engines]\n{lines}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "site_engines.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    monkeypatch.syspath_prepend(str(site))
    saved = (dict(registry._FACTORIES), dict(registry._DESCRIPTIONS), dict(registry._PLUGINS))
    yield site
    for live, old in zip((registry._FACTORIES, registry._DESCRIPTIONS, registry._PLUGINS), saved, strict=True):
        live.clear()
        live.update(old)
    sys.modules.pop("site_engines", None)


def test_installed_plugin_is_listed_and_runs(site: Path) -> None:
    import numpy as np

    _install(site, "site-engines", {"size-reader": "site_engines:SizeReader", "diffusion": "site_engines:SizeReader"})
    problems = registry.load_plugins()
    assert any("'diffusion'" in p and "clashes with a built-in" in p for p in problems)
    assert registry.plugin_backends() == {"size-reader": "site-engines 1.2"}
    assert "plug-in from site-engines 1.2" in registry.available_backends()["size-reader"]
    backend = create_backend("size-reader", device="cpu")
    assert backend.draft([np.zeros((48, 40))]).text == "Findings: 1 image(s), 48 x 40 pixels."
    assert registry.available_backends()["diffusion"].startswith("built-in")
    names = [i.name for i in registry.engine_catalogue()]  # the settings dialog's list: built-ins, then plug-ins
    assert names[-1] == "size-reader" and "diffusion" in names[:-1]
    info = registry.engine_info("size-reader")
    assert info.plugin and info.source == "plug-in from site-engines 1.2" and not info.remote


def test_broken_plugins_give_clear_errors(site: Path) -> None:
    _install(site, "site-broken", {"needs-licence": "site_engines:broken", "gone": "site_engines_missing:X",
                                   "typo": "site_engines:NoSuchFactory"})
    registry.load_plugins()
    with pytest.raises(BackendError, match="licence file missing"):
        create_backend("needs-licence")
    with pytest.raises(BackendError, match="needs the Python package 'site_engines_missing'"):
        create_backend("gone")
    with pytest.raises(BackendError, match="has no 'NoSuchFactory'"):
        create_backend("typo")


def test_qwen2_vl_folder_without_torchvision_is_a_clear_error(tiny_vlm_dir: Path, tmp_path: Path) -> None:
    """Qwen2-VL's processor needs torchvision, which RadStation does not ship: say so, no traceback."""
    pytest.importorskip("transformers")
    try:
        import torchvision  # noqa: F401
        pytest.skip("torchvision is installed here: the Qwen2-VL processor loads")
    except ImportError:
        pass
    import shutil

    qwen = tmp_path / "qwen2-vl"
    shutil.copytree(tiny_vlm_dir, qwen)
    (qwen / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2VLProcessor",
        "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
        "merge_size": 2}))
    (qwen / "video_preprocessor_config.json").write_text(json.dumps({
        "video_processor_type": "Qwen2VLVideoProcessor", "processor_class": "Qwen2VLProcessor"}))
    for stale in ("processor_config.json",):
        (qwen / stale).unlink(missing_ok=True)
    config = json.loads((qwen / "config.json").read_text())
    config["model_type"] = "qwen2_vl"
    (qwen / "config.json").write_text(json.dumps(config))
    with pytest.raises(BackendError) as info:
        create_backend("hf-vlm", path=str(qwen), device="cpu")
    message = str(info.value)
    assert "torchvision" in message and str(qwen) in message and "Traceback" not in message
