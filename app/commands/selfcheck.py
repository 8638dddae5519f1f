"""`radstation selfcheck`: is this installation complete? Versions, image decoders, DB migrations, demo, engine.

Written for the packaged app, where a missing plugin or data file only shows when a user opens a study:
every check does the real thing (encode and decode a frame through each decoder plugin, migrate a fresh
SQLite file, parse the demo DICOMDIR, run one job in a spawned engine worker) and prints one line per check.
Exit status 1 when a required check failed; missing shipped engine weights are a warning unless --strict.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "FAIL"

# Distributions whose versions a bug report needs (import name differs from the distribution name).
VERSIONED = ("radstation", "pydicom", "numpy", "PySide6-Essentials", "vtk", "torch", "SQLAlchemy", "alembic",
             "pylibjpeg", "pylibjpeg-openjpeg", "pylibjpeg-libjpeg", "pylibjpeg-rle", "pyjpegls", "python-gdcm",
             "pillow", "highdicom", "pynetdicom", "SimpleITK", "onnxruntime")


@dataclass
class Check:
    name: str
    status: str
    detail: str


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("selfcheck", help="check this installation (decoders, database migrations, demo, engine)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--no-worker", action="store_true", help="skip starting an engine worker process")
    p.add_argument("--strict", action="store_true", help="missing shipped engine weights count as a failure")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    checks: list[Check] = [Check("python", OK, f"{platform.python_version()} ({sys.executable}, "
                                           f"frozen={bool(getattr(sys, 'frozen', False))})")]
    steps: list[tuple[str, Callable[[], list[Check]]]] = [
        ("versions", check_versions),
        ("decoder libraries", check_decoder_libraries),
        ("decoders", check_decoders),
        ("decoder choice", check_decoder_choice),
        ("database", check_migrations),
        ("demo", check_demo),
        ("weights", lambda: check_weights(strict=args.strict)),
        ("qt", check_qt_plugins),
        ("vtk", check_vtk),
        ("pacs", check_cget_transport),
    ]
    if not args.no_worker:
        steps.append(("worker", check_worker))
    for name, step in steps:
        try:
            checks.extend(step())
        except Exception as exc:  # noqa: BLE001 - one broken part must not hide the report on the others
            checks.append(Check(name, FAIL, f"{type(exc).__name__}: {exc}"))
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=1))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{c.status:4}  {c.name:<{width}}  {c.detail}")
        failed = sum(c.status == FAIL for c in checks)
        print(f"selfcheck: {failed} failed, {sum(c.status == WARN for c in checks)} warnings")
    return 1 if any(c.status == FAIL for c in checks) else 0


def check_versions() -> list[Check]:
    found, missing = [], []
    for dist in VERSIONED:
        try:
            found.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            missing.append(dist)
    detail = ", ".join(found) + (f"; no metadata: {', '.join(missing)}" if missing else "")
    return [Check("versions", OK, detail)]


def _synthetic_ct(frame: object) -> object:
    """A minimal uncompressed 16-bit CT dataset around `frame` (no test data files needed in a bundle)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.2", generate_uid(), "CT"
    ds.Rows, ds.Columns = frame.shape  # type: ignore[attr-defined]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = frame.tobytes()  # type: ignore[attr-defined]
    return ds


def check_decoder_libraries() -> list[Check]:
    """Import each decoder library pydicom can use: a plugin that fails to import just looks "absent"."""
    import importlib

    loaded, broken = [], []
    for module in ("openjpeg", "libjpeg", "rle", "jpeg_ls", "gdcm", "PIL.Image"):
        try:
            importlib.import_module(module)
            loaded.append(module)
        except Exception as exc:  # noqa: BLE001 - the reason is the point of this check
            broken.append(f"{module} ({type(exc).__name__}: {exc})")
    return [Check("decoder libraries", FAIL if broken else OK,
                  f"import ok: {', '.join(loaded)}" + (f"; broken: {'; '.join(broken)}" if broken else ""))]


