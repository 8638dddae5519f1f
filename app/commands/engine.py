"""`radstation engine list|check|worker`: see the registered engines, load the configured one and draft
once (a quick "does my model directory work?"), or serve the worker protocol (the app starts that itself,
which is how a frozen build without `python -m` runs its worker)."""

from __future__ import annotations

import argparse
import json
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine", help="AI engine: list backends, check the configured one, run the worker")
    actions = p.add_subparsers(dest="engine_action", required=True)
    actions.add_parser("list", help="registered engine backends").set_defaults(func=_list)
    c = actions.add_parser("check", help="load the engine chosen in settings and draft a test image")
    c.add_argument("--engine", help="backend name (default: the 'engine' setting)")
    c.add_argument("--model", help="model directory (default: the 'engine_model_path' setting)")
    c.set_defaults(func=_check)
    w = actions.add_parser("worker", help="serve the engine worker protocol on stdin/stdout (internal)")
    w.add_argument("--jobs", action="append", default=[], metavar="MODULE",
                   help="module whose WORKER_JOBS the worker also serves (repeatable)")
    w.set_defaults(func=_worker)


def _list(args: argparse.Namespace) -> int:
    from engines.backends import available_backends

    for name, desc in sorted(available_backends().items()):
        print(f"{name:16s} {desc}")
    return 0


def _check(args: argparse.Namespace) -> int:
    import numpy as np

    from app.ai.engine_settings import engine_from_settings
    from app.settings import Settings
    from engines.backends import BackendError, create_backend

    name, config = engine_from_settings(Settings())
    name = args.engine or name
    if args.model:
        config["path"] = args.model
    config.pop("threads", None)
    try:
        t0 = time.perf_counter()
        backend = create_backend(name, **config)
        loaded = time.perf_counter() - t0
        print(json.dumps(backend.describe(), indent=2, default=str))
        if "draft" in backend.capabilities:
            image = (np.random.default_rng(0).random((256, 256)) * 255).astype(np.uint8)
            out = backend.draft([image])
            print(f"loaded in {loaded:.1f} s; test draft in {out.elapsed_s or 0:.1f} s: {out.text[:120]!r}")
    except BackendError as exc:
        print(f"engine '{name}' is not usable: {exc}")
        return 2
    return 0


def _worker(args: argparse.Namespace) -> int:
    from engines.worker.__main__ import main

    return main([a for m in args.jobs for a in ("--jobs", m)])
