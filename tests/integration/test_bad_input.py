# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input stops pyfleet.deploy.site on the controller, before any host is touched.

The inventory host is a container that does not exist: any task that reached
the host would end UNREACHABLE. Each bad variable must instead fail in the
validation play with a message that names the variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

import pki  # tests/pki.py

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fastapi"
COLLECTIONS = ROOT / ".cache" / "collections"

GOOD = {
    "app_name": "shop",
    "app_source": {"type": "dir", "path": str(EXAMPLE / "app")},
    "app_requirements": str(EXAMPLE / "requirements.txt"),
    "gunicorn_app": "main:app",
    "tls_mode": "selfsigned",
}


def run_site(tmp_path: Path, playbook: str = "site", extra_args: tuple = (), **overrides) -> subprocess.CompletedProcess:
    variables = {**GOOD, **overrides}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({
        "app_servers": {"hosts": {"pyfleet-absent-host": {
            "ansible_connection": "community.docker.docker",
            "ansible_python_interpreter": "/usr/bin/python3",
        }}}
    }))
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    env = dict(os.environ,
               ANSIBLE_COLLECTIONS_PATH=f"{COLLECTIONS}:{os.environ.get('ANSIBLE_COLLECTIONS_PATH', '')}",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0")
    bindir = Path(sys.executable).parent
    return subprocess.run(
        [str(bindir / "ansible-playbook"), "-i", str(inventory), "-e", f"@{extra}", *extra_args,
         str(ROOT / "playbooks" / f"{playbook}.yml")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )


def test_good_input_passes_validation_and_only_then_reaches_the_host(tmp_path):
    result = run_site(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "UNREACHABLE" in output, output[-3000:]
    assert "PLAY [Deploy the app]" in output


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"app_name": "my shop"}, "app_name must be a slug"),
        ({"gunicorn_workers": 0}, "gunicorn_workers must be 'auto' or an integer of at least 1"),
        ({"tls_mode": "letsencrypt"}, "value of tls_mode must be one of: selfsigned, provided, acme, off, got: letsencrypt"),
        ({"app_requirements": "/nonexistent/requirements.txt"}, "app_requirements '/nonexistent/requirements.txt'"),
        ({"gunicorn_app": "main"}, "gunicorn_app must be 'module:variable'"),
        ({"gunicorn_app": "main:app; rm -rf /"}, "gunicorn_app must be 'module:variable'"),
        ({"tls_mode": "provided", "tls_cert": "/etc/ssl/certs/ca-certificates.crt"}, "missing: tls_key"),
        ({"app_source": {"type": "dir", "path": "/nonexistent/app"}}, "app_source.path '/nonexistent/app'"),
        ({"app_source": {"type": "svn", "path": "/tmp"}}, "got: svn found in app_source"),
        ({"nginx_client_max_body_size": "ten megs"}, "nginx_client_max_body_size a size"),
        ({"app_env": {"BAD NAME": "x"}}, "app_env/app_secrets keys"),
        ({"tls_mode": "acme", "nginx_server_names": ["*.shop.example"]}, "(rejected: ['*.shop.example'])"),
        ({"tls_mode": "acme", "tls_acme_directory": "http://acme.example/dir"}, "needs an https:// tls_acme_directory"),
        ({"nginx_hsts": {"enabled": True, "max_age": 63072000, "include_subdomains": False, "preload": True}},
         "nginx_hsts.preload needs enabled, include_subdomains"),
    ],
    ids=["app-name-spaces", "zero-workers", "unknown-tls-mode", "missing-lockfile",
         "malformed-gunicorn-app", "injected-gunicorn-app", "provided-without-key",
         "missing-source", "unknown-source-type", "bad-body-size", "bad-env-name",
         "acme-wildcard", "acme-plain-http-directory", "hsts-preload-without-subdomains"],
)
def test_bad_input_fails_before_any_host_is_touched(tmp_path, overrides, expected):
    result = run_site(tmp_path, **overrides)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output, output[-3000:]
    assert "UNREACHABLE" not in output, "a host was contacted before validation failed"
    assert "PLAY [Deploy the app]" not in output


def test_unhashed_lockfile_is_refused(tmp_path):
    lock = tmp_path / "requirements.txt"
    lock.write_text("fastapi==0.165.0\n")
    result = run_site(tmp_path, app_requirements=str(lock))
    output = result.stdout + result.stderr
    assert "carry no --hash: fastapi==0.165.0" in output, output[-3000:]
    assert "UNREACHABLE" not in output


