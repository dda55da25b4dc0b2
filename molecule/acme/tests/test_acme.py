# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""tls_mode acme against pebble, and a provided certificate whose CA answers OCSP.

acme-app's certificate comes from pebble over HTTP-01; the tests check what
nginx serves, the unattended renewal (forced through the renewal service, as
the timer would run it), a renewal while pebble is down, testssl.sh's verdict,
and, on acme-provided, the stapled OCSP answer.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

ACME_NAME, PROVIDED_NAME = "app.acme.test", "shop.acme.test"
ROOT_FILE = "/tmp/pebble-root.pem"
FORCE_DROPIN = "/run/systemd/system/certbot.service.d/force.conf"


@pytest.fixture(scope="module")
def ca(hosts):
    return hosts("acme-ca")


@pytest.fixture(scope="module")
def app(hosts):
    return hosts("acme-app")


@pytest.fixture(scope="module")
def pebble(ca, app, work):
    """pebble's root and intermediate (they change each time pebble starts), given to the hosts that verify."""
    fetched = {}
    for kind in ("roots", "intermediates"):
        fetched[kind] = ca.check_output("curl --silent --show-error --fail --cacert /etc/pebble/cert.pem "
                                        "https://pebble.acme.test:15000/%s/0" % kind)
    for host in (ca, app):
        host.run("printf '%%s\\n' %s > " + ROOT_FILE, fetched["roots"])
    root = os.path.join(work, "pebble-root.pem")  # for the https fixture, which trusts a controller file
    with open(root, "w", encoding="utf-8") as handle:
        handle.write(fetched["roots"] + "\n")
    return {"root": root, "intermediate": x509.load_pem_x509_certificate(fetched["intermediates"].encode())}


def served_certificate(host, name, ca_file):
    """The leaf certificate nginx serves for a name, verified against ca_file."""
    out = host.check_output("openssl s_client -connect 127.0.0.1:443 -servername %s -CAfile %s -verify_return_error "
                            "</dev/null 2>/dev/null | openssl x509" % (name, ca_file))
    return x509.load_pem_x509_certificate(out.encode())


def test_the_app_answers_over_the_acme_certificate_with_hsts(app, pebble, https):
    answer = https(app, "/health", ACME_NAME, ca=pebble["root"])
    assert answer.json()["status"] == "ok"
    assert answer.header("strict-transport-security").startswith("max-age=63072000")


def test_pebbles_intermediate_issued_the_served_certificate_for_this_name(app, pebble):
    served = served_certificate(app, ACME_NAME, ROOT_FILE)
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert served.issuer == pebble["intermediate"].subject
    assert names == [ACME_NAME]
    assert isinstance(served.public_key(), ec.EllipticCurvePublicKey)


def test_renewal_is_unattended_by_webroot_and_reloads_nginx_only_on_success(app):
    timer = app.service("certbot.timer")
    conf = app.file("/etc/letsencrypt/renewal/demo.conf").content_string
    assert (timer.is_running, timer.is_enabled) == (True, True)
    assert "authenticator = webroot" in conf
    assert "renew_hook = nginx -t -q && systemctl reload nginx" in conf
    assert "renew_before_expiry = 30 days" in conf
    assert "server = https://pebble.acme.test:14000/dir" in conf


@pytest.fixture(scope="module")
def testssl(ca, pebble):
    ca.run("rm -f /tmp/testssl.json")
    ca.run("testssl --quiet --color 0 --warnings off --add-ca %s --jsonfile /tmp/testssl.json --protocols --std "
           "--headers --server-defaults %s" % (ROOT_FILE, ACME_NAME))
    findings = json.loads(ca.file("/tmp/testssl.json").content_string)
    return findings, {finding["id"]: finding["finding"] for finding in findings}


@pytest.mark.parametrize(("finding", "expected"), [
    ("SSLv2", "not offered"), ("SSLv3", "not offered"), ("TLS1", "not offered"), ("TLS1_1", "not offered"),
    ("TLS1_2", "^offered"), ("TLS1_3", "^offered"),
    ("cipherlist_NULL", "not offered"), ("cipherlist_aNULL", "not offered"), ("cipherlist_EXPORT", "not offered"),
    ("cipherlist_LOW", "not offered"), ("cipherlist_3DES_IDEA", "not offered"), ("cipherlist_AVERAGE", "not offered"),
    ("cipherlist_STRONG", "^offered"), ("ALPN_HTTP2", "h2"),
    ("HSTS_time", "63072000"), ("banner_server", "^nginx$"), ("cert_trust", "^Ok via SAN"),
    ("cert_chain_of_trust", "^passed"),
])
def test_testssl_finds(testssl, finding, expected):
    assert re.search(expected, testssl[1][finding]), testssl[1].get(finding)


