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


def run_site(tmp_path: Path, playbook: str = "site", **overrides) -> subprocess.CompletedProcess:
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
        [str(bindir / "ansible-playbook"), "-i", str(inventory), "-e", f"@{extra}",
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
        ({"tls_mode": "letsencrypt"}, "value of tls_mode must be one of: selfsigned, provided, off, got: letsencrypt"),
        ({"app_requirements": "/nonexistent/requirements.txt"}, "app_requirements '/nonexistent/requirements.txt'"),
        ({"gunicorn_app": "main"}, "gunicorn_app must be 'module:variable'"),
        ({"gunicorn_app": "main:app; rm -rf /"}, "gunicorn_app must be 'module:variable'"),
        ({"tls_mode": "provided", "tls_cert": "/etc/ssl/certs/ca-certificates.crt"}, "missing: tls_key"),
        ({"app_source": {"type": "dir", "path": "/nonexistent/app"}}, "app_source.path '/nonexistent/app'"),
        ({"app_source": {"type": "svn", "path": "/tmp"}}, "got: svn found in app_source"),
        ({"nginx_client_max_body_size": "ten megs"}, "nginx_client_max_body_size a size"),
        ({"app_env": {"BAD NAME": "x"}}, "app_env/app_secrets keys"),
    ],
    ids=["app-name-spaces", "zero-workers", "unknown-tls-mode", "missing-lockfile",
         "malformed-gunicorn-app", "injected-gunicorn-app", "provided-without-key",
         "missing-source", "unknown-source-type", "bad-body-size", "bad-env-name"],
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
