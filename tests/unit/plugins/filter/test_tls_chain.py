# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_chain_check: key, validity, names, chain order and completeness, trust anchor."""

from __future__ import annotations

import ipaddress
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.pyfleet.deploy.plugins.filter.tls_chain import FilterModule, tls_chain_check

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # tests/, for pki.py

from pki import NOW, cert as _cert, key as _key, key_pem as _key_pem, pem as _pem  # noqa: E402

NAMES = ["app.example.test", "www.example.test", "192.0.2.1"]
OCSP = "http://ocsp.example.test/r1"


LEAF_SAN = [x509.DNSName("app.example.test"), x509.DNSName("*.example.test"),
            x509.IPAddress(ipaddress.ip_address("192.0.2.1"))]


@pytest.fixture(scope="module")
def pki():
    root_key, inter_key, leaf_key = _key(), _key(), _key()
    root = _cert("Test Root", root_key, ca=True)
    inter = _cert("Test Intermediate", inter_key, "Test Root", root_key, ca=True)
    leaf = _cert("app.example.test", leaf_key, "Test Intermediate", inter_key, san=LEAF_SAN, ocsp=OCSP)
    return {"root": root, "inter": inter, "leaf": leaf, "leaf_key": leaf_key, "inter_key": inter_key}


def _dump(result):
    """Everything the filter returned, as one string."""
    return repr(result)


def test_filter_is_registered():
    assert FilterModule().filters()["tls_chain_check"] is tls_chain_check


def test_good_chain_has_no_problems_and_finds_the_trusted_root(pki):
    result = tls_chain_check(_pem(pki["leaf"], pki["inter"]), _key_pem(pki["leaf_key"]), _pem(pki["root"]), NAMES)
    assert result["problems"] == []
    assert result["subject"] == "CN=app.example.test,O=pyfleet test"
    assert result["issuer"] == "CN=Test Intermediate,O=pyfleet test"
    assert result["ocsp_uri"] == OCSP
    assert result["anchor_pem"] == _pem(pki["root"])
    assert result["chain_pem"] == _pem(pki["inter"])
    assert result["not_after"] == pki["leaf"].not_valid_after_utc.isoformat()
    assert int(result["serial"], 16) == pki["leaf"].serial_number and len(result["serial"]) % 2 == 0


def test_root_in_the_file_is_the_anchor_without_a_trust_store(pki):
    result = tls_chain_check(_pem(pki["leaf"], pki["inter"], pki["root"]), _key_pem(pki["leaf_key"]), "", NAMES)
    assert result["problems"] == []
    assert result["anchor_pem"] == _pem(pki["root"])
    assert result["chain_pem"] == _pem(pki["inter"], pki["root"])


def test_missing_intermediate_is_an_incomplete_chain(pki):
    result = tls_chain_check(_pem(pki["leaf"]), _key_pem(pki["leaf_key"]), _pem(pki["root"]), NAMES)
    assert len(result["problems"]) == 1
    problem = result["problems"][0]
    assert "incomplete" in problem
    assert ("CN=app.example.test,O=pyfleet test is issued by CN=Test Intermediate,O=pyfleet test, "
            "which is neither in the chain nor trusted") in problem
    assert "append the intermediate certificate(s) to the certificate file" in problem
    assert result["anchor_pem"] == "" and result["chain_pem"] == ""


def test_chain_without_a_trust_store_says_so(pki):
    result = tls_chain_check(_pem(pki["leaf"], pki["inter"]), _key_pem(pki["leaf_key"]), "", NAMES)
    assert len(result["problems"]) == 1
    assert "CN=Test Intermediate,O=pyfleet test is issued by CN=Test Root,O=pyfleet test" in result["problems"][0]
    assert "no trusted root certificates were given" in result["problems"][0]


def test_wrong_key_does_not_belong_to_the_certificate(pki):
    result = tls_chain_check(_pem(pki["leaf"], pki["inter"]), _key_pem(_key()), _pem(pki["root"]), NAMES)
    assert result["problems"] == [
        "the private key does not belong to the certificate CN=app.example.test,O=pyfleet test"]


def test_unparsable_and_encrypted_keys_are_problems(pki):
    encrypted = pki["leaf_key"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.BestAvailableEncryption(b"secret")).decode()
    for key in ("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", encrypted, ""):
        problems = tls_chain_check(_pem(pki["leaf"], pki["inter"]), key, _pem(pki["root"]), NAMES)["problems"]
        assert len(problems) == 1 and "private key" in problems[0]
        assert "not a key" not in problems[0]


def test_expired_leaf(pki):
    leaf = _cert("old.example.test", pki["leaf_key"], "Test Intermediate", pki["inter_key"], san=LEAF_SAN,
                 not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=10))
    result = tls_chain_check(_pem(leaf, pki["inter"]), _key_pem(pki["leaf_key"]), _pem(pki["root"]), NAMES)
    assert len(result["problems"]) == 1
    assert result["problems"][0].startswith("the certificate CN=old.example.test,O=pyfleet test expired on ")


def test_leaf_not_valid_yet(pki):
    leaf = _cert("new.example.test", pki["leaf_key"], "Test Intermediate", pki["inter_key"], san=LEAF_SAN,
                 not_before=NOW + timedelta(days=2), not_after=NOW + timedelta(days=90))
    result = tls_chain_check(_pem(leaf, pki["inter"]), _key_pem(pki["leaf_key"]), _pem(pki["root"]), NAMES)
    assert len(result["problems"]) == 1 and "not valid yet" in result["problems"][0]


