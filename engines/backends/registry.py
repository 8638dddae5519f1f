"""Name -> factory registry of engine backends; `create_backend(settings['engine'], **config)` picks one.

Factories import their model libraries only when called, so listing or validating engine names (the
settings dialog, the app at start-up) never pays for torch/transformers imports.

Plug-ins: a site adds a model without changing RadStation by installing a package that declares an entry
point in the group `radstation.engines` (`name = "package.module:Factory"`, the factory called with the
engine settings and returning an EngineBackend). They are listed with the built-in engines; a name that a
built-in engine already has is refused, and a plug-in whose import fails reports that when it is chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from engines.backends.base import EngineBackend
from engines.backends.errors import BackendError

BackendFactory = Callable[..., EngineBackend]

_FACTORIES: dict[str, BackendFactory] = {}
_DESCRIPTIONS: dict[str, str] = {}
_PLUGINS: dict[str, str] = {}  # name -> "distribution version" of the package that registered it
_OPTIONS: dict[str, dict[str, str]] = {}
_REMOTE: set[str] = set()
PLUGIN_GROUP = "radstation.engines"


@dataclass(frozen=True)
class EngineInfo:
    """One registered engine as a settings dialog lists it, without importing its model libraries."""

    name: str
    description: str
    source: str  # "built-in", or "plug-in from <package> <version>"
    remote: bool = False  # runs on a server (engine_options.url), not on this workstation
    options: dict[str, str] = field(default_factory=dict)  # engine_options keys it reads -> what each sets

    @property
    def plugin(self) -> bool:
        return self.source != "built-in"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "source": self.source, "plugin": self.plugin,
                "remote": self.remote, "options": dict(self.options)}


def register_backend(name: str, factory: BackendFactory | str, description: str = "", *,
                     options: dict[str, str] | None = None, remote: bool = False) -> None:
    """Register `factory(**config) -> EngineBackend` under `name`; a "module:attr" string is imported lazily.

    `options`: the engine_options keys the engine reads, each with a short explanation (for the settings
    dialog); `remote`: the engine runs on a server named by engine_options.url."""
    if not name or not name.strip():
        raise ValueError("backend name must be a non-empty string")
    _FACTORIES[name] = _lazy(factory) if isinstance(factory, str) else factory
    _DESCRIPTIONS[name] = description
    _OPTIONS[name] = dict(options or {})
    _REMOTE.discard(name)
    if remote:
        _REMOTE.add(name)


def engine_catalogue() -> list[EngineInfo]:
    """Every registered engine: built-in ones first, then plug-ins, each sorted by name."""
    infos = [EngineInfo(name, _DESCRIPTIONS.get(name, ""),
                        f"plug-in from {_PLUGINS[name]}" if name in _PLUGINS else "built-in",
                        name in _REMOTE, dict(_OPTIONS.get(name, {}))) for name in _FACTORIES]
    return sorted(infos, key=lambda i: (i.plugin, i.name))


def engine_info(name: str) -> EngineInfo:
    """The catalogue entry of `name`; BackendError naming the registered engines when there is none."""
    for info in engine_catalogue():
        if info.name == name:
            return info
    raise BackendError(f"unknown engine '{name}' (registered: {', '.join(sorted(_FACTORIES)) or 'none'})")


def available_backends() -> dict[str, str]:
    """Registered names with a one-line description each (for settings and error messages)."""
    return dict(_DESCRIPTIONS)


def plugin_backends() -> dict[str, str]:
    """Names registered by installed plug-in packages, with the package that provides each."""
    return dict(_PLUGINS)


def load_plugins(group: str = PLUGIN_GROUP) -> list[str]:
    """Register every entry point of `group` (lazily: nothing is imported until the engine is chosen).

    Returns one line per plug-in that was refused (a name clash with a built-in engine).
    """
    refused = []
    for ep in entry_points(group=group):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "unknown package"
        if ep.name in _FACTORIES and ep.name not in _PLUGINS:
            refused.append(f"plug-in engine '{ep.name}' from {dist} clashes with a built-in engine; ignored")
            continue
        register_backend(ep.name, ep.value, f"plug-in from {dist}")
        _PLUGINS[ep.name] = dist
    return refused


def create_backend(name: str, **config: Any) -> EngineBackend:
    """Build the backend registered as `name`; unknown names and load problems raise BackendError."""
    if name not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES)) or "none"
        raise BackendError(f"unknown engine '{name}' (registered: {known}); fix the 'engine' setting")
    try:
        backend = _FACTORIES[name](**config)
    except BackendError:
        raise
    except TypeError as exc:
        raise BackendError(f"engine '{name}' does not accept these settings: {exc}") from exc
    except Exception as exc:
        if name not in _PLUGINS:
            raise
        raise BackendError(f"plug-in engine '{name}' ({_PLUGINS[name]}) failed to start: {exc}") from exc
    if not isinstance(backend, EngineBackend):
        raise BackendError(f"engine '{name}' factory returned {type(backend).__name__}, not an EngineBackend")
    return backend


def _lazy(spec: str) -> BackendFactory:
    module_name, _, attr = spec.partition(":")

    def factory(**config: Any) -> EngineBackend:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # e.g. transformers left out of the frozen bundle
            raise BackendError(
                f"this engine needs the Python package '{exc.name}', which this installation does not include"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not take the app down
            raise BackendError(f"the engine module {module_name} could not be loaded: {exc}") from exc
        if not hasattr(module, attr):
            raise BackendError(f"the engine module {module_name} has no '{attr}'")
        return getattr(module, attr)(**config)

    return factory


_SAMPLING = {"steps": "sampling steps per draft (default: the weights' own)",
             "guidance": "classifier-free guidance scale (default: the weights' own)",
             "closed_questions": "answer yes/no questions with the finding head (default true)",
             "cases_dir": "the site's signed-case index for grounded drafts (set by the app)",
             "backend": "how the backbone runs: torch, onnx, onnx-int8 (drafts with int8 matrix products) or compiled "
                        "(torch.compile, compiled in the background)"}
_SERVER = {"url": "the server's URL", "timeout_s": "seconds to wait for one job",
           "tls_ca": "CA bundle that signs the server's TLS certificate", "token_name":
           "keyring entry of the bearer token (default: the URL; `radstation engine token URL`)"}
register_backend("diffusion", "engines.backends.diffusion:MedimBackend",
                 "built-in discrete-diffusion engine (torch), default weights in resources/weights", options=_SAMPLING)
register_backend("diffusion-onnx", "engines.backends.diffusion:MedimOnnxBackend",
                 "built-in discrete-diffusion engine through onnxruntime", options=_SAMPLING)
register_backend("hf-vlm", "engines.backends.hf_vlm:HfVlmBackend",
                 "a transformers image-text-to-text model directory on local disk (drafts and questions)",
                 options={"max_new_tokens": "longest draft, in tokens", "answer_max_new_tokens": "longest answer",
                          "multi_image": "give the model every image of the study", "dtype": "auto | float16 | ...",
                          "draft_prompt": "the drafting instruction", "answer_prompt": "the question instruction"})
register_backend("diffusers-t2i", "engines.backends.diffusers_t2i:DiffusersT2IBackend",
                 "a diffusers text-to-image pipeline directory on local disk (synthesis)",
                 options={"steps": "denoising steps", "guidance": "guidance scale", "height": "pixels",
                          "width": "pixels"})
register_backend("openai-compatible", "engines.backends.openai_compat:OpenAICompatibleBackend",
                 "a VLM served elsewhere with an OpenAI-compatible API (vLLM, TGI, llama.cpp): drafts, questions",
                 remote=True, options={**_SERVER, "url": "the server's OpenAI-compatible base URL (…/v1)",
                                       "model": "the served model's name", "max_new_tokens": "longest draft",
                                       "multi_image": "send every image of the study", "logprobs":
                                       "ask for token log-probabilities (per-token confidence)"})
register_backend("ray-serve", "engines.backends.ray_serve:RayServeBackend",
                 "the built-in engine served for the department on Ray Serve (engine_options.url)",
                 remote=True, options={**_SERVER, "url": "the engine service's URL (…/radstation)",
                                       "connect_timeout_s": "seconds to wait for the service to answer at all"})
PLUGIN_PROBLEMS = load_plugins()
