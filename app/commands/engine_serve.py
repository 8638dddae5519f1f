"""`radstation engine serve` (the built-in engine on a Ray cluster for the department) and
`radstation engine predraft` (draft a worklist's studies ahead of reading, stored for the radiologist)."""

from __future__ import annotations

import argparse
import json
import sys
import threading


def register_serve(actions: argparse._SubParsersAction) -> None:
    s = actions.add_parser("serve", help="serve the built-in engine on a Ray cluster (Ray Serve) for many workstations")
    s.add_argument("--address", default="auto", help="Ray cluster address (default: the cluster on this node)")
    s.add_argument("--replicas", type=int, default=1, help="engine replicas (default 1)")
    s.add_argument("--autoscale", metavar="MIN:MAX", help="scale between MIN and MAX replicas with the load instead")
    s.add_argument("--gpus-per-replica", type=float, default=0.0, help="GPUs per replica (0.5 puts two on one GPU)")
    s.add_argument("--cpus-per-replica", type=float, default=1.0)
    s.add_argument("--threads", type=int, default=1, help="torch threads per replica (default 1)")
    s.add_argument("--model", default="", help="weights folder on every node (default: the shipped weights)")
    s.add_argument("--engine", default="diffusion", help="backend each replica loads (default: diffusion)")
    s.add_argument("--device", default="auto", help="auto | cpu | cuda")
    s.add_argument("--host", default="0.0.0.0", help="address the HTTP proxy listens on (default: all)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--status", action="store_true", help="print the service's state and replicas, deploy nothing")
    s.add_argument("--stop", action="store_true", help="remove the service from the cluster")
    s.set_defaults(func=_serve)


def register_predraft(actions: argparse._SubParsersAction) -> None:
    p = actions.add_parser("predraft", help="draft a worklist's studies ahead of reading (stored, accepted later)")
    p.add_argument("--study", action="append", default=[], metavar="UID", help="only this study (repeatable)")
    p.add_argument("--name", default="", help="worklist filter: patient name words")
    p.add_argument("--patient-id", default="")
    p.add_argument("--accession", default="")
    p.add_argument("--from", dest="date_from", default=None, help="study date from (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", default=None, help="study date to (YYYY-MM-DD)")
    p.add_argument("--modality", default="")
    p.add_argument("--include-reported", action="store_true", help="also studies that already have a report")
    p.add_argument("--redraft", action="store_true", help="also studies that already have an AI draft")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--engine", help="backend name (default: the 'engine' setting)")
    p.add_argument("--url", help="engine service URL (sets engine_options.url, e.g. for --engine ray-serve)")
    p.add_argument("--concurrency", type=int, default=8,
                   help="studies in flight at once on a served engine (default 8; a local engine drafts one at a time)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", choices=("sentences", "free"), default=None,
                   help="draft style (default: the 'draft_mode' setting, else the engine's own)")
    p.add_argument("--db-url", help="SQLAlchemy database URL (default: settings / RADSTATION_DB_URL / SQLite)")
    p.add_argument("--dry-run", action="store_true", help="list the studies that would be drafted")
    p.set_defaults(func=_predraft)


def _serve(args: argparse.Namespace) -> int:
    from engines.serve.launch import ServeError, ServeSpec, deploy, status, stop

    try:
        if args.status:
            print(json.dumps(status(args.address), indent=2, default=str))
            return 0
        if args.stop:
            stop(args.address)
            print("engine service removed from the cluster")
            return 0
        autoscale = None
        if args.autoscale:
            lo, _, hi = args.autoscale.partition(":")
            autoscale = (int(lo), int(hi or lo))
        spec = ServeSpec(engine=args.engine, model=args.model, device=args.device, replicas=args.replicas,
                         autoscale=autoscale, cpus_per_replica=args.cpus_per_replica,
                         gpus_per_replica=args.gpus_per_replica, threads=args.threads, host=args.host, port=args.port)
        print(f"deploying the engine service ({args.autoscale or args.replicas} replica(s)) on the Ray cluster "
              f"at {args.address}; the first start loads the model on each replica...", flush=True)
        url = deploy(spec, args.address)
    except ServeError as exc:
        print(f"radstation engine serve: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"radstation engine serve: {exc}", file=sys.stderr)
        return 2
    print(f"engine service ready at {url}\nworkstations: \"engine\": \"ray-serve\", "
          f"\"engine_options\": {{\"url\": \"{url}\"}} (use this server's name instead of 127.0.0.1)")
    return 0


def _predraft(args: argparse.Namespace) -> int:
    from app.ai.engine_settings import engine_from_settings
    from app.ai.predraft import Predrafter, select_studies
    from app.db.database import Database, DatabaseError
    from app.settings import Settings
    from engines.backends import BackendError, create_backend

    try:
        db = Database.open(args.db_url)
    except DatabaseError as exc:
        print(f"radstation engine predraft: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            uids = select_studies(db, study_uids=args.study, include_reported=args.include_reported,
                                  redraft=args.redraft, limit=args.limit, name=args.name, patient_id=args.patient_id,
                                  accession=args.accession, date_from=args.date_from, date_to=args.date_to,
                                  modality=args.modality)
        except ValueError as exc:
            print(f"radstation engine predraft: {exc}", file=sys.stderr)
            return 2
        if not uids:
            print("no study to pre-draft (all reported or drafted, or none matches)")
            return 0
        if args.dry_run:
            print("\n".join(uids))
            return 0
        settings = Settings()
        configured, config = engine_from_settings(settings)
        name = args.engine or configured
        if name != configured:
            config = {"device": config.get("device", "auto")}  # another engine: the configured one's options don't apply
        if args.url:
            config["url"] = args.url
        threads = config.pop("threads", None)
        if threads and name != "ray-serve":
            import torch

            torch.set_num_threads(int(threads))
        try:
            backend = create_backend(name, **config)
        except BackendError as exc:
            print(f"radstation engine predraft: engine '{name}' is not usable: {exc}", file=sys.stderr)
            return 2
        mode = args.mode or str(settings.get("draft_mode", "") or "") or None
        predrafter = Predrafter(db, backend, name, concurrency=args.concurrency, steps=args.steps, seed=args.seed,
                                mode=mode)
        print(f"pre-drafting {len(uids)} stud{'y' if len(uids) == 1 else 'ies'} with '{name}' "
              f"({predrafter.concurrency} at a time)", flush=True)

        def report(outcome, done: int, total: int) -> None:
            extra = f" in {outcome.seconds:.1f} s" if outcome.state == "drafted" else f": {outcome.message}"
            by = f" ({outcome.served_by})" if outcome.served_by else ""
            print(f"[{done}/{total}] {outcome.study_uid} {outcome.state}{extra}{by}", flush=True)

        cancel = threading.Event()
        try:
            outcomes = predrafter.run(uids, report, cancel)
        finally:
            backend.close()
        counts = {state: sum(o.state == state for o in outcomes) for state in
                  ("drafted", "skipped", "failed", "cancelled", "not attempted")}
        print("pre-draft finished: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n))
        return 0 if counts["failed"] + counts["not attempted"] == 0 else 1
    finally:
        db.dispose()
