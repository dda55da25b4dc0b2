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
from collection import COLLECTIONS  # tests/collection.py

GOOD = {
    "app_name": "shop",
    "app_source": {"type": "dir", "path": str(EXAMPLE / "app")},
    "app_requirements": str(EXAMPLE / "requirements.txt"),
    "gunicorn_app": "main:app",
    "tls_mode": "selfsigned",
}


def run_site(tmp_path: Path, playbook: str = "site", extra_args: tuple = (), env_extra: dict | None = None,
             **overrides) -> subprocess.CompletedProcess:
    variables = {**GOOD, **overrides}
    for name in [name for name, value in variables.items() if value is _UNSET]:
        del variables[name]
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
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_RETRY_FILES_ENABLED="0",
               **(env_extra or {}))
    bindir = Path(sys.executable).parent
    return subprocess.run(
        [str(bindir / "ansible-playbook"), "-i", str(inventory), "-e", f"@{extra}", *extra_args,
         str(ROOT / "playbooks" / f"{playbook}.yml")],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )


_UNSET = object()


def test_good_input_passes_validation_and_only_then_reaches_the_host(tmp_path):
    result = run_site(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "UNREACHABLE" in output, output[-3000:]
    assert "PLAY [Deploy the app]" in output


# (id, playbook, variables, the one message expected). Every message names the
# variable at fault, what it holds and what was expected; nothing is converted.
SECRET = "hunter2-not-for-logs"
BAD_INPUT = [
    # app
    ("app-name-spaces", "site", {"app_name": "my shop"},
     'app_name must be a slug of lowercase letters, digits, - and _, starting with a letter, at most 32 characters; '
     'got the string "my shop".'),
    ("app-name-missing", "site", {"app_name": _UNSET}, "app_name is required: a string."),
    ("app-name-list", "site", {"app_name": ["shop"]}, 'app_name must be a string; got a list ["shop"].'),
    ("app-user-capitals", "site", {"app_user": "Shop User"},
     'app_user must be a user name (lowercase letters, digits, - and _, at most 32 characters); got the string "Shop User".'),
    ("app-root-slash", "site", {"app_root": "/"},
     'app_root must be an absolute path other than /, without spaces; got the string "/".'),
    ("app-root-relative", "site", {"app_root": "srv/shop"},
     'app_root must be an absolute path other than /, without spaces; got the string "srv/shop".'),
    ("keep-releases-zero", "site", {"app_keep_releases": 0},
     "app_keep_releases must be an integer of at least 1; got the integer 0."),
    ("keep-releases-text", "site", {"app_keep_releases": "five"},
     'app_keep_releases must be an integer; got the string "five".'),
    ("source-as-string", "site", {"app_source": str(EXAMPLE / "app")},
     "app_source must be a mapping; got the string"),
    ("source-unknown-type", "site", {"app_source": {"type": "svn", "path": "/tmp"}},
     'app_source.type must be one of dir, archive; got the string "svn".'),
    ("source-without-path", "site", {"app_source": {"type": "dir"}}, "app_source.path is required: a path (a string)."),
    ("source-misspelt-key", "site", {"app_source": {"type": "dir", "path": str(EXAMPLE / "app"), "verison": "1"}},
     'app_source has no key "verison"; expected keys: type, path, version.'),
    ("source-missing-dir", "site", {"app_source": {"type": "dir", "path": "/nonexistent/app"}},
     "app_source must be a source whose path is an existing directory on the controller; got a mapping"),
    ("source-exclude-path", "site", {"app_source_exclude": ["__pycache__", "tests/fixtures"]},
     "app_source_exclude must be a list of file or directory names or shell patterns such as node_modules or *.log, "
     'without /; got a list ["__pycache__", "tests/fixtures"].'),
    ("source-exclude-string", "site", {"app_source_exclude": "node_modules"},
     'app_source_exclude must be a list of strings; got the string "node_modules".'),
    ("lockfile-missing", "site", {"app_requirements": "/nonexistent/requirements.txt"},
     'app_requirements must be an existing lockfile on the controller; got the string "/nonexistent/requirements.txt".'),
    ("install-mode-unknown", "site", {"app_install_mode": "offline"},
     'app_install_mode must be one of index, wheelhouse; got the string "offline".'),
    ("env-as-list", "site", {"app_env": ["A=1"]}, 'app_env must be a mapping; got a list ["A=1"].'),
    ("env-bad-name", "site", {"app_env": {"BAD NAME": "x"}},
     'app_env must be a mapping whose keys are shell-style names such as DATABASE_URL; got the keys ["BAD NAME"].'),
    ("env-nested-value", "site", {"app_env": {"DB": {"host": "db"}}},
     'app_env.DB must be a string, a number or a boolean; got a mapping {"host": "db"}.'),
    ("env-multiline-value", "site", {"app_env": {"MOTD": "two\nlines"}},
     "app_env must be a mapping of one-line values (no newline)"),
    ("secret-as-list", "site", {"app_secrets": {"TOKEN": [SECRET]}},
     "app_secrets.TOKEN must be a string, a number or a boolean; got a list (value hidden)."),
    ("secret-multiline", "site", {"app_secrets": {"TOKEN": SECRET + "\nmore"}},
     "app_secrets must be a mapping of one-line values (no newline); got a mapping (value hidden)."),
    ("pip-args-as-string", "site", {"app_pip_extra_args": "--no-cache-dir"},
     'app_pip_extra_args must be a list of strings; got the string "--no-cache-dir".'),
    ("sbom-not-boolean", "site", {"app_sbom": "maybe"}, 'app_sbom must be true or false; got the string "maybe".'),
    ("release-id-path", "site", {"app_release_id": "../etc"},
     "app_release_id must be empty (computed) or 1-64 letters, digits, '.', '_' and '-'; got the string \"../etc\"."),
    ("shared-dirs-as-string", "site", {"app_shared_dirs": "media"},
     'app_shared_dirs must be a list of strings; got the string "media".'),
    ("build-as-string", "site", {"app_build": "python manage.py collectstatic"},
     'app_build must be a list of strings; got the string "python manage.py collectstatic".'),
    ("migrate-empty-step", "rolling_reload", {"app_migrate": ["python manage.py migrate", " "]},
     'app_migrate must be a list of non-empty command lines; got a list ["python manage.py migrate", " "].'),
    ("migrate-applied-without-migrate", "site", {"app_migrate_applied": "python manage.py applied"},
     'app_migrate_applied must be empty unless app_migrate is set (it runs after app_migrate); got the string '
     '"python manage.py applied".'),
    ("post-as-mapping", "rolling_reload", {"app_post": {"run": "x"}},
     'app_post must be a list of strings; got a mapping {"run": "x"}.'),
    ("phase-timeout-zero", "site", {"app_phase_timeout": 0},
     "app_phase_timeout must be an integer of at least 1 (seconds); got the integer 0."),
    ("process-bad-name", "site", {"app_processes": [{"name": "Celery Worker", "command": "celery worker"}]},
     'app_processes must be a list of processes whose names are slugs of lowercase letters, digits and -, '
     'starting with a letter; got the names ["Celery Worker"].'),
    ("process-no-command", "site", {"app_processes": [{"name": "worker"}]},
     "app_processes[0].command is required"),
    ("process-unknown-key", "site", {"app_processes": [{"name": "worker", "command": "x", "replicas": 2}]},
     'app_processes[0] has no key "replicas"'),
    ("process-count-zero", "site", {"app_processes": [{"name": "worker", "command": "x", "count": 0}]},
     "app_processes must be a list of processes, each with a count and a stop_timeout of at least 1"),
    ("timer-no-calendar", "site", {"app_timers": [{"name": "nightly", "command": "x"}]},
     "app_timers[0].on_calendar is required"),
    ("timer-name-taken", "site", {"app_processes": [{"name": "sync", "command": "x"}],
                                  "app_timers": [{"name": "sync", "command": "y", "on_calendar": "daily"}]},
     'app_timers must be names not used twice across app_processes and app_timers; got the names ["sync", "sync"].'),
    # gunicorn
    ("gunicorn-app-no-colon", "site", {"gunicorn_app": "main"},
     "gunicorn_app must be 'module:variable' or 'module:factory()', such as 'main:app' or 'mysite.asgi:application'; "
     'got the string "main".'),
    ("gunicorn-app-injected", "site", {"gunicorn_app": "main:app; rm -rf /"}, 'got the string "main:app; rm -rf /".'),
    ("zero-workers", "site", {"gunicorn_workers": 0},
     "gunicorn_workers must be 'auto' or an integer of at least 1; got the integer 0."),
    ("workers-as-word", "site", {"gunicorn_workers": "many"},
     "gunicorn_workers must be 'auto' or an integer of at least 1; got the string \"many\"."),
    ("timeout-zero", "site", {"gunicorn_timeout": 0},
     "gunicorn_timeout must be an integer of at least 1 (seconds); got the integer 0."),
    ("stream-drain-past-graceful-timeout", "site", {"gunicorn_stream_drain": 30},
     "gunicorn_stream_drain must be an integer of at least 0 and below gunicorn_graceful_timeout (30), in seconds; "
     "got the integer 30."),
    ("threads-as-list", "site", {"gunicorn_threads": [4]}, "gunicorn_threads must be an integer; got a list [4]."),
    ("server-unknown", "site", {"gunicorn_server": "hypercorn"},
     'gunicorn_server must be one of gunicorn, uvicorn; got the string "hypercorn".'),
    ("log-level-unknown", "site", {"gunicorn_log_level": "verbose"},
     'gunicorn_log_level must be one of debug, info, warning, error, critical; got the string "verbose".'),
    ("socket-outside-run", "site", {"gunicorn_socket_path": "/tmp/shop.sock"},
     'gunicorn_socket_path must be a .sock path under /run; got the string "/tmp/shop.sock".'),
    ("release-header-space", "site", {"gunicorn_release_header": "X Release"},
     "gunicorn_release_header must be an HTTP header name such as X-Release, or '' to turn it off; "
     'got the string "X Release".'),
    ("uvicorn-with-sync-workers", "site", {"gunicorn_server": "uvicorn", "gunicorn_worker_class": "sync"},
     "gunicorn_worker_class must be uvicorn_worker.UvicornWorker with gunicorn_server uvicorn"),
    ("backlog-tiny", "site", {"gunicorn_backlog": 8}, "gunicorn_backlog must be an integer of at least 16; got the integer 8."),
    # nginx
    ("maintenance-allow-as-string", "site", {"nginx_maintenance_allow": "10.0.0.0/8"},
     'nginx_maintenance_allow must be a list of strings; got the string "10.0.0.0/8".'),
    ("maintenance-allow-not-an-address", "site", {"nginx_maintenance_allow": ["office.example.com"]},
     "nginx_maintenance_allow must be a list of addresses or CIDR ranges such as 203.0.113.7 or 10.0.0.0/8"),
    ("maintenance-retry-after-zero", "site", {"nginx_maintenance_retry_after": 0},
     "nginx_maintenance_retry_after must be an integer of at least 1 (seconds); got the integer 0."),
    ("server-names-as-string", "site", {"nginx_server_names": "shop.example.com"},
     'nginx_server_names must be a list of strings; got the string "shop.example.com".'),
    ("server-names-empty", "site", {"nginx_server_names": []},
     "nginx_server_names must be a list of at least one host name; got a list []."),
    ("server-name-with-space", "site", {"nginx_server_names": ["shop example"]},
     "nginx_server_names must be a list of host names (letters, digits, '.', '-', '*' and ':'); "
     'got a list ["shop example"].'),
    ("bad-body-size", "site", {"nginx_client_max_body_size": "ten megs"},
     'nginx_client_max_body_size must be an nginx size such as 10m, 512k or 1g; got the string "ten megs".'),
    ("keepalive-negative", "site", {"nginx_upstream_keepalive": -1},
     "nginx_upstream_keepalive must be an integer of at least 0 (0 turns upstream keepalive off); got the integer -1."),
    ("keepalive-order", "site", {"nginx_upstream_keepalive_timeout": 90},
     "nginx_upstream_keepalive_timeout must be at least 1 and shorter than gunicorn_keepalive (75) and "
     "gunicorn_graceful_timeout (30)"),
    ("stream-location-with-a-brace", "site", {"nginx_stream_locations": [{"location": "/ws { return 200; }"}]},
     "nginx_stream_locations must be a list of entries whose location starts with '/' and has no space, ';', '{' or '}'"),
    ("stream-read-timeout-zero", "site", {"nginx_stream_locations": [{"location": "/events", "read_timeout": 0}]},
     "nginx_stream_locations must be a list of entries whose read_timeout is at least 1 (seconds)"),
    ("static-location-relative", "site", {"nginx_static_locations": [{"location": "static", "path": "/srv/shop/static/"}]},
     "nginx_static_locations must be a list of entries whose location starts and ends with '/'"),
    ("static-locations-as-string", "site", {"nginx_static_locations": "/static/"},
     'nginx_static_locations must be a list of mappings; got the string "/static/".'),
    ("static-location-unknown-key", "site", {"nginx_static_locations": [{"location": "/s/", "path": "/srv/s/", "root": "/"}]},
     'nginx_static_locations[0] has no key "root"; expected keys: location, path, expires.'),
    ("hsts-preload-without-subdomains", "site",
     {"nginx_hsts": {"enabled": True, "max_age": 63072000, "include_subdomains": False, "preload": True}},
     "nginx_hsts must be enabled, include_subdomains and a max_age of at least 31536000 (one year) when preload is set"),
    ("hsts-as-string", "site", {"nginx_hsts": "on"}, 'nginx_hsts must be a mapping; got the string "on".'),
    ("trusted-proxies-as-string", "site", {"nginx_trusted_proxies": "10.0.0.0/8"},
     'nginx_trusted_proxies must be a list of strings; got the string "10.0.0.0/8".'),
    ("trusted-proxy-hostname", "site", {"nginx_trusted_proxies": ["lb.example"]},
     'nginx_trusted_proxies must be a list of addresses or CIDR ranges such as 10.0.0.0/8; got a list ["lb.example"].'),
    ("extra-config-as-list", "site", {"nginx_extra_config": ["gzip on;"]},
     'nginx_extra_config must be a string; got a list ["gzip on;"].'),
    # tls
    ("unknown-tls-mode", "site", {"tls_mode": "letsencrypt"},
     'tls_mode (through nginx_tls_mode\'s default) must be one of selfsigned, provided, acme, off; got the string "letsencrypt".'),
    ("provided-without-key", "site", {"tls_mode": "provided", "tls_cert": "/etc/ssl/certs/ca-certificates.crt"},
     "tls_key must be the private key (PEM text, vaulted, or a controller path) with tls_mode provided; got nothing."),
    ("cert-days-below-renewal", "site", {"tls_cert_days": 10},
     "tls_cert_days must be more days than tls_renew_days (30); got the integer 10."),
    ("tls-names-as-string", "site", {"tls_server_names": "shop.example"},
     'tls_server_names must be a list of strings; got the string "shop.example".'),
    ("acme-wildcard", "site", {"tls_mode": "acme", "nginx_server_names": ["*.shop.example"]},
     "nginx_server_names (through tls_server_names's default) must be DNS names an ACME server can validate "
     'over HTTP-01, without wildcards, '
     'IP addresses or localhost (rejected: ["*.shop.example"])'),
    ("acme-plain-http-directory", "site", {"tls_mode": "acme", "nginx_server_names": ["shop.example"],
                                           "tls_acme_directory": "http://acme.example/dir"},
     'tls_acme_directory must be an https:// URL of the ACME server\'s directory; got the string "http://acme.example/dir".'),
    ("acme-bad-email", "site", {"tls_mode": "acme", "nginx_server_names": ["shop.example"], "tls_acme_email": "ops"},
     "tls_acme_email must be an e-mail address, or '' for none; got the string \"ops\"."),
    # rollout
    ("unknown-reload-method", "rolling_reload", {"rollout_reload": "usr2"},
     'rollout_reload must be one of auto, hup, restart; got the string "usr2".'),
    ("health-timeout-zero", "rolling_reload", {"rollout_health_timeout": 0},
     "rollout_health_timeout must be an integer of at least 1 (seconds); got the integer 0."),
    ("expect-release-not-boolean", "rolling_reload", {"rollout_expect_release": "perhaps"},
     'rollout_expect_release must be true or false; got the string "perhaps".'),
    ("bad-batches", "rolling_reload", {"rollout_batches": [1, "half"]},
     'rollout_batches must be a list of host counts or percentages such as [1, "50%", "100%"]; got [1, "half"].'),
    ("batches-as-string", "rolling_reload", {"rollout_batches": "1"},
     'rollout_batches must be a list of host counts or percentages such as [1, "50%", "100%"]; got "1".'),
    ("relative-health-path", "rollback", {"rollout_health_path": "health"},
     "rollout_health_path must be a path starting with '/'; got the string \"health\"."),
    ("rollback-target-path", "rollback", {"rollout_target_release": "../../etc"},
     'rollout_target_release must be empty (each host\'s previous release) or a release id; got the string "../../etc".'),
    ("soak-seconds-negative", "rolling_reload", {"rollout_soak_seconds": -5},
     "rollout_soak_seconds must be an integer of at least 0 (seconds; 0 is off); got the integer -5."),
    ("slo-5xx-ratio-above-1", "rolling_reload", {"rollout_slo": {"max_5xx_ratio": 3}},
     "rollout_slo must be max_5xx_ratio from 0 to below 1, max_p99_ms, max_p99_ratio_to_baseline and p99_floor_ms "
     "at least 0, min_requests at least 1"),
    ("slo-unknown-key", "rolling_reload", {"rollout_slo": {"max_errors": 0.01}}, 'rollout_slo has no key "max_errors"'),
    ("soak-inconclusive-choice", "rolling_reload", {"rollout_soak_inconclusive": "retry"},
     'rollout_soak_inconclusive must be one of pass, wait, fail; got the string "retry".'),
    ("webhook-not-http", "rolling_reload", {"rollout_notify": [{"url": "ftp://hooks.example.com/deploys"}]},
     "rollout_notify must be webhooks whose url starts with http:// or https://"),
]


def _failures(output: str) -> list[str]:
    """The msg of every failed task, from the json callback's output."""
    start = output.index("{")
    document = json.loads(output[start:])
    messages = []
    for play in document["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                if result.get("failed"):
                    messages.append(result.get("msg", ""))
    return messages


@pytest.mark.parametrize(("playbook", "overrides", "expected"), [case[1:] for case in BAD_INPUT],
                         ids=[case[0] for case in BAD_INPUT])
def test_bad_input_fails_on_the_controller_naming_only_the_variable_at_fault(tmp_path, playbook, overrides, expected):
    result = run_site(tmp_path, playbook=playbook, env_extra={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
                      **overrides)
    output = result.stdout
    assert result.returncode != 0
    failures = _failures(output)
    assert len(failures) == 1, failures or result.stderr[-2000:]
    message = failures[0]
    assert expected in message
    assert "\n" not in message, "more than one problem reported: %s" % message
    document = json.loads(output[output.index("{"):])
    assert document["stats"]["pyfleet-absent-host"]["unreachable"] == 0, "a host was contacted before validation failed"
    assert [play["play"]["name"] for play in document["plays"]][-1].startswith("Validate"), "a later play ran"
    assert SECRET not in result.stdout + result.stderr, "a secret reached Ansible's output"


def test_the_battery_covers_every_role_and_the_rollout():
    assert len(BAD_INPUT) >= 40
    variables = {name for _id, _playbook, overrides, _expected in BAD_INPUT for name in overrides}
    for prefix in ("app_", "gunicorn_", "nginx_", "tls_", "rollout_"):
        assert any(name.startswith(prefix) for name in variables), prefix


def test_hosts_that_would_ship_different_code_are_refused_by_name(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"app_servers": {"hosts": {
        "pyfleet-absent-host": {"ansible_connection": "community.docker.docker"},
        "pyfleet-absent-other": {"ansible_connection": "community.docker.docker",
                                 "app_source": {"type": "dir", "path": str(ROOT / "examples" / "flask" / "app")}},
    }}}))
    extra = tmp_path / "vars.yml"
    extra.write_text(json.dumps({k: v for k, v in GOOD.items() if k != "app_source"}))
    group_vars = tmp_path / "group_vars"
    group_vars.mkdir()
    (group_vars / "app_servers.yml").write_text(json.dumps({"app_source": GOOD["app_source"]}))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    result = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), "-e",
                             f"@{extra}", str(ROOT / "playbooks" / "site.yml")],
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "must be the same on every host of a rollout" in output, output[-3000:]
    assert "pyfleet-absent-other" in output and "examples/flask/app" in output
    assert "UNREACHABLE" not in output


def test_unhashed_lockfile_is_refused(tmp_path):
    lock = tmp_path / "requirements.txt"
    lock.write_text("fastapi==0.165.0\n")
    result = run_site(tmp_path, app_requirements=str(lock))
    output = result.stdout + result.stderr
    assert "carry no --hash: fastapi==0.165.0" in output, output[-3000:]
    assert "UNREACHABLE" not in output


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
