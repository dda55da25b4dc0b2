# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers
"""Check the certificate chain, key and names nginx will serve."""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timezone

from ansible.errors import AnsibleFilterError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID
except ImportError:  # pragma: no cover - reported when the filter is used
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

# Vault values are not always str subclasses (ansible-core 2.19 EncryptedString,
# older AnsibleVaultEncryptedUnicode); str() gives their plaintext.
_VAULT_TYPES = []
try:
    from ansible.parsing.vault import EncryptedString
    _VAULT_TYPES.append(EncryptedString)
except ImportError:  # pragma: no cover - depends on ansible-core version
    pass
try:
    from ansible.parsing.yaml.objects import AnsibleVaultEncryptedUnicode
    _VAULT_TYPES.append(AnsibleVaultEncryptedUnicode)
except ImportError:  # pragma: no cover - depends on ansible-core version
    pass
_VAULT_TYPES = tuple(_VAULT_TYPES)

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.DOTALL)


def _text(value, what, allow_none=False):
    """``value`` as plain text; never echoes the value itself (it may be a key)."""
    if value is None and allow_none:
        return ""
    if isinstance(value, str) or (_VAULT_TYPES and isinstance(value, _VAULT_TYPES)):
        return str(value).replace("\r\n", "\n")
    raise AnsibleFilterError(f"tls_chain_check: {what} must be PEM text (a string), got {type(value).__name__}")


def _certificates(text):
    """Parsed certificates and PEM blocks, in order, plus the number of blocks that did not parse."""
    parsed, bad = [], 0
    for block in _PEM_CERT.findall(text):
        try:
            parsed.append(x509.load_pem_x509_certificate(block.encode("utf-8")))
        except Exception:  # noqa: BLE001 - any unparsable block counts the same
            bad += 1
    return parsed, bad


def _name(cert_name):
    text = cert_name.rfc4514_string()
    return text if text else "<empty name>"


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _serial(number):
    """Upper-case hex of even length, as ``openssl x509 -serial`` prints it."""
    text = "%X" % number
    return text if len(text) % 2 == 0 else "0" + text


