"""Fuzz targets: one function per untrusted-input parser, `target(data: bytes) -> None`.

Each feeds arbitrary bytes to the product's own entry point for that input and lets through only the
refusal that entry point promises (a clear error naming the reason). Any other exception, a hang or a
crash of the interpreter is a bug: benchmarks/fuzz.py drives these under atheris, and every input that
ever broke one is kept in tests/fuzz/corpus/<target>/ and replayed by tests/fuzz/test_fuzz_regressions.py.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

# Scratch files live in RAM where possible: a fuzzer writes tens of thousands per minute.
_SCRATCH = Path(tempfile.mkdtemp(prefix="radstation-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
warnings.simplefilter("ignore")


def _scratch(name: str, data: bytes) -> Path:
    path = _SCRATCH / name
    path.write_bytes(data)
    return path


def dicom_probe(data: bytes) -> None:
    """The import path's header probe and structure walk (files from disk, CD, zip or a network peer)."""
    from app.importer.integrity import StructureError, check_buffer, part_sop_instance_uid
    from app.importer.probe import RejectedFile, probe_file

    part_sop_instance_uid(data)
    try:
        check_buffer(data)
    except StructureError:
        pass
    try:
        probed = probe_file(_scratch("probe.dcm", data))
    except RejectedFile as exc:
        assert str(exc), "a refusal must say why"
        return
    assert probed.header.sop_instance_uid and probed.header.study_uid


def pixel_decode(data: bytes) -> None:
    """The viewer's decode of a file: header checks, then every frame's pixels (first 4 frames)."""
    from viewer.io.image import DicomReadError, load_image

    try:
        image = load_image(_scratch("pixels.dcm", data))
        if image.rows * image.columns * max(1, image.n_frames) > 64_000_000:
            return  # a claimed size this large is refused by the pixel data length check below anyway
        for i in range(min(image.n_frames, 4)):
            image.frame(i)
    except DicomReadError as exc:
        assert str(exc)


def dicomweb_json(data: bytes) -> None:
    """A QIDO-RS answer from a DICOMweb server, through to the rows the query panel shows."""
    from app.pacs.dicomweb import parse_search_results
    from app.pacs.errors import PacsError
    from app.pacs.query import InstanceResult, SeriesResult, StudyResult

    try:
        for ds in parse_search_results(data, "fuzz"):
            StudyResult.from_dataset(ds)
            SeriesResult.from_dataset(ds, "1.2")
            InstanceResult.from_dataset(ds, "1.2")
    except PacsError as exc:
        assert str(exc)


def zip_dicomdir(data: bytes) -> None:
    """What an import does with a zip file or a DICOMDIR it is given: never raises, reports issues."""
    from app.importer.sources import SourceExpander, ZipLimits

    limits = ZipLimits(max_total_bytes=32 << 20, min_free_bytes=0)
    for name in ("in.zip", "DICOMDIR"):
        work = Path(tempfile.mkdtemp(dir=_SCRATCH))
        try:
            source = work / "media"
            source.mkdir()
            (source / name).write_bytes(data)
            extract = work / "x"
            extract.mkdir()
            expander = SourceExpander(extract, limits=limits)
            expander.expand([source / name])
            for issue in expander.issues:
                assert issue.reason
        finally:
            import shutil

            shutil.rmtree(work, ignore_errors=True)


def worker_protocol(data: bytes) -> None:
    """A line from the engine worker process as the app decodes it (and the results it rebuilds)."""
    from engines.worker.protocol import ProtocolError, decode
    from engines.worker.wire import WireError, from_wire

    try:
        message = decode(data)
        from_wire(message)
    except (ProtocolError, WireError) as exc:
        assert str(exc)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "dicom_probe": dicom_probe,
    "pixel_decode": pixel_decode,
    "dicomweb_json": dicomweb_json,
    "zip_dicomdir": zip_dicomdir,
    "worker_protocol": worker_protocol,
}

CORPUS = Path(__file__).resolve().parent / "corpus"