def check_decoders() -> list[Check]:
    """Each compressed syntax a PACS sends: encode a CT frame, decode it through every available plugin."""
    import numpy as np
    from pydicom import uid
    from pydicom.pixels import get_decoder

    yy, xx = np.mgrid[0:64, 0:80]
    frame = ((xx * 37 + yy * 11 + (xx * yy) % 97) % 4096).astype(np.uint16)  # 12-bit, not trivially compressible
    out = []
    for syntax in (uid.JPEG2000Lossless, uid.JPEGLSLossless, uid.RLELossless):
        ds = _synthetic_ct(frame)
        ds.compress(syntax, encoding_plugin="")  # type: ignore[attr-defined]
        plugins = list(get_decoder(syntax).available_plugins)
        good, bad = [], []
        for plugin in plugins:
            try:
                arr = get_decoder(syntax).as_array(ds, decoding_plugin=plugin)[0]
                if np.array_equal(arr, frame):
                    good.append(plugin)
                else:
                    bad.append(f"{plugin} (wrong pixels)")
            except Exception as exc:  # noqa: BLE001 - report which plugin breaks and why
                bad.append(f"{plugin} ({type(exc).__name__}: {exc})")
        status = OK if good and not bad else FAIL
        detail = f"round trip decoded by {', '.join(good) or 'nothing'}" + (f"; failed: {'; '.join(bad)}" if bad
                                                                            else "")
        out.append(Check(f"decode {syntax.keyword}", status, detail))
    # Syntaxes encoded elsewhere (lossy JPEG, JPEG lossless, HTJ2K): a plugin must at least be loadable.
    for syntax in (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLosslessSV1, uid.JPEG2000,
                   uid.HTJ2KLossless):
        plugins = sorted(get_decoder(syntax).available_plugins)
        out.append(Check(f"decode {syntax.keyword}", OK if plugins else FAIL,
                         f"plugins: {', '.join(plugins) or 'none (install pylibjpeg-libjpeg / python-gdcm)'}"))
    return out


def check_decoder_choice() -> list[Check]:
    """The plugin the viewer decodes each compressed syntax with, as measured now (viewer/io/decoders)."""
    from pydicom import uid as uids

    from viewer.io import decoders
    from viewer.io.progressive import supports

    out = []
    for syntax in decoders.ranked_syntaxes:
        timings = decoders.rank_plugins(syntax, repeats=2)
        chosen = decoders.choose(timings)
        if not timings:
            out.append(Check(f"choice {uids.UID(syntax).keyword}", WARN, "no encoder installed to measure with"))
            continue
        listed = "; ".join(
            f"{t.plugin} {t.seconds * 1e3:.1f} ms" + (" holds GIL" if t.holds_gil else "") + (f" ({t.error})" if t.error else "")
            for t in timings)
        reduced = ", reduced-resolution first decode" if supports(syntax) else ""
        out.append(Check(f"choice {uids.UID(syntax).keyword}", OK if chosen else FAIL,
                         f"{chosen or 'none'}{reduced} [{decoders.SAMPLE_SIZE}^2 12-bit: {listed}]"))
    return out


def check_cget_transport() -> list[Check]:
    """Which program runs C-GET retrievals (app.pacs.getscu): DCMTK's getscu (and its version) or pynetdicom."""
    from app.pacs.getscu import TRANSPORTS, find_getscu, getscu_version
    from app.settings import current_settings

    setting = str(current_settings().get("pacs_cget_transport", "auto") or "auto")
    exe = find_getscu()
    found = f"getscu {exe} ({getscu_version(exe) or 'version unknown'})" if exe else "getscu not installed"
    if setting not in TRANSPORTS:
        return [Check("pacs C-GET transport", FAIL, f"setting pacs_cget_transport={setting!r} is not one of "
                      f"{', '.join(TRANSPORTS)}; {found}")]
    if setting == "dcmtk" and exe is None:
        return [Check("pacs C-GET transport", FAIL, "setting pacs_cget_transport=dcmtk but getscu is not installed "
                      "(apt-get install dcmtk)")]
    used = "pynetdicom" if setting == "pynetdicom" or exe is None else "dcmtk getscu"
    return [Check("pacs C-GET transport", OK, f"setting {setting}: {used} for plain-TCP nodes, pynetdicom for TLS; "
                  f"{found}")]


def check_migrations() -> list[Check]:
    """Migrate a fresh SQLite file to head (the scripts are read from disk, so a bundle can miss them)."""
    from sqlalchemy import create_engine, inspect

    from app.db.migrate import MIGRATIONS_DIR, current_revision, head_revision, upgrade_to_head

    with tempfile.TemporaryDirectory(prefix="radstation-selfcheck-") as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'check.db'}")
        try:
            upgrade_to_head(engine)
            current, head = current_revision(engine), head_revision()
            tables = sorted(inspect(engine).get_table_names())
        finally:
            engine.dispose()
    ok = current is not None and current == head
    return [Check("database migrations", OK if ok else FAIL,
                  f"fresh SQLite migrated to {current} (head {head}), {len(tables)} tables; scripts in {MIGRATIONS_DIR}")]


def check_demo() -> list[Check]:
    """The bundled demo parses and its first radiograph decodes (what `radstation` opens first)."""
    import pydicom

    from viewer.demo import demo_dir, demo_studies

    root = demo_dir()
    studies = demo_studies(root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.parent != root)
    if not studies or not files:
        return [Check("demo", FAIL, f"no demo studies under {root}")]
    shape = pydicom.dcmread(files[0]).pixel_array.shape
    modalities = sorted({se.modality for s in studies for se in s.series})
    return [Check("demo", OK, f"{len(studies)} studies ({', '.join(modalities)}), {len(files)} files in {root}; "
                              f"first image {shape} decodes")]