def _spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _signed_by(cert, issuer):
    """True when ``issuer`` (name and key) directly issued ``cert``."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except Exception:  # noqa: BLE001 - ValueError, TypeError, InvalidSignature all mean no
        return False
    return True


def _extension(cert, oid):
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except (x509.ExtensionNotFound, ValueError):
        # ValueError: the extensions cannot be parsed; treated as absent.
        return None


def _dns(name):
    name = name.strip().lower().rstrip(".")
    try:
        return name.encode("idna").decode("ascii") if not name.isascii() else name
    except UnicodeError:
        return name


def _ip(name):
    try:
        return ipaddress.ip_address(name.strip().strip("[]"))
    except ValueError:
        return None


def _dns_covered(name, sans):
    if name in sans:
        return True
    if name.startswith("*."):
        # An nginx wildcard server name is only covered by the same wildcard.
        return False
    head, dot, rest = name.partition(".")
    return bool(head and dot and rest) and ("*." + rest) in sans


def _uncovered(server_names, dns_sans, ip_sans):
    missing = []
    for raw in server_names:
        name = str(raw).strip()
        if not name:
            continue
        address = _ip(name)
        if address is not None:
            if address not in ip_sans:
                missing.append(name)
            continue
        dns = _dns(name)
        # nginx ".example.com" means example.com and *.example.com.
        wanted = [dns[1:], "*" + dns] if dns.startswith(".") else [dns]
        if not all(_dns_covered(item, dns_sans) for item in wanted):
            missing.append(name)
    return missing


def _chain_problems(chain, trusted):
    """Problems with the order and completeness of ``chain``, and the anchor found."""
    problems = []
    in_order = True
    for cert, nxt in zip(chain, chain[1:]):
        if cert.issuer != nxt.subject:
            in_order = False
            problems.append(
                "the certificate chain is out of order: %s is issued by %s, but the next certificate in the file is %s; "
                "put the server certificate first, then each issuer in turn"
                % (_name(cert.subject), _name(cert.issuer), _name(nxt.subject)))
        elif not _signed_by(cert, nxt):
            problems.append(
                "the signature of %s does not verify with the key of the next certificate %s, although its issuer name matches"
                % (_name(cert.subject), _name(nxt.subject)))

    if in_order:
        tops = [chain[-1]]
    else:
        # The anchor is still looked for above each certificate whose issuer is not in the file.
        subjects = [cert.subject for cert in chain]
        tops = [cert for cert in chain if cert.issuer == cert.subject or cert.issuer not in subjects]

    anchor = None
    unanchored = []
    for top in tops:
        if _signed_by(top, top):
            anchor = top
            break
        found = next((root for root in trusted if _signed_by(top, root)), None)
        if found is not None:
            anchor = found
            break
        unanchored.append(top)

    if anchor is None:
        for top in unanchored:
            message = ("the certificate chain is incomplete: %s is issued by %s, which is neither in the chain nor trusted; "
                       "append the intermediate certificate(s) to the certificate file"
                       % (_name(top.subject), _name(top.issuer)))
            if not trusted:
                message += " (no trusted root certificates were given to check against)"
            problems.append(message)
    return problems, anchor


def tls_chain_check(cert_pem, key_pem, trust_pem="", server_names=None):
    """Check a PEM certificate chain against its key, the trusted roots and the names served."""
    if not HAS_CRYPTOGRAPHY:
        raise AnsibleFilterError("tls_chain_check requires the Python 'cryptography' library on the controller")
    cert_text = _text(cert_pem, "the certificate")
    key_text = _text(key_pem, "the private key")
    trust_text = _text(trust_pem, "the trusted certificates", allow_none=True)
    if server_names is None:
        server_names = []
    if isinstance(server_names, (str, bytes)) or not isinstance(server_names, (list, tuple)):
        raise AnsibleFilterError(
            f"tls_chain_check: server_names must be a list of names, got {type(server_names).__name__}")

    result = {"problems": [], "subject": "", "issuer": "", "not_after": "", "serial": "",
              "ocsp_uri": "", "anchor_pem": "", "chain_pem": ""}
    problems = result["problems"]

    chain, bad_blocks = _certificates(cert_text)
    if bad_blocks:
        problems.append("%d certificate block(s) in the certificate file cannot be parsed" % bad_blocks)

    private_key = None
    if not key_text.strip():
        problems.append("no private key was given")
    else:
        try:
            private_key = serialization.load_pem_private_key(key_text.encode("utf-8"), password=None)
        except Exception:  # noqa: BLE001 - the exception text is not echoed, it could quote the input
            problems.append("the private key cannot be parsed; it must be an unencrypted PEM private key")

    if not chain:
        problems.append("the certificate file holds no certificate")
        return result

    leaf = chain[0]
    subject = _name(leaf.subject)
    result.update(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_after=leaf.not_valid_after_utc.isoformat(),
        serial=_serial(leaf.serial_number),
        chain_pem="".join(_pem(cert) for cert in chain[1:]),
    )

    # 1. The key belongs to the leaf.
    if private_key is not None:
        key_spki = _spki(private_key.public_key())
        if key_spki != _spki(leaf.public_key()):
            problems.append("the private key does not belong to the certificate %s" % subject)
            owner = next((i for i, cert in enumerate(chain[1:], 2) if _spki(cert.public_key()) == key_spki), None)
            if owner is not None:
                problems.append("the private key belongs to %s, certificate %d in the file; the server certificate must come first"
                                % (_name(chain[owner - 1].subject), owner))

    # 2. The leaf is valid now.
    now = datetime.now(timezone.utc)
    if now < leaf.not_valid_before_utc:
        problems.append("the certificate %s is not valid yet: it is valid from %s"
                        % (subject, leaf.not_valid_before_utc.isoformat()))
    if now > leaf.not_valid_after_utc:
        problems.append("the certificate %s expired on %s" % (subject, leaf.not_valid_after_utc.isoformat()))

    # 3. Every served name is in the subjectAltName.
    san = _extension(leaf, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    dns_sans = [_dns(name) for name in san.get_values_for_type(x509.DNSName)] if san is not None else []
    ip_sans = san.get_values_for_type(x509.IPAddress) if san is not None else []
    missing = _uncovered(server_names, dns_sans, ip_sans)
    if missing:
        listed = ", ".join(dns_sans + [str(address) for address in ip_sans]) or "none"
        problems.append("the certificate %s does not cover %s; its subjectAltName lists: %s"
                        % (subject, ", ".join(missing), listed))

    # 4. Order and completeness of the chain up to a self-signed or trusted anchor.
    trusted, _unparsed = _certificates(trust_text)
    chain_problems, anchor = _chain_problems(chain, trusted)
    problems.extend(chain_problems)
    if anchor is not None:
        result["anchor_pem"] = _pem(anchor)

    # 5. The leaf is not a CA.
    constraints = _extension(leaf, ExtensionOID.BASIC_CONSTRAINTS)
    if constraints is not None and constraints.ca:
        problems.append("the certificate %s is a CA certificate (basicConstraints CA:TRUE), not a server certificate" % subject)

    aia = _extension(leaf, ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    if aia is not None:
        result["ocsp_uri"] = next(
            (desc.access_location.value for desc in aia
             if desc.access_method == AuthorityInformationAccessOID.OCSP
             and isinstance(desc.access_location, x509.UniformResourceIdentifier)), "")
    return result


class FilterModule:
    """pyfleet.deploy TLS filters."""

    def filters(self):
        return {"tls_chain_check": tls_chain_check}