def test_names_not_covered_by_the_san(pki):
    names = ["APP.example.test", "other.test", "a.b.example.test", "example.test", "192.0.2.1", "192.0.2.2"]
    result = tls_chain_check(_pem(pki["leaf"], pki["inter"]), _key_pem(pki["leaf_key"]), _pem(pki["root"]), names)
    assert len(result["problems"]) == 1
    problem = result["problems"][0]
    assert "CN=app.example.test,O=pyfleet test does not cover other.test, a.b.example.test, example.test, 192.0.2.2;" in problem
    assert problem.endswith("its subjectAltName lists: app.example.test, *.example.test, 192.0.2.1")


@pytest.mark.parametrize(("names", "ok"), [
    (["*.example.test"], True),
    (["*.other.test"], False),
    ([".example.test"], False),
    (["app.example.test."], True),
])
def test_nginx_wildcard_server_names(pki, names, ok):
    result = tls_chain_check(_pem(pki["leaf"], pki["inter"]), _key_pem(pki["leaf_key"]), _pem(pki["root"]), names)
    assert (result["problems"] == []) is ok


def test_wrong_order_intermediate_first(pki):
    result = tls_chain_check(_pem(pki["inter"], pki["leaf"]), _key_pem(pki["leaf_key"]), _pem(pki["root"]), NAMES)
    problems = result["problems"]
    assert any("out of order" in p and "CN=Test Intermediate,O=pyfleet test" in p for p in problems)
    assert any("belongs to CN=app.example.test,O=pyfleet test, certificate 2" in p for p in problems)
    # The intermediate is the first certificate, so it is also reported as a CA; but not as an incomplete chain.
    assert any("is a CA certificate" in p for p in problems)
    assert not any("incomplete" in p for p in problems)


def test_self_signed_leaf_is_its_own_anchor():
    key = _key()
    leaf = _cert("app.example.test", key, san=LEAF_SAN)
    result = tls_chain_check(_pem(leaf), _key_pem(key), "", ["app.example.test", "192.0.2.1"])
    assert result["problems"] == []
    assert result["anchor_pem"] == _pem(leaf)
    assert result["chain_pem"] == "" and result["ocsp_uri"] == ""


def test_ca_leaf_is_a_problem():
    key = _key()
    leaf = _cert("app.example.test", key, ca=True, san=LEAF_SAN)
    problems = tls_chain_check(_pem(leaf), _key_pem(key), "", ["app.example.test"])["problems"]
    assert problems == ["the certificate CN=app.example.test,O=pyfleet test is a CA certificate "
                        "(basicConstraints CA:TRUE), not a server certificate"]


def test_forged_issuer_name_is_not_signed(pki):
    other_key = _key()
    forged = _cert("app.example.test", pki["leaf_key"], "Test Intermediate", other_key, san=LEAF_SAN)
    problems = tls_chain_check(_pem(forged, pki["inter"]), _key_pem(pki["leaf_key"]), _pem(pki["root"]), NAMES)["problems"]
    assert len(problems) == 1 and "does not verify" in problems[0]


def test_garbage_blocks_in_the_trust_store_are_ignored(pki):
    garbage = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    trust = "# comment\n" + garbage + _pem(_cert("Unrelated Root", _key(), ca=True)) + "junk\n" + _pem(pki["root"]) + garbage
    result = tls_chain_check(_pem(pki["leaf"], pki["inter"]), _key_pem(pki["leaf_key"]), trust, NAMES)
    assert result["problems"] == []
    assert result["anchor_pem"] == _pem(pki["root"])


def test_no_certificate_at_all(pki):
    result = tls_chain_check("nothing here", _key_pem(pki["leaf_key"]), "", NAMES)
    assert result["problems"] == ["the certificate file holds no certificate"]
    assert result["subject"] == "" and result["anchor_pem"] == ""


def test_unparsable_block_in_the_certificate_file(pki):
    garbage = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n"
    problems = tls_chain_check(_pem(pki["leaf"], pki["inter"]) + garbage, _key_pem(pki["leaf_key"]),
                               _pem(pki["root"]), NAMES)["problems"]
    assert problems == ["1 certificate block(s) in the certificate file cannot be parsed"]


class _VaultLike(str):
    """Stands in for a vault-decrypted string subclass."""


def test_key_text_never_appears_in_the_result(pki):
    key_pem = _key_pem(pki["leaf_key"])
    body = "".join(key_pem.splitlines()[1:-1])
    cases = [
        (_pem(pki["leaf"], pki["inter"]), key_pem),
        (_pem(pki["leaf"]), _VaultLike(key_pem)),
        (_pem(pki["inter"], pki["leaf"]), key_pem),
        (_pem(pki["leaf"]), key_pem.replace("A", "B", 5)),
        ("", key_pem),
    ]
    for cert_pem, key in cases:
        dumped = _dump(tls_chain_check(cert_pem, key, _pem(pki["root"]), NAMES + ["other.test"]))
        assert "PRIVATE KEY" not in dumped
        assert body not in dumped
        for line in key_pem.splitlines()[1:-1]:
            assert line not in dumped


def test_vault_subclass_key_is_accepted(pki):
    result = tls_chain_check(_pem(pki["leaf"], pki["inter"]), _VaultLike(_key_pem(pki["leaf_key"])),
                             _pem(pki["root"]), NAMES)
    assert result["problems"] == []


@pytest.mark.parametrize(("args", "what"), [
    ((None, "key", "", []), "certificate"),
    (("cert", {"key": "-----BEGIN PRIVATE KEY-----secret"}, "", []), "private key"),
    (("cert", "key", 42, []), "trusted"),
    (("cert", "key", "", "app.example.test"), "server_names"),
    (("cert", "key", "", {"app.example.test": 1}), "server_names"),
])
def test_wrong_input_types_raise(args, what):
    with pytest.raises(AnsibleFilterError, match=what) as error:
        tls_chain_check(*args)
    assert "secret" not in str(error.value)
