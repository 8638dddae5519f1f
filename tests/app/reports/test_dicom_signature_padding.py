"""The signer's certificate and the signature in a DICOM signature are OB values, padded to even length with one
zero byte (PS3.5 7.1.1): a certificate or an ECDSA signature whose DER has an odd length must still be read
(and a certified timestamp over the signature still match it), and nothing else may pass."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app.reports.dicom_signature import sign_dataset, verify_dicom_bytes

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class _Signer:
    def __init__(self, cert: x509.Certificate) -> None:
        self._cert = cert

    @property
    def certificate_der(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self._cert.public_bytes(serialization.Encoding.DER)

    def sign_sha256(self, data: bytes) -> bytes:
        return _KEY.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _certificate(parity: int) -> x509.Certificate:
    """A certificate whose DER length has the given parity (the subject's length moves it)."""
    from cryptography.hazmat.primitives import serialization

    now = dt.datetime.now(dt.UTC)
    for extra in range(8):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dr Odd" + "x" * extra)])
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dr Odd")])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(_KEY.public_key())
                .serial_number(1234567).not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + dt.timedelta(days=3)).sign(_KEY, hashes.SHA256()))
        if len(cert.public_bytes(serialization.Encoding.DER)) % 2 == parity:
            return cert
    raise AssertionError("no certificate of that parity")


def _dataset() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = "Test^Odd"
    ds.StudyInstanceUID = generate_uid()
    return ds


@pytest.mark.parametrize("parity", [0, 1], ids=["even-der", "odd-der"])
def test_a_signature_verifies_whatever_the_length_of_the_certificate(parity):
    signer = _Signer(_certificate(parity))
    check = verify_dicom_bytes(sign_dataset(_dataset(), signer))
    assert check.ok, check.problems
    assert check.signatures[0].certificate_der == signer.certificate_der


def test_only_one_trailing_pad_byte_is_taken_off():
    from app.reports.dicom_signature import der_from_ob

    der = _Signer(_certificate(1)).certificate_der
    assert der_from_ob(der + b"\x00") == der
    assert der_from_ob(der) == der
    # anything else after the certificate stays, so the parser refuses it rather than reading past it
    assert der_from_ob(der + b"\x01") == der + b"\x01"
    even = _Signer(_certificate(0)).certificate_der
    assert der_from_ob(even + b"\x00\x00") == even + b"\x00\x00"
    assert der_from_ob(b"\x00") == b"\x00"
    assert der_from_ob(b"") == b""


def test_a_pad_byte_other_than_zero_is_refused():
    signer = _Signer(_certificate(1))
    data = sign_dataset(_dataset(), signer)
    der = signer.certificate_der
    assert data.count(der + b"\x00") == 1
    tampered = data.replace(der + b"\x00", der + b"\x01", 1)
    check = verify_dicom_bytes(tampered)
    assert not check.ok
    assert "certificate cannot be read" in check.signatures[0].reason


def test_a_timestamp_matches_an_ecdsa_signature_of_odd_length(tmp_path):
    """A DER ECDSA signature is 70-72 bytes: an odd one is stored padded, and the timestamp's imprint is over the
    bytes the signer produced, not the padded value."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from app.reports.timestamps import check_dicom_timestamp, dicom_timestamper

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dr Curve")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(99).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=3)).sign(key, hashes.SHA256()))

    class EcSigner:
        certificate_der = cert.public_bytes(serialization.Encoding.DER)

        def sign_sha256(self, data: bytes) -> bytes:
            return key.sign(data, ec.ECDSA(hashes.SHA256()))

    from tests.support.dummy_tsa import dummy_time_stamper

    stamp = dicom_timestamper(dummy_time_stamper(
        _Signer(_certificate(0)).certificate_der,
        _KEY.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())))
    for _ in range(64):  # until the signature's DER has an odd length (about every other one)
        check = verify_dicom_bytes(sign_dataset(_dataset(), EcSigner(), timestamper=stamp))
        info = check.signatures[0]
        if len(info.signature_as_signed) % 2:
            break
    else:
        raise AssertionError("no odd-length ECDSA signature in 64 tries")
    assert check.ok, check.problems
    assert len(info.signature) == len(info.signature_as_signed) + 1 and info.signature[-1] == 0
    _when, problems = check_dicom_timestamp(info.timestamp, info.signature_as_signed)
    assert "the certified timestamp is not over this signature" not in problems
    _when, problems = check_dicom_timestamp(info.timestamp, info.signature)  # the padded value is not what was stamped
    assert "the certified timestamp is not over this signature" in problems


def test_an_odd_length_p521_signature_verifies():
    """A P-521 ECDSA signature (137-139 bytes) has a long-form DER length: its OB pad byte must come off too."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP521R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Dr P521")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(521).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=3)).sign(key, hashes.SHA256()))

    class P521Signer:
        certificate_der = cert.public_bytes(serialization.Encoding.DER)

        def sign_sha256(self, data: bytes) -> bytes:
            return key.sign(data, ec.ECDSA(hashes.SHA256()))

    for _ in range(64):  # until the signature's DER has an odd length
        check = verify_dicom_bytes(sign_dataset(_dataset(), P521Signer()))
        if len(check.signatures[0].signature_as_signed) % 2:
            break
    else:
        raise AssertionError("no odd-length P-521 signature in 64 tries")
    assert check.signatures[0].signature[1] == 0x81  # long-form length
    assert check.ok, check.problems
