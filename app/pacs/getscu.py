"""C-GET through DCMTK's `getscu`: the network side in C++, the import side pipelined beside it.

pynetdicom's Python state machine costs ~2.5 ms of CPU per received instance (issue 27), several times
what DCMTK's getscu spends on the whole instance. When getscu is installed and the association is plain
TCP (TLS stays on pynetdicom: the getscu we drive has no TLS options), the C-GET is run by a getscu
subprocess (no shell, validated arguments) writing each data set bit-preserving (`+B`: the bytes that
arrived, never re-encoded) into a private folder under the store's staging area. While it runs, each
file it has finished is taken at once, on this thread: it is read once into memory with its data set
bytes behind RadStation's own file meta (the same bytes the pynetdicom path writes, so a study's files and
hashes do not depend on the transport), hashed there, written back over getscu's own file and moved into
staging (no file is created or deleted per instance), checked from that same buffer by the same
`vet_delivery` as the pynetdicom path (the data set is the instance the C-STORE request announced, which
getscu recorded in the file meta, and lies inside the identifier that was asked for), and handed to the
caller's batching importer. The PACS
sees getscu's C-STORE responses, so a refused file is refused here (discarded, reported) rather than
answered with a failure status.

When is a file finished? getscu logs "Sending C-STORE Response (Success)" after it has written and
closed the file of that sub-operation, and then goes on to the next one, so after k such lines the k
oldest files (by modification time) are complete and at most one newer file is still being written.

Cancel terminates getscu; the files it had finished are imported (as the pynetdicom path keeps what had
arrived), a file it was still writing is deleted, and RetrieveCancelled is raised.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset

from app.importer.integrity import meta_text, part10_meta_elements
from app.importer.store import ManagedStore, StagedFile
from app.pacs.cancel import CancelToken
from app.pacs.dimse import StagedHandler
from app.pacs.errors import (
    AssociationRejectedError,
    PacsConfigError,
    PacsConnectionError,
    PacsRemoteError,
    PacsTimeoutError,
    RetrieveCancelled,
)
from app.pacs.nodes import PacsNode
from app.pacs.receive import _file_meta_bytes
from app.pacs.scope import (
    STATUS_CANNOT_UNDERSTAND,
    STATUS_OUT_OF_RESOURCES,
    RefusalHandler,
    RefusedInstance,
    RequestedScope,
    vet_delivery,
)

log = logging.getLogger(__name__)

TRANSPORTS = ("auto", "pynetdicom", "dcmtk")
GETSCU_PDU = 131072  # getscu's largest receive PDU
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_LEVELS = ("STUDY", "SERIES", "IMAGE")
_STORED = "Sending C-STORE Response (Success"
_POLL_S = 0.02  # how often the folder and the log are looked at while getscu runs
_TAIL = 40  # stderr lines kept for error messages


# Delayed-ACK stalls: an archive that leaves Nagle on (Orthanc does) holds the last small segment of each
# C-STORE until the receiver ACKs, and Linux delays that ACK by ~40 ms. pynetdicom's path sets TCP_QUICKACK
# on its own socket (app.pacs.tcp); getscu's socket cannot be tuned from here. Measured against Orthanc
# (benchmarks/results/pacs_cget_getscu_transport.md): 8 KB instances 22/s by getscu against ~220/s by
# pynetdicom, 128 KB ~120/s against ~190/s; 512 KB slices are faster by getscu. Under `auto` a getscu run
# whose first STALL_FILES files are small and arrive slower than STALL_RATE per second (below what
# pynetdicom takes small instances at here) is stopped and the rest fetched by pynetdicom.
STALL_FILES = 8  # files looked at before judging
STALL_RATE = 150.0  # files per second
STALL_SIZE = 256 * 1024  # mean bytes per file below which files count as small


class StalledSmallInstances(Exception):  # noqa: N818 - a signal to switch transports, not an error
    """getscu was stopped because small instances arrived at the delayed-ACK pace; what it had delivered
    was handed over. The caller fetches the rest by pynetdicom."""


def find_getscu() -> str | None:
    """Path of DCMTK's getscu (RADSTATION_GETSCU may name one), or None when it is not installed."""
    named = os.environ.get("RADSTATION_GETSCU", "").strip()
    if named:
        return named if os.path.isfile(named) and os.access(named, os.X_OK) else None
    return shutil.which("getscu")


