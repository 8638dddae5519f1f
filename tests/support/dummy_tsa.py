"""pyHanko's in-process DummyTimeStamper, as the tests' time-stamp authority.

asn1crypto registers the 'tst_info' content type when `asn1crypto.tsp` is imported, but only in the
OID -> name map: if `cms.ContentType`'s name -> OID map was already built (any CMS signature made earlier in
the process, e.g. a signed PDF), a TSA building a token by name fails ("invalid literal for int() with base
10: 'tst_info'"). Only a TSA builds tokens by name; RadStation parses the tokens it receives by OID."""

from __future__ import annotations


def dummy_time_stamper(tsa_cert_der: bytes, tsa_key_pkcs8_der: bytes, embed_der: tuple[bytes, ...] = ()):
    """A DummyTimeStamper signing with this certificate and key (DER), embedding `embed_der` certificates."""
    from asn1crypto import cms, keys, tsp  # noqa: F401 - tsp registers 'tst_info'
    from asn1crypto import x509 as a_x509
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

    if cms.ContentType._reverse_map is not None:  # built before tsp was imported: add what tsp registered
        cms.ContentType._reverse_map.setdefault("tst_info", "1.2.840.113549.1.9.16.1.4")
    return DummyTimeStamper(tsa_cert=a_x509.Certificate.load(tsa_cert_der),
                            tsa_key=keys.PrivateKeyInfo.load(tsa_key_pkcs8_der),
                            certs_to_embed=[a_x509.Certificate.load(d) for d in embed_der])