@pytest.mark.parametrize(
    ("playbook", "overrides", "expected"),
    [
        ("rolling_reload", {"rollout_reload": "usr2"}, "value of rollout_reload must be one of: auto, hup, restart, got: usr2"),
        ("rolling_reload", {"rollout_batches": [1, "half"]}, "rollout_batches must be a list of host counts"),
        ("rollback", {"rollout_health_path": "health"}, "rollout_health_path must start with '/'"),
        ("site", {"nginx_upstream_keepalive_timeout": 90},
         "nginx_upstream_keepalive_timeout (90) must be at least 1 and shorter than gunicorn_keepalive"),
    ],
    ids=["unknown-reload-method", "bad-batches", "relative-health-path", "keepalive-order"],
)
def test_bad_rollout_input_fails_before_any_host_is_touched(tmp_path, playbook, overrides, expected):
    result = run_site(tmp_path, playbook=playbook, **overrides)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert expected in output, output[-3000:]
    assert "UNREACHABLE" not in output, "a host was contacted before validation failed"


def test_an_unreachable_host_refuses_the_rollout_before_any_change(tmp_path):
    result = run_site(tmp_path, playbook="rolling_reload")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "PLAY [Lock the fleet]" in output, output[-3000:]
    assert "UNREACHABLE" in output
    # The later plays find no host left: nothing is staged, switched or reloaded.
    assert "TASK [Stage and import the release]" not in output, output[-3000:]
    assert "TASK [Ship, verify and if needed roll back this host]" not in output


@pytest.fixture(scope="module")
def provided_pki():
    """A root, an intermediate and a leaf for shop.example, as a CA would issue them."""
    root_key, inter_key, leaf_key = pki.key(), pki.key(), pki.key()
    root = pki.cert("Shop Root", root_key, ca=True)
    inter = pki.cert("Shop Intermediate", inter_key, "Shop Root", root_key, ca=True)
    leaf = pki.cert("shop.example", leaf_key, "Shop Intermediate", inter_key,
                    san=[x509.DNSName("shop.example")])
    return {"root": pki.pem(root), "inter": pki.pem(inter), "leaf": pki.pem(leaf),
            "key": pki.key_pem(leaf_key), "other_key": pki.key_pem(pki.key())}


def _provided(tmp_path, provided_pki, cert, key, names=("shop.example",)):
    trust = tmp_path / "roots.pem"
    trust.write_text(provided_pki["root"])
    return {"tls_mode": "provided", "tls_cert": cert, "tls_key": key,
            "tls_trust_bundle": str(trust), "nginx_server_names": list(names)}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong-key", "the private key does not belong to the certificate CN=shop.example"),
        ("missing-intermediate", "CN=shop.example,O=pyfleet test is issued by CN=Shop Intermediate,O=pyfleet test, "
                                 "which is neither in the chain nor trusted"),
        ("uncovered-name", "www.shop.example"),
    ],
)
def test_a_bad_provided_certificate_is_rejected_before_any_host_changes(tmp_path, provided_pki, case, expected):
    chain = provided_pki["leaf"] + provided_pki["inter"]
    variables = {
        "wrong-key": _provided(tmp_path, provided_pki, chain, provided_pki["other_key"]),
        "missing-intermediate": _provided(tmp_path, provided_pki, provided_pki["leaf"], provided_pki["key"]),
        "uncovered-name": _provided(tmp_path, provided_pki, chain, provided_pki["key"],
                                    names=("shop.example", "www.shop.example")),
    }[case]
    result = run_site(tmp_path, **variables)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "The provided certificate (CN=shop.example,O=pyfleet test" in output, output[-3000:]
    assert expected in output, output[-3000:]
    assert "UNREACHABLE" not in output, "a host was contacted before validation failed"
    assert provided_pki["key"].splitlines()[1] not in output, "key material reached Ansible's output"


def test_a_vaulted_provided_key_passes_the_checks(tmp_path, provided_pki):
    password = tmp_path / "vault-pass"
    password.write_text("pyfleet-test-vault\n")
    bindir = Path(sys.executable).parent
    vaulted = subprocess.run(
        [str(bindir / "ansible-vault"), "encrypt_string", "--vault-password-file", str(password),
         "--stdin-name", "tls_key"],
        input=provided_pki["key"], capture_output=True, text=True, check=True,
    ).stdout
    vault_vars = tmp_path / "vault.yml"
    vault_vars.write_text(vaulted)
    variables = _provided(tmp_path, provided_pki, provided_pki["leaf"] + provided_pki["inter"], "")
    del variables["tls_key"]
    result = run_site(tmp_path, extra_args=("-e", f"@{vault_vars}", "--vault-password-file", str(password)),
                      **variables)
    output = result.stdout + result.stderr
    # Validation passed with the decrypted key; only then was the (absent) host contacted.
    assert "PLAY [Deploy the app]" in output, output[-3000:]
    assert "UNREACHABLE" in output
    assert "The provided certificate" not in output
    assert provided_pki["key"].splitlines()[1] not in output