def getscu_version(exe: str) -> str:
    """getscu's version line ('' when it cannot be run)."""
    try:
        run = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    for line in run.stdout.splitlines():
        if "getscu v" in line:
            return line.strip(" $")
    return ""


def argument_problem(node: PacsNode) -> str:
    """Why `node` cannot be handed to getscu as arguments ('' when it can)."""
    for label, value in (("calling AE title", node.calling_ae), ("called AE title", node.ae_title)):
        if value.strip() != value or value.startswith("-") or not value:
            return f"the {label} {value!r} cannot be passed to getscu (leading '-' or spaces)"
    if node.host.startswith("-") or not node.host:
        return f"the host {node.host!r} cannot be passed to getscu"
    return ""


def choose_transport(setting: str, node: PacsNode) -> str:
    """'dcmtk' or 'pynetdicom' for a C-GET from `node` under the `pacs_cget_transport` setting.

    auto: getscu when it is installed, the association is not TLS and the node's titles can be passed
    to it; pynetdicom otherwise. dcmtk: the same, but a missing getscu is an error the user sees (they
    asked for it); a TLS node still uses pynetdicom."""
    if setting not in TRANSPORTS:
        raise PacsConfigError(f"pacs_cget_transport must be one of {', '.join(TRANSPORTS)}, not {setting!r}")
    if setting == "pynetdicom" or node.tls:
        return "pynetdicom"
    problem = argument_problem(node)
    if find_getscu() is None or problem:
        if setting == "dcmtk":
            raise PacsConfigError(problem or "pacs_cget_transport is dcmtk but DCMTK's getscu is not installed "
                                  "(apt-get install dcmtk, or set it to auto)")
        return "pynetdicom"
    return "dcmtk"


def _keys(identifier: Dataset) -> list[str]:
    """getscu `-k` arguments for a C-GET identifier (level and UIDs only, each checked)."""
    level = str(identifier.get("QueryRetrieveLevel", "") or "")
    if level not in _LEVELS:
        raise PacsConfigError(f"cannot ask getscu for query/retrieve level {level!r}")
    out = ["-k", f"0008,0052={level}"]
    for tag, keyword in (("0020,000D", "StudyInstanceUID"), ("0020,000E", "SeriesInstanceUID"),
                         ("0008,0018", "SOPInstanceUID")):
        value = identifier.get(keyword)
        if value is None or value == "":
            continue
        uids = [str(v) for v in value] if not isinstance(value, str) else value.split("\\")
        bad = [u for u in uids if not _UID_RE.match(u) or len(u) > 64]
        if bad:
            raise PacsConfigError(f"{keyword} {bad[0]!r} is not a UID; not passed to getscu")
        out += ["-k", f"{tag}=" + "\\".join(uids)]
    return out


def getscu_arguments(exe: str, node: PacsNode, identifier: Dataset, outdir: Path) -> list[str]:
    """The argument vector (no shell) for one C-GET: study root, bit-preserving files into `outdir`."""
    node.validate()
    if problem := argument_problem(node):
        raise PacsConfigError(problem)
    timeout = str(max(1, int(node.timeout)))
    return [exe, "-v", "-S", "-aet", node.calling_ae, "-aec", node.ae_title, "-to", timeout, "-ta", timeout,
            "-td", timeout, "-pdu", str(GETSCU_PDU), "+B", "-od", str(outdir), *_keys(identifier),
            node.host.strip("[]"), str(int(node.port))]


