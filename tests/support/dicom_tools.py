"""Independent readers for the objects RadStation writes: dicom3tools' dciodvfy and DCMTK's dsrdump,
dcmpschk and dcmp2pgm. A test that needs one skips (with the apt package to install) when it is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


def _exe(name: str, package: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return exe


def dciodvfy_errors(path: Path) -> list[str]:
    proc = subprocess.run([_exe("dciodvfy", "dicom3tools"), str(path)], capture_output=True, text=True, timeout=60)
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]


def dsrdump(path: Path) -> str:
    proc = subprocess.run([_exe("dsrdump", "dcmtk"), str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def dcmpschk(path: Path) -> str:
    proc = subprocess.run([_exe("dcmpschk", "dcmtk"), str(path)], capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Test passed" in out, out
    return out


def dcmp2pgm(image: Path, pstate: Path | None, out: Path) -> np.ndarray:
    """The image as DCMTK renders it through the presentation state (8-bit greyscale)."""
    from PIL import Image

    cmd = [_exe("dcmp2pgm", "dcmtk")]
    if pstate is not None:
        cmd += ["--pstate", str(pstate)]
    proc = subprocess.run(cmd + [str(image), str(out)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return np.asarray(Image.open(out).convert("L"))


def dcmp2pgm_dump(image: Path, pstate: Path, out: Path) -> str:
    """What DCMTK reads from the presentation state when it renders `image` through it (its verbose dump:
    layers, text objects with anchor/box, graphic objects with type and points)."""
    proc = subprocess.run([_exe("dcmp2pgm", "dcmtk"), "-v", "--pstate", str(pstate), str(image), str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def save(ds, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path
