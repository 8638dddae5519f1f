"""The openai-compatible engine against a real `transformers serve` on loopback (TLS, bearer token).

The served model is the session's tiny random-weight LLaVA (built offline), so the words are noise; what
is tested is the real round trip (images as data URLs, chat completions, logprobs), the token read from
a real keyring backend, and the clear message for each failure: down, timeout, wrong token, model missing,
untrusted certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engines.backends import BackendError, create_backend

pytest.importorskip("openai")
pytest.importorskip("fastapi")
keyring = pytest.importorskip("keyring")
pytest.importorskip("keyrings.alt")

HERE = Path(__file__).resolve().parent
TOKEN = "s3cret-department-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gpu-server.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "server.pem", tmp / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="session")
def served(tiny_vlm_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """`transformers serve` of the tiny VLM on https://127.0.0.1:PORT/v1; stopped at the end."""
    tmp = tmp_path_factory.mktemp("served")
    cert, key = _self_signed(tmp)
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, str(HERE / "served_vlm.py"), str(tiny_vlm_dir), str(port), str(cert),
                             str(key), TOKEN], stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 240
    while True:
        if proc.poll() is not None:
            raise RuntimeError("transformers serve exited: " + (tmp / "serve.log").read_text(errors="replace")[-3000:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("transformers serve did not listen: "
                                   + (tmp / "serve.log").read_text(errors="replace")[-3000:]) from None
            time.sleep(0.5)
    try:
        yield {"url": f"https://127.0.0.1:{port}/v1", "model": str(tiny_vlm_dir), "ca": str(cert), "port": port}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture
def key_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real keyring backend (keyrings.alt's file store) in a temp dir, as the workstation's OS keyring."""
    from keyrings.alt.file import PlaintextKeyring

    store = PlaintextKeyring()
    store.file_path = str(tmp_path / "keyring.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(store)
    yield store
    keyring.set_keyring(previous)


def _backend(served, **over):
    config = {"url": served["url"], "model": served["model"], "tls_ca": served["ca"], "max_new_tokens": 12,
              "answer_max_new_tokens": 4, "timeout_s": 300, **over}
    return create_backend("openai-compatible", device="auto", **config)


def _image() -> np.ndarray:
    return (np.random.default_rng(0).random((64, 64)) * 4000).astype(np.uint16)


def test_drafts_and_answers_through_the_served_model(served, key_store):
    key_store.set_password("radstation-engine", served["url"], TOKEN)
    backend = _backend(served)
    info = backend.describe()
    assert backend.capabilities == frozenset({"draft", "answer"})  # no maps, no what-if from a served VLM
    assert info["tls"] and info["token"] == "from keyring" and info["weights_hash"].startswith("served:")
    out = backend.draft([_image()])
    assert out.text and out.steps > 0 and out.extra["server"] == served["url"]
    if out.extra["token_confidence"] == "logprobs":
        assert out.tokens and 0.0 <= out.confidence <= 1.0
    else:
        assert np.isnan(out.confidence) and not out.tokens
    ans = backend.answer([_image()], "Is there a pleural effusion?")
    assert ans.steps > 0
    with pytest.raises(BackendError, match="cannot inpaint"):
        backend.inpaint(_image(), np.ones((4, 4), bool), "x")
    backend.close()


def test_wrong_or_missing_token_is_named(served, key_store):
    key_store.set_password("radstation-engine", served["url"], "not-the-token")
    with pytest.raises(BackendError, match=r"refused the token \(HTTP 401\).*radstation engine token"):
        _backend(served)


def test_model_missing_is_named_with_what_the_server_has(served, key_store):
    key_store.set_password("radstation-engine", served["url"], TOKEN)
    with pytest.raises(BackendError, match=r"does not serve model 'medgemma-4b'.*it serves: .*tiny"):
        _backend(served, model="medgemma-4b")


def test_untrusted_certificate_is_named(served, key_store):
    key_store.set_password("radstation-engine", served["url"], TOKEN)
    with pytest.raises(BackendError, match="TLS certificate .* not trusted.*tls_ca"):
        _backend(served, tls_ca="")


def test_timeout_is_named(served, key_store):
    key_store.set_password("radstation-engine", served["url"], TOKEN)
    backend = _backend(served)
    backend.client = backend.client.with_options(timeout=0.001)
    backend.timeout_s = 0.001
    with pytest.raises(BackendError, match="did not answer within 0.001 s"):
        backend.draft([_image()])


def test_server_down_is_named(key_store):
    port = _free_port()  # nothing listens here
    with pytest.raises(BackendError, match=r"cannot reach the engine server at https://127.0.0.1:\d+/v1"):
        create_backend("openai-compatible", url=f"https://127.0.0.1:{port}/v1", model="m", timeout_s=5)


def test_settings_mistakes_are_named():
    with pytest.raises(BackendError, match="needs a server URL"):
        create_backend("openai-compatible", url="gpu-server:8000", model="m")
    with pytest.raises(BackendError, match="served model's name"):
        create_backend("openai-compatible", url="https://gpu-server:8000/v1")