def _meta(buf: mmap.mmap) -> tuple[int, str, str, str]:
    """(offset of the data set, SOP Class UID, SOP Instance UID, transfer syntax) from a Part 10 file's
    meta group as getscu wrote it; ValueError when it has none or it is cut short."""
    end, values = 132, {}  # the data set starts after the last meta element
    for elem, value, length, end in part10_meta_elements(buf):  # noqa: B007 (the loop's last `end` is the answer)
        if elem in (0x0002, 0x0003, 0x0010):
            values[elem] = meta_text(buf, value, length)
    if not all(values.get(e) for e in (0x0002, 0x0003, 0x0010)):
        raise ValueError("the file meta lacks its SOP class, SOP instance or transfer syntax UID")
    return end, values[0x0002], values[0x0003], values[0x0010]


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    with memoryview(data) as view:
        written = 0
        while written < len(view):
            written += os.write(fd, view[written:])


IN_MEMORY_MAX = 64 << 20  # files up to this size are read once into memory; larger ones are mapped
_PREFIX = 8192  # bytes read first: the file meta of any ordinary file lies inside them


def _meta_prefix(fd: int, size: int) -> tuple[bytes, int, str, str, str]:
    """The file's first bytes and `_meta` of them; the whole file is read when its meta group does not
    end inside those bytes with the header of the data set's first element after it (so a meta group
    longer than the prefix is never mistaken for a short one)."""
    prefix = os.pread(fd, min(size, _PREFIX), 0)
    if len(prefix) < size:
        try:
            start, sop_class, sop_instance, syntax = _meta(prefix)  # type: ignore[arg-type]
        except ValueError:
            start = len(prefix)
        if start + 8 <= len(prefix):
            return prefix, start, sop_class, sop_instance, syntax
        prefix = _read_at(fd, bytearray(size), 0)  # type: ignore[assignment]
    start, sop_class, sop_instance, syntax = _meta(prefix)  # type: ignore[arg-type]
    return prefix, start, sop_class, sop_instance, syntax


def _read_at(fd: int, out: bytearray, offset: int, at: int = 0) -> bytearray:
    """Fill out[at:] from the file at `offset`; OSError when the file ends first."""
    with memoryview(out) as view:
        got = at
        while got < len(out):
            n = os.preadv(fd, [view[got:]], offset + got - at)
            if n == 0:
                raise OSError("the received file is shorter than it was a moment ago")
            got += n
    return out


def stage_received_file(path: Path, staging: Path, source_ae: str,
                        ) -> tuple[StagedFile, str, str, bytearray | None]:
    """Stage a file getscu wrote: RadStation's file meta, then its data set bytes as they arrived.
    Returns (staged, announced SOP class, announced SOP instance, the staged bytes or None); the getscu
    file is gone afterwards. Raises ValueError (not DICOM Part 10) or OSError.

    A file up to IN_MEMORY_MAX is read once (two reads: its meta, then the data set straight behind
    RadStation's meta in one buffer), hashed from there, and written back over getscu's own file (whose
    pages are already in the page cache: no new file is created, none deleted), which is then made
    owner-only and moved into staging under a fresh name. The buffer, exactly the staged file's bytes,
    is returned so that the delivery check reads the header from memory rather than from the file. A
    larger file is mapped, hashed from the map and written to a new staging file (None is returned: it
    is probed from its file)."""
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        if size > IN_MEMORY_MAX:
            staged, sop_class, sop_instance = _stage_mapped(fd, staging, source_ae)
            data = None
            path.unlink(missing_ok=True)
        else:
            prefix, start, sop_class, sop_instance, syntax = _meta_prefix(fd, size)
            head = _file_meta_bytes(sop_class, sop_instance, syntax, source_ae)
            data = bytearray(len(head) + size - start)
            data[: len(head)] = head
            if len(prefix) == size:  # small file (or one read whole for its long meta): already in memory
                data[len(head):] = memoryview(prefix)[start:]
            else:
                _read_at(fd, data, start, len(head))
            digest = hashlib.sha256(data).hexdigest()
            os.fchmod(fd, 0o600)  # as HashingWriter's files
            _write_all(fd, data)  # from offset 0: the reads above were positional (pread), the offset never moved
            if len(data) < size:
                os.ftruncate(fd, len(data))
            staged = StagedFile(_move_into(path, staging), len(data), digest)
    finally:
        os.close(fd)
    return staged, sop_class, sop_instance, data