@pytest.mark.parametrize("protocol", ["tls1_2", "tls1_3"])
def test_a_returning_client_resumes_its_session_from_nginxs_cache_without_a_ticket_key(ca, pebble, protocol):
    """ssl_session_cache keeps sessions on the server; ssl_session_tickets off: no ticket sealed with a key.

    A TLS 1.2 client resumes by session ID and is sent no ticket. A TLS 1.3 client resumes through the
    ticket OpenSSL sends in its place, which names a session of the cache. (testssl.sh 3.0 is not asked:
    its resumption verdicts depend on whether its client read the TLS 1.3 ticket, sent after the
    handshake, before it hung up, and on one machine they came out the other way round.)
    """
    session = "/tmp/tls-session-%s.pem" % protocol
    client = ("openssl s_client -connect %s:443 -servername %s -CAfile %s -verify_return_error -%s"
              % (ACME_NAME, ACME_NAME, ROOT_FILE, protocol))
    ca.run("rm -f %s", session)
    # Input held open until the client has saved the session (at most 10 s): over TLS 1.3 that is when
    # it has read the ticket the server sends after the handshake.
    first = ca.run("(for i in $(seq 100); do [ -s %s ] && break; sleep 0.1; done; sleep 0.2) | %s -sess_out %s"
                   % (session, client, session))
    assert first.rc == 0 and "\nNew, TLSv1." in first.stdout, first.stdout + first.stderr
    second = ca.run("%s -sess_in %s </dev/null" % (client, session))
    assert "\nReused, TLSv1.%s" % protocol[-1] in second.stdout, second.stdout + second.stderr
    if protocol == "tls1_2":
        assert "TLS session ticket:" not in ca.check_output("openssl sess_id -in %s -noout -text", session)


def test_testssl_finds_nothing_high_or_critical(testssl):
    # pebble issues 5-year certificates without a CRL or OCSP URL: properties of
    # the test CA, not of this configuration.
    severe = [finding for finding in testssl[0] if finding["severity"] in ("HIGH", "CRITICAL")
              and finding["id"] not in ("cert_revocation", "cert_validityPeriod")]
    assert severe == []


@pytest.fixture(scope="module")
def renewals(app, ca, pebble, https):
    """A forced renewal through the renewal service, then one while pebble is down."""
    first = served_certificate(app, ACME_NAME, ROOT_FILE).serial_number
    nginx_before = app.check_output("systemctl show --value --property=MainPID nginx.service")
    exec_start = [line for line in app.check_output("systemctl cat certbot.service").splitlines()
                  if re.match(r"^ExecStart=.", line)][0][len("ExecStart="):]
    app.run("mkdir -p %s" % FORCE_DROPIN.rsplit("/", 1)[0])
    app.run("printf '[Service]\\nExecStart=\\nExecStart=%%s --force-renewal\\n' %s > " + FORCE_DROPIN, exec_start)
    app.run("systemctl daemon-reload")
    started = app.run("systemctl start certbot.service")
    renewed = first
    for _attempt in range(10):
        renewed = served_certificate(app, ACME_NAME, ROOT_FILE).serial_number
        if renewed != first:
            break
        time.sleep(1)
    nginx_after = app.check_output("systemctl show --value --property=MainPID nginx.service")
    ca.run("systemctl stop pebble")
    try:
        failed = app.run("systemctl start certbot.service")
        state = app.check_output("systemctl show --value --property=ActiveState certbot.service")
        after_failure = served_certificate(app, ACME_NAME, ROOT_FILE).serial_number
        body = https(app, "/health", ACME_NAME, ca=pebble["root"]).json()
    finally:
        app.run("rm -f %s && systemctl daemon-reload" % FORCE_DROPIN)
        ca.run("systemctl start pebble")
    return {"first": first, "started": started.rc, "renewed": renewed, "nginx": (nginx_before, nginx_after),
            "failed": failed.rc, "state": state, "after_failure": after_failure, "health": body}


def test_a_renewal_serves_the_new_certificate_without_restarting_nginx(renewals):
    assert renewals["started"] == 0
    assert renewals["renewed"] != renewals["first"]
    assert renewals["nginx"][0] == renewals["nginx"][1]


def test_a_renewal_while_the_acme_server_is_down_fails_visibly(renewals):
    assert renewals["failed"] != 0
    assert renewals["state"] == "failed"


def test_the_old_certificate_still_serves_after_a_failed_renewal(renewals):
    assert renewals["after_failure"] == renewals["renewed"]
    assert renewals["health"]["status"] == "ok"


@pytest.fixture(scope="module")
def provided(hosts, inventory):
    host = hosts("acme-provided")
    with open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "provided", "root.pem"), encoding="utf-8") as handle:
        host.run("printf '%%s' %s > /tmp/provided-root.pem", handle.read())
    return host


def test_the_provided_certificate_serves_verified_against_its_root(provided, https):
    root = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "provided", "root.pem")
    assert https(provided, "/health", PROVIDED_NAME, ca=root).json()["status"] == "ok"


def test_nginx_staples_a_good_ocsp_answer_from_the_cas_responder(provided):
    # nginx fetches the answer on the first handshakes: ask until it is there.
    out = ""
    for _attempt in range(15):
        out = provided.run("openssl s_client -connect 127.0.0.1:443 -servername %s -status -CAfile /tmp/provided-root.pem "
                           "-verify_return_error </dev/null 2>/dev/null" % PROVIDED_NAME).stdout
        if "Cert Status: good" in out:
            break
        time.sleep(2)
    assert "OCSP Response Status: successful" in out
    assert "Cert Status: good" in out


def test_stapling_is_off_where_the_certificate_names_no_responder(app):
    assert "ssl_stapling on" not in app.check_output("nginx -T")
