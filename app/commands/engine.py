"""`radstation engine list|check|draft|ask|token|serve|predraft|worker`: see the registered engines, load
the configured one and draft once (a quick "does my model directory work?"), draft or ask about DICOM files
behind the input gate (app.commands.engine_jobs), store a server's token, serve the built-in engine for the
department on Ray Serve and pre-draft a worklist with it (app.commands.engine_serve), or serve the worker
protocol (the app starts that itself, which is how a frozen build without `python -m` runs its worker)."""

from __future__ import annotations

import argparse
import json
import time


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine", help="AI engine: list backends, check the configured one, run the worker")
    actions = p.add_subparsers(dest="engine_action", required=True)
    lst = actions.add_parser("list", help="registered engine backends (built-in and plug-ins) and their options")
    lst.add_argument("--json", action="store_true", help="machine-readable: name, source, remote, options")
    lst.set_defaults(func=_list)
    c = actions.add_parser("check", help="load the engine chosen in settings and draft a test image")
    c.add_argument("--engine", help="backend name (default: the 'engine' setting)")
    c.add_argument("--model", help="model directory (default: the 'engine_model_path' setting)")
    c.set_defaults(func=_check)
    t = actions.add_parser("token", help="store the bearer token of an engine server in the OS keyring")
    t.add_argument("url", help="the server's URL exactly as in engine_options.url, e.g. https://gpu:8000/v1")
    t.add_argument("--delete", action="store_true", help="remove the stored token")
    t.set_defaults(func=_token)
    from app.commands.engine_jobs import register as register_jobs

    register_jobs(actions)
    from app.commands.engine_serve import register_predraft, register_serve

    register_serve(actions)
    register_predraft(actions)
    w = actions.add_parser("worker", help="serve the engine worker protocol on stdin/stdout (internal)")
    w.add_argument("--jobs", action="append", default=[], metavar="MODULE",
                   help="module whose WORKER_JOBS the worker also serves (repeatable)")
    w.set_defaults(func=_worker)


def _list(args: argparse.Namespace) -> int:
    from engines.backends import engine_catalogue
    from engines.backends.registry import PLUGIN_PROBLEMS

    catalogue = engine_catalogue()
    if getattr(args, "json", False):
        print(json.dumps({"engines": [i.to_dict() for i in catalogue], "problems": list(PLUGIN_PROBLEMS)}, indent=2))
        return 0
    for info in catalogue:
        where = " [server]" if info.remote else ""
        source = f" ({info.source})" if info.plugin else ""
        print(f"{info.name:18s} {info.description}{where}{source}")
        if info.options:
            print(f"{'':18s}   engine_options: {', '.join(info.options)}")
    for problem in PLUGIN_PROBLEMS:
        print(f"warning: {problem}")
    return 0


def _token(args: argparse.Namespace) -> int:
    """The token never goes into settings.json: it is typed here (not echoed) and kept by the OS keyring."""
    import getpass

    try:
        import keyring
        from keyring.errors import KeyringError, PasswordDeleteError
    except ImportError:
        print("the 'keyring' package is not installed (pip install 'radstation[served]')")
        return 2
    from engines.backends.openai_compat import KEYRING_SERVICE

    try:
        if args.delete:
            try:
                keyring.delete_password(KEYRING_SERVICE, args.url)
            except PasswordDeleteError:
                print(f"no token stored for {args.url}")
                return 1
            print(f"token for {args.url} removed")
            return 0
        token = getpass.getpass(f"bearer token for {args.url}: ").strip()
        if not token:
            print("empty token: nothing stored")
            return 1
        keyring.set_password(KEYRING_SERVICE, args.url, token)
    except KeyringError as exc:
        print(f"the OS keyring refused: {exc} (is a keyring service running for this user?)")
        return 2
    print(f"token for {args.url} stored in the {type(keyring.get_keyring()).__name__} keyring")
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