def _move_into(path: Path, staging: Path) -> Path:
    """Give the file a fresh name in `staging` (hard link, never over an existing name) and drop its
    getscu name; the staged file outlives getscu's folder, which is removed after the retrieve."""
    for _ in range(100):
        target = staging / f"in-{secrets.token_hex(8)}.part"
        try:
            os.link(path, target)
        except FileExistsError:
            continue
        except OSError:  # no hard links here: a rename to a name just claimed exclusively
            fd, name = tempfile.mkstemp(dir=staging, prefix="in-", suffix=".part")
            os.close(fd)
            os.replace(path, name)
            return Path(name)
        os.unlink(path)
        return target
    raise OSError("no free staging file name")


def _stage_mapped(fd: int, staging: Path, source_ae: str) -> tuple[StagedFile, str, str]:
    """A large file: its data set hashed as it is read (once, from the map) and written with one system
    call each (no buffered copy)."""
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as buf:
        start, sop_class, sop_instance, syntax = _meta(buf)
        head = _file_meta_bytes(sop_class, sop_instance, syntax, source_ae)
        out, name = tempfile.mkstemp(dir=staging, prefix="in-", suffix=".part")  # 0600, as HashingWriter
        try:
            with memoryview(buf) as view, view[start:] as body:
                digest = hashlib.sha256(head)
                digest.update(body)
                _write_all(out, head)
                _write_all(out, body)
        except BaseException:
            os.close(out)
            os.unlink(name)
            raise
        os.close(out)
        size = len(head) + len(buf) - start
    return StagedFile(Path(name), size, digest.hexdigest()), sop_class, sop_instance


def accept_file(path: Path, store: ManagedStore, scope: RequestedScope, source: str, source_ae: str,
                staging: Path | None = None) -> StagedFile:
    """One file getscu finished, staged and held to its request and `scope` (`vet_delivery`, the check
    the pynetdicom path applies); raises RefusedInstance (nothing kept) when it does not fit. `staging`:
    the store's staging folder, when the caller has it at hand (else asked of `store`)."""
    try:
        staged, sop_class, sop_instance, data = stage_received_file(path, staging or store.staging, source_ae)
    except ValueError as exc:
        path.unlink(missing_ok=True)
        raise RefusedInstance(f"file {path.name} ({source}) refused: {exc}", sop_instance_uid=path.name,
                              status=STATUS_CANNOT_UNDERSTAND, comment=str(exc)) from None
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise RefusedInstance(f"file {path.name} ({source}): cannot stage the received data: {exc}",
                              sop_instance_uid=path.name, status=STATUS_OUT_OF_RESOURCES,
                              comment="cannot read the received data", transient=True) from None
    vet_delivery(staged, scope, source, announced_instance=sop_instance, announced_class=sop_class, data=data)
    return staged


