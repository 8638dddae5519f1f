"""`python -m app selfcheck` checks the real installation: decoders, migrations, demo, Qt, engine worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.commands import selfcheck

ROOT = Path(__file__).resolve().parents[2]


def test_selfcheck_passes_on_this_checkout(tmp_path: Path) -> None:
    env = {**os.environ, "RADSTATION_HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen"}
    res = subprocess.run([sys.executable, "-m", "app", "selfcheck", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert all(c["status"] in ("ok", "warn") for c in checks.values()), checks
    for name in ("decoder libraries", "decode JPEG2000Lossless", "decode JPEGLSLossless", "decode RLELossless",
                 "database migrations", "demo", "qt platforms", "vtk"):
        assert checks[name]["status"] == "ok", checks[name]
    worker = checks["engine worker"]  # drafts with the default backend; a CPU without VNNI drafts int8 in float32
    assert worker["status"] == "ok" and "backend onnx-int8)" in worker["detail"] or (
        worker["status"] == "warn" and "not the onnx-int8 asked for: " in worker["detail"]), worker
    assert "pylibjpeg" in checks["decode JPEG2000Lossless"]["detail"]
    assert "xcb" in checks["qt platforms"]["detail"]
    htj2k = checks["choice HTJ2KLossless"]
    assert htj2k["status"] == "ok" and "imagecodecs" in htj2k["detail"] and "reduced-resolution" in htj2k["detail"]
    assert checks["engine weights"]["status"] in ("ok", "warn")


def test_a_failing_part_is_reported_and_sets_the_exit_status(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> list[selfcheck.Check]:
        raise FileNotFoundError("resources/demo/DICOMDIR")

    monkeypatch.setattr(selfcheck, "check_demo", broken)
    for name in ("check_versions", "check_decoder_libraries", "check_decoders", "check_migrations",
                 "check_qt_plugins", "check_vtk"):
        monkeypatch.setattr(selfcheck, name, lambda: [])
    monkeypatch.setattr(selfcheck, "check_weights", lambda strict: [])
    code = selfcheck.run(selfcheck_args())
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  demo" in out and "FileNotFoundError: resources/demo/DICOMDIR" in out


def test_missing_weights_fail_only_when_strict(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import engines.backends.diffusion as diffusion

    monkeypatch.setattr(diffusion, "DEFAULT_WEIGHTS", tmp_path / "absent")
    assert selfcheck.check_weights(strict=False)[0].status == selfcheck.WARN
    assert selfcheck.check_weights(strict=True)[0].status == selfcheck.FAIL


def selfcheck_args() -> object:
    import argparse

    return argparse.Namespace(json=False, no_worker=True, strict=False)


def test_the_c_get_transport_is_recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import shutil

    from app.settings import Settings, use_settings

    settings = Settings(tmp_path / "settings.json")
    use_settings(settings)
    try:
        (check,) = selfcheck.check_cget_transport()
        assert check.status == selfcheck.OK and "setting auto" in check.detail
        if shutil.which("getscu"):
            assert "dcmtk getscu for plain-TCP nodes" in check.detail and "getscu v3" in check.detail
        settings.set("pacs_cget_transport", "dcmtk")
        monkeypatch.setenv("RADSTATION_GETSCU", str(tmp_path / "absent"))
        (check,) = selfcheck.check_cget_transport()
        assert check.status == selfcheck.FAIL and "getscu is not installed" in check.detail
        settings.set("pacs_cget_transport", "fastest")
        assert selfcheck.check_cget_transport()[0].status == selfcheck.FAIL
    finally:
        use_settings(None)


def test_the_engine_worker_check_drafts_with_the_backend_the_settings_ask_for(tmp_path: Path) -> None:
    """The worker check asks for the site's engine_backend (as the app does) and says which one ran."""
    from app.settings import Settings, use_settings

    settings = Settings(tmp_path / "settings.json")
    use_settings(settings)
    try:
        for backend in ("onnx", "torch"):
            settings.set("engine_backend", backend)
            (check,) = selfcheck.check_worker()
            assert check.status == selfcheck.OK and f"backend {backend})" in check.detail, check
    finally:
        use_settings(None)
