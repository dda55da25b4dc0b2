# SPDX-License-Identifier: GPL-3.0-or-later
"""Certificates made on the fly for tests: CAs, intermediates and leaves (ECDSA P-256)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

NOW = datetime.now(timezone.utc)


def name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pyfleet test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def key():
    return ec.generate_private_key(ec.SECP256R1())


def cert(subject, key, issuer=None, issuer_key=None, ca=False, san=None, ocsp=None,
         not_before=NOW - timedelta(days=1), not_after=NOW + timedelta(days=90)):
    builder = (x509.CertificateBuilder()
               .subject_name(name(subject))
               .issuer_name(name(issuer or subject))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before)
               .not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if ocsp:
        builder = builder.add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp))]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def pem(*certs):
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certs)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