class _Log:
    """getscu's log, written to a file (not a pipe: no reader thread waking for every line and contending
    for the GIL with the import) and read as it grows: counts answered sub-operations, keeps the last lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stored = 0
        self.tail: deque[str] = deque(maxlen=_TAIL)
        self._fh: BinaryIO | None = None
        self._partial = b""

    def read(self) -> None:
        if self._fh is None:
            try:
                self._fh = open(self.path, "rb")  # noqa: SIM115 - kept open while getscu writes
            except FileNotFoundError:
                return
        chunk = self._fh.read()
        if not chunk:
            return
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").rstrip()
            if line.startswith("I: " + _STORED):
                self.stored += 1
            else:
                self.tail.append(line)

    def close(self) -> None:
        self.read()
        if self._partial:
            self.tail.append(self._partial.decode("utf-8", "replace").rstrip())
            self._partial = b""
        if self._fh is not None:
            self._fh.close()

    def errors(self) -> list[str]:
        return [line[3:] for line in self.tail if line.startswith(("F: ", "E: "))]


def _complete(files: list[os.DirEntry[str]], finished: int) -> list[os.DirEntry[str]]:
    """Of the files not yet taken, those certainly complete when `finished` more sub-operations have
    been answered: the `finished` oldest, less any that share the newest one's time (one of those may
    be the file getscu is writing; they are taken at the next look)."""
    if finished <= 0 or not files:
        return []
    files = sorted(files, key=lambda e: e.stat().st_mtime_ns)
    if finished >= len(files):
        return files
    take = files[:finished]
    first_unsure = files[finished].stat().st_mtime_ns
    return [e for e in take if e.stat().st_mtime_ns < first_unsure]


def _stalled(arrivals: list[tuple[int, int]]) -> bool:
    """True when the first STALL_FILES files were small and came slower than STALL_RATE per second."""
    if len(arrivals) < STALL_FILES:
        return False
    times = sorted(t for t, _ in arrivals)
    span = (times[-1] - times[0]) / 1e9
    small = sum(size for _, size in arrivals) / len(arrivals) < STALL_SIZE
    return small and span > 0 and (len(arrivals) - 1) / span < STALL_RATE


_NO_CONNECTION = ("Connection refused", "TCP Initialization Error", "not known", "Host not found", "No route")
_CONNECTION_LOST = ("TCP I/O Error", "Broken pipe", "Connection reset", "Network closed", "Read PDV failed")


def _classify(node: PacsNode, returncode: int, errors: list[str]) -> Exception:
    """The PacsError for a getscu that exited with `returncode`, from its last error line (the same
    classes and wording the pynetdicom path uses for the same failures)."""
    text = errors[-1] if errors else f"getscu exited with status {returncode}"
    where = node.describe()
    if "Association Rejected" in text:
        return AssociationRejectedError(f"{where} rejected the association ({text}); check the called AE title "
                                        f"{node.ae_title!r} and that the PACS knows {node.calling_ae!r}")
    if any(k in text for k in _NO_CONNECTION):
        return PacsConnectionError(f"{where}: cannot open an association ({text})")
    if "imeout" in text:
        return PacsTimeoutError(f"{where} stopped answering during C-GET (no reply within {node.timeout:g} s; "
                                f"{text}); what arrived so far is kept")
    if any(k in text for k in _CONNECTION_LOST):
        return PacsConnectionError(f"{where} dropped the connection during C-GET ({text}); what arrived so far is kept")
    if "bort" in text:
        return PacsRemoteError(f"{where} aborted the association during C-GET ({text}); what arrived so far is kept")
    return PacsRemoteError(f"{where}: the C-GET by getscu failed: {text}")


class GetscuRetriever:
    """C-GET of identifiers from a plain-TCP DIMSE node by DCMTK's getscu (see the module docstring)."""

    def __init__(self, node: PacsNode, exe: str | None = None, *, give_way_when_stalled: bool = False) -> None:
        self.node = node.validate()
        self.give_way_when_stalled = give_way_when_stalled  # `auto`: raise StalledSmallInstances (above)
        self.exe = exe or find_getscu()
        if self.exe is None:
            raise PacsConfigError("DCMTK's getscu is not installed (apt-get install dcmtk)")
        if node.tls:
            raise PacsConfigError(f"{node.describe()} uses TLS: its C-GET stays on pynetdicom")

    def get(
        self,
        identifiers: Sequence[Dataset],
        *,
        store: ManagedStore,
        on_staged: StagedHandler,
        on_refused: RefusalHandler | None = None,
        cancel: CancelToken | None = None,
    ) -> int:
        """C-GET each identifier (one getscu association each); returns the number of instances handed to
        `on_staged`. Raises a PacsError when getscu cannot retrieve, RetrieveCancelled after a cancel."""
        source = f"C-GET from {self.node.describe()}"
        work = Path(tempfile.mkdtemp(prefix="getscu-", dir=store.staging))  # 0700, same file system
        stored = 0
        try:
            for identifier in identifiers:
                stored += self._one(identifier, work, store, source, on_staged, on_refused, cancel)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return stored

    def _one(self, identifier: Dataset, work: Path, store: ManagedStore, source: str, on_staged: StagedHandler,
             on_refused: RefusalHandler | None, cancel: CancelToken | None) -> int:
        scope = RequestedScope.from_identifier(identifier)
        staging = store.staging
        outdir = Path(tempfile.mkdtemp(dir=work))
        args = getscu_arguments(str(self.exe), self.node, identifier, outdir)
        env = dict(os.environ, TCP_NODELAY="1")
        stored = 0
        taken = 0
        arrivals: list[tuple[int, int]] = []  # (mtime ns, size) of the first files, to spot the ACK stall

        def take(entries: list[os.DirEntry[str]]) -> None:
            nonlocal stored, taken
            for entry in entries:
                taken += 1
                if len(arrivals) < STALL_FILES:
                    try:
                        st = entry.stat()
                        arrivals.append((st.st_mtime_ns, st.st_size))
                    except OSError:
                        pass
                try:
                    staged = accept_file(Path(entry.path), store, scope, source, self.node.ae_title, staging)
                except RefusedInstance as refusal:
                    log.warning("%s", refusal)
                    if on_refused is not None:
                        on_refused(refusal)
                    continue
                try:
                    on_staged(staged, source)
                except Exception as exc:  # noqa: BLE001 - as the pynetdicom path: that instance failed, never a crash
                    log.warning("could not store a retrieved instance: %s", exc)
                    staged.discard()
                    continue
                stored += 1

        def untaken() -> list[os.DirEntry[str]]:
            with os.scandir(outdir) as it:
                return [e for e in it if e.is_file(follow_symlinks=False)]

        log_path = work / f"{outdir.name}.log"
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
                                    env=env, cwd=work)
        logs = _Log(log_path)
        started = time.monotonic()
        cancelled = stalled = False
        try:
            while proc.poll() is None:
                time.sleep(_POLL_S)
                if cancel is not None and cancel.cancelled:
                    cancelled = True
                    break
                logs.read()
                take(_complete(untaken(), logs.stored - taken))
                if self.give_way_when_stalled and _stalled(arrivals):
                    stalled = True
                    break
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            logs.close()
        log.debug("getscu exited (status %s) after %.2f s; %d of its %d answered files imported by then",
                  proc.returncode, time.monotonic() - started, taken, logs.stored)
        if cancelled or stalled or proc.returncode != 0:
            # what getscu had answered is complete; a file it was still writing is not
            take(_complete(untaken(), logs.stored - taken))
            for entry in untaken():
                Path(entry.path).unlink(missing_ok=True)
            if stalled:
                raise StalledSmallInstances(f"{self.node.describe()}: small instances arrive at the delayed-ACK pace "
                                            f"by getscu; the rest is fetched by pynetdicom")
            if cancelled:
                raise RetrieveCancelled(f"C-GET from {self.node.describe()} cancelled")
            raise _classify(self.node, proc.returncode, logs.errors())
        take(untaken())  # getscu has exited normally: every file it left is complete
        for problem in logs.errors():
            log.warning("getscu, C-GET of %s from %s: %s", scope.describe(), self.node.describe(), problem)
        return stored

