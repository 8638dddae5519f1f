"""Which engine to run and how, read from Settings: swapping engines is a settings change only."""

from __future__ import annotations

from typing import Any

from app.settings import Settings

# Settings keys (beside "engine" and "engine_device" in app.settings.DEFAULTS):
#   engine_model_path: a local model / pipeline directory (empty: the built-in default weights)
#   engine_options:    extra keyword settings for the backend (e.g. {"max_new_tokens": 128})
#   engine_threads:    CPU threads for the worker (0: the idle cores measured at load, 1 to 4)
#   engine_backend:    how the built-in engine's backbone runs: onnx-int8 (default), onnx, compiled or torch
#                      (docs/engine_speed.md)

# The fastest measured at one thread, drafts' quality unchanged on val (docs/engine_speed.md, fourth round); it drafts
# with the float32 onnx graph where int8 is refused (no VNNI, failed parity) and with torch without onnxruntime.
DEFAULT_BACKEND = "onnx-int8"


def engine_from_settings(settings: Settings) -> tuple[str, dict[str, Any]]:
    """(backend name, config) for EngineClient / create_backend."""
    config: dict[str, Any] = {"device": settings.get("engine_device", "auto") or "auto"}
    path = settings.get("engine_model_path", "")
    if path:
        config["path"] = str(path)
    threads = int(settings.get("engine_threads", 0) or 0)
    if threads > 0:
        config["threads"] = threads
    options = settings.get("engine_options", {}) or {}
    if not isinstance(options, dict):
        raise ValueError("the 'engine_options' setting must be a JSON object")
    config.update(options)
    name = str(settings.get("engine", "diffusion") or "diffusion")
    if name in ("diffusion", "diffusion-onnx") and "cases_dir" not in config:
        from app.ai.similar_store import cases_dir, cases_url, dev_index_dir

        config["cases_dir"] = str(cases_dir(settings))  # the site's signed studies, for grounded drafts
        config.setdefault("backend", str(settings.get("engine_backend", DEFAULT_BACKEND) or DEFAULT_BACKEND))
        dev = dev_index_dir(settings)  # curated cases the drafts vote with while the site has too few
        if dev is not None and "dev_cases_dir" not in config:
            config["dev_cases_dir"] = str(dev)
        url = cases_url(settings)  # on PostgreSQL the department's index (pgvector) instead of the folder
        if url and "cases_url" not in config:
            config["cases_url"] = url
    return name, config
