"""A private rsyslogd (Debian rsyslog + rsyslog-gnutls) on loopback, receiving syslog over TLS into a file."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

RSYSLOGD = "/usr/sbin/rsyslogd"
GTLS = Path("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so")


def available() -> bool:
    return Path(RSYSLOGD).exists() and GTLS.exists()


def _tls_files(work: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test audit CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (work / "ca.pem", work / "server.pem", work / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class Rsyslog:
    work: Path
    port: int
    ca_file: Path
    out: Path
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        ca, cert, key = self.ca_file, self.work / "server.pem", self.work / "server.key"
        conf = self.work / "rsyslog.conf"
        conf.write_text(f"""
global(workDirectory="{self.work}" defaultNetstreamDriver="gtls" defaultNetstreamDriverCAFile="{ca}"
       defaultNetstreamDriverCertFile="{cert}" defaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" port="{self.port}" address="127.0.0.1")
template(name="audit" type="string" string="%msgid% %structured-data% %msg%\\n")
*.* action(type="omfile" file="{self.out}" template="audit" asyncWriting="off" flushOnTXEnd="on")
""")
        self.proc = subprocess.Popen([RSYSLOGD, "-n", "-f", str(conf), "-i", str(self.work / "rsyslogd.pid")],
                                     stdout=subprocess.DEVNULL, stderr=(self.work / "rsyslogd.log").open("w"))
        import socket

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("rsyslogd exited: " + (self.work / "rsyslogd.log").read_text())
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("rsyslogd did not start listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self.proc = None

    def lines(self) -> list[str]:
        return self.out.read_text(encoding="utf-8", errors="replace").splitlines() if self.out.exists() else []


def make(work: Path, port: int) -> Rsyslog:
    work.mkdir(parents=True, exist_ok=True)
    ca, _, _ = _tls_files(work)
    shutil.rmtree(work / "spool", ignore_errors=True)
    return Rsyslog(work, port, ca, work / "audit.log")