def check_weights(strict: bool = False) -> list[Check]:
    from engines.backends.diffusion import DEFAULT_WEIGHTS

    files = sorted(p.name for p in DEFAULT_WEIGHTS.glob("*")) if DEFAULT_WEIGHTS.is_dir() else []
    if files:
        size = sum(p.stat().st_size for p in DEFAULT_WEIGHTS.glob("*") if p.is_file()) / 2**20
        return [Check("engine weights", OK, f"{DEFAULT_WEIGHTS} ({len(files)} files, {size:.1f} MiB)")]
    return [Check("engine weights", FAIL if strict else WARN,
                  f"{DEFAULT_WEIGHTS} is missing or empty: the built-in engine cannot draft reports")]


def check_qt_plugins() -> list[Check]:
    """The platform plugins the app can start on (xcb for a desktop, offscreen for servers)."""
    from PySide6.QtCore import QLibraryInfo

    folder = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms"
    names = sorted(p.name.removeprefix("libq").removesuffix(".so") for p in folder.glob("libq*.so"))
    status = OK if "xcb" in names else FAIL
    return [Check("qt platforms", status, f"{', '.join(names) or 'none'} in {folder}")]


def check_vtk() -> list[Check]:
    """The VTK modules the 3-D view imports load (a bundle carries only those, never all of `vtk`)."""
    from vtkmodules.vtkCommonCore import vtkVersion

    import viewer.widgets.volume_render_view  # noqa: F401 - importing it loads its vtkmodules

    return [Check("vtk", OK, f"VTK {vtkVersion.GetVTKVersion()}: the volume view's modules load")]


def _selfcheck_image():
    """(pixels, what): the first image of the bundled demo radiograph study, else a drawn 12-bit pattern."""
    import numpy as np

    from viewer.demo import demo_dir

    files = sorted((demo_dir() / "PT000001").rglob("IM*"))
    if files:
        try:
            import pydicom

            return pydicom.dcmread(files[0]).pixel_array, "demo radiograph"
        except Exception:  # noqa: BLE001 - a damaged demo is reported by the demo check; draw one instead
            pass
    return (np.random.default_rng(0).random((64, 64)) * 4095).astype(np.uint16), "drawn pattern"


def check_worker() -> list[Check]:
    """Start an engine worker the way the app does, load the built-in engine and run one draft job.

    Without shipped weights a tiny random checkpoint stands in: the point is that the worker process
    starts (also from a frozen bundle), torch loads and a job's arrays travel both ways.
    """

    from app.ai.engine_settings import DEFAULT_BACKEND
    from app.settings import current_settings
    from engines.backends.diffusion import DEFAULT_WEIGHTS
    from engines.backends.results import TextOutput
    from engines.worker.client import WorkerClient, worker_command
    from engines.worker.requests import DraftRequest

    # the backbone's backend the app would ask for (setting engine_backend), so the check drafts the way the app does
    asked = str(current_settings().get("engine_backend", DEFAULT_BACKEND) or DEFAULT_BACKEND)
    with tempfile.TemporaryDirectory(prefix="radstation-selfcheck-") as tmp:
        path = DEFAULT_WEIGHTS
        if not any(DEFAULT_WEIGHTS.glob("*")):
            from engines.models.tiny import make_tiny_checkpoint

            path = make_tiny_checkpoint(Path(tmp) / "tiny")
        t0 = time.monotonic()
        with WorkerClient("diffusion", {"path": str(path), "device": "cpu", "threads": 1, "backend": asked}) as worker:
            status = worker.start()
            image, what = _selfcheck_image()
            # The engine's input gate turns away what is not a frontal chest radiograph: the bundled demo
            # radiograph is one; a drawn pattern (no demo installed) runs under an explicit override.
            draft = worker.run(DraftRequest(images=(image,), seed=1, override_scope=what != "demo radiograph"),
                               timeout=300)
        seconds = time.monotonic() - t0
    which = "shipped weights" if path == DEFAULT_WEIGHTS else "tiny random checkpoint"
    text = draft if isinstance(draft, TextOutput) else None
    ok = text is not None and bool(text.findings or text.impression)
    if text is None:  # the input gate turned it away (OutOfScope), or the engine refused
        why = getattr(draft, "message", "") or getattr(draft, "reason", "") or getattr(draft, "kind", "?")
        which += f"; the input gate turned the {what} away: {why}"
    running = str(status.get("runtime") or "?")
    backend = f"backend {running}" if running == asked else (
        f"backend {running}, not the {asked} asked for: {status.get('runtime_error') or 'no reason given'}")
    return [Check("engine worker", FAIL if not ok else (OK if running == asked else WARN),
                  f"`{' '.join(worker_command())}` loaded {status.get('name')} on {status.get('device')} "
                  f"({which}; {backend}) and drafted {len(text.findings) if text else 0} chars in {seconds:.1f} s")]
