# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.pyfleet.deploy.plugins.modules import release_diff

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from module_runner import run_main  # noqa: E402
from collection import COLLECTIONS  # noqa: E402  (tests/collection.py)

ROOT = Path(__file__).resolve().parents[4]

BINARY_OLD = b"\x89PNG\r\n\x1a\n\x00\xff\xfe old"
BINARY_NEW = b"\x89PNG\r\n\x1a\n\x00\xff\xfe new"


def run(capsys, **args):
    return run_main(release_diff.main, capsys, args)


def make_venv(app, lock_hash, packages, python="python3.11"):
    """A fake virtualenv under <app>/venvs/<lock_hash>; packages are (dist-info name, Name header, version)."""
    venv = app / "venvs" / lock_hash
    site = venv / "lib" / python / "site-packages"
    site.mkdir(parents=True)
    (venv / "bin").mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for dist_name, name, version in packages:
        info = site / ("%s-%s.dist-info" % (dist_name, version))
        info.mkdir()
        # The body after the blank line must not be read as headers.
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: test\n\nName: bogus\nVersion: 9.9\n"
            % (name, version)
        )
        (info / "RECORD").write_text("")
    (site / "plain_module.py").write_text("")
    return venv


def make_release(app, rid, venv, files, absolute_venv=False):
    release = app / "releases" / rid
    release.mkdir(parents=True)
    for rel, data in files.items():
        path = release / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    meta = {
        "id": rid, "app": "demo", "source_type": "dir", "source_revision": rid,
        "lock_hash": venv.name if venv else None, "python": "3.11.2",
        "deployed_at": "2026-01-14T10:15:03Z", "deployed_by": "alice",
    }
    (release / ".release.json").write_text(json.dumps(meta, indent=2) + "\n")
    if venv is not None:
        target = venv if absolute_venv else os.path.relpath(venv, release)
        (release / ".venv").symlink_to(target, target_is_directory=True)
    return release


def link(app, name, rid, absolute=False):
    target = (app / "releases" / rid) if absolute else Path("releases") / rid
    (app / name).symlink_to(target, target_is_directory=True)


R1_FILES = {
    "main.py": "import fastapi\n\nVERSION = 1\napp = fastapi.FastAPI()\n",
    "gone.py": "OLD = True\n",
    "same.py": "SAME = 1\n",
    "pkg/__init__.py": "",
    "static/logo.png": BINARY_OLD,
    "__pycache__/main.cpython-311.pyc": b"\x00old bytecode",
    "pkg/__pycache__/__init__.cpython-311.pyc": b"\x00old",
    "stray.pyc": b"\x00old stray",
}
R2_FILES = {
    "main.py": "import fastapi\n\nVERSION = 2\napp = fastapi.FastAPI()\n",
    "new.py": "NEW = True\n",
    "same.py": "SAME = 1\n",
    "pkg/__init__.py": "",
    "static/logo.png": BINARY_NEW,
    "__pycache__/main.cpython-311.pyc": b"\x00new bytecode",
    "__pycache__/new.cpython-311.pyc": b"\x00new",
    "stray.pyc": b"\x00new stray",
}
R3_FILES = dict(R2_FILES, **{"main.py": "import fastapi\n\nVERSION = 3\napp = fastapi.FastAPI()\n"})

R1_TO_R2_DIFF = """\
--- a/gone.py
+++ b/gone.py
@@ -1 +0,0 @@
-OLD = True
--- a/main.py
+++ b/main.py
@@ -1,4 +1,4 @@
 import fastapi
{blank}
-VERSION = 1
+VERSION = 2
 app = fastapi.FastAPI()
--- a/new.py
+++ b/new.py
@@ -0,0 +1 @@
+NEW = True
""".replace("{blank}", " ")  # a context line of an empty line is one space


@pytest.fixture
def app(tmp_path):
    """App root with releases r1 (venv v1), r2 and r3 (both venv v2); no current/previous links."""
    app = tmp_path / "srv" / "demo"
    v1 = make_venv(app, "v1hash", [
        ("fastapi", "fastapi", "0.1"),
        ("oldpkg", "oldpkg", "1.0"),
        ("Foo_Bar", "Foo_Bar", "1.0"),
        ("uvicorn", "uvicorn", "0.30.0"),
    ])
    v2 = make_venv(app, "v2hash", [
        ("fastapi", "FastAPI", "0.2"),
        ("itsdangerous", "itsdangerous", "2.2.0"),
        ("foo.bar", "foo.bar", "1.1"),
        ("uvicorn", "uvicorn", "0.30.0"),
    ], python="python3.12")
    make_release(app, "r1", v1, R1_FILES)
    make_release(app, "r2", v2, R2_FILES)
    make_release(app, "r3", v2, R3_FILES, absolute_venv=True)
    return app


def snapshot(root):
    """Everything under root, with content and mtimes, to prove nothing changed."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            data = os.readlink(path) if os.path.islink(path) else (
                Path(path).read_bytes() if os.path.isfile(path) else None)
            state[path] = (info.st_mode, info.st_mtime_ns, data)
    return state


# Defaults from the links


@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_defaults_compare_previous_with_current(app, capsys, absolute):
    link(app, "previous", "r1", absolute=absolute)
    link(app, "current", "r2", absolute=absolute)
    rc, out = run(capsys, app_root=str(app))
    assert rc == 0, out
    assert out["changed"] is False
    assert out["app_root"] == str(app)
    assert out["same_release"] is False

    assert out["from"]["id"] == "r1"
    assert out["to"]["id"] == "r2"
    assert out["from"]["path"] == str(app / "releases" / "r1")
    assert out["from"]["venv"] == str(app / "venvs" / "v1hash")
    assert out["to"]["venv"] == str(app / "venvs" / "v2hash")
    assert out["from"]["meta"]["id"] == "r1"
    assert out["to"]["meta"] == json.loads((app / "releases" / "r2" / ".release.json").read_text())

    assert out["packages"] == {
        "same_venv": False,
        "added": [{"name": "itsdangerous", "version": "2.2.0"}],
        "removed": [{"name": "oldpkg", "version": "1.0"}],
        "changed": [
            {"name": "fastapi", "from": "0.1", "to": "0.2"},
            {"name": "foo-bar", "from": "1.0", "to": "1.1"},
        ],
    }

    source = out["source"]
    assert source["added"] == ["new.py"]
    assert source["removed"] == ["gone.py"]
    assert source["changed"] == ["main.py", "static/logo.png"]
    assert source["binary"] == ["static/logo.png"]
    assert source["diff"] == R1_TO_R2_DIFF
    assert source["diff_truncated"] is False

    assert out["summary"] == (
        "r1 -> r2: 2 packages changed, 1 added, 1 removed; 2 source files changed, 1 added, 1 removed"
    )


def test_links_with_trailing_slash_and_dot_segments(app, capsys):
    (app / "previous").symlink_to(str(app / "releases" / "r1") + "/")
    (app / "current").symlink_to("./releases/r3/")
    rc, out = run(capsys, app_root=str(app))
    assert rc == 0, out
    assert (out["from"]["id"], out["to"]["id"]) == ("r1", "r3")


def test_ignored_entries_never_show(app, capsys):
    link(app, "previous", "r1")
    link(app, "current", "r2")
    (app / "releases" / "r2" / ".release.json").write_text('{"id": "changed"}')
    (app / "releases" / "r2" / "sub" / "__pycache__").mkdir(parents=True)
    (app / "releases" / "r2" / "sub" / "__pycache__" / "x.py").write_text("hidden\n")
    (app / "releases" / "r2" / "sub" / "mod.cpython-311.pyc").write_bytes(b"\x00")
    rc, out = run(capsys, app_root=str(app))
    assert rc == 0, out
    everything = out["source"]["added"] + out["source"]["removed"] + out["source"]["changed"]
    assert not [p for p in everything if "__pycache__" in p or p.endswith(".pyc")
                or p.startswith(".venv") or p == ".release.json"]
    assert "pyc" not in out["source"]["diff"] and "release.json" not in out["source"]["diff"]


def test_the_configuration_is_compared_by_name_and_no_env_value_leaves_the_host(app, capsys):
    link(app, "previous", "r1")
    link(app, "current", "r2")
    old = app / "releases" / "r1" / ".pyfleet"
    new = app / "releases" / "r2" / ".pyfleet"
    for path, text in ((old / "env", 'KEEP="1"\nSECRET="old-s3cret"\nGONE="x"\n'),
                       (new / "env", 'KEEP="1"\nSECRET="new-s3cret"\nADDED="y"\n'),
                       (old / "gunicorn.conf.py", "timeout = 30\n"), (new / "gunicorn.conf.py", "timeout = 45\n"),
                       (old / "systemd" / "demo.service", "[Service]\n"), (new / "systemd" / "demo.service", "[Service]\n"),
                       (new / "__pycache__" / "x.pyc", "")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    rc, out = run(capsys, app_root=str(app), diff_lines=1000)
    assert rc == 0, out
    assert out["config"] == {"added": [], "removed": [], "changed": ["env", "gunicorn.conf.py"],
                             "env": {"added": ["ADDED"], "removed": ["GONE"], "changed": ["SECRET"]}}
    assert not [p for p in out["source"]["added"] + out["source"]["changed"] if p.startswith(".pyfleet")]
    assert "s3cret" not in json.dumps(out)
    assert out["summary"].endswith("; 2 config files changed")


# Explicit ids


def test_explicit_ids_without_links(app, capsys):
    rc, out = run(capsys, app_root=str(app), from_release="r1", to_release="r3")
    assert rc == 0, out
    assert (out["from"]["id"], out["to"]["id"]) == ("r1", "r3")
    assert [c["name"] for c in out["packages"]["changed"]] == ["fastapi", "foo-bar"]
    assert "+VERSION = 3" in out["source"]["diff"]


def test_explicit_id_overrides_one_link(app, capsys):
    link(app, "previous", "r1")
    link(app, "current", "r3")
    rc, out = run(capsys, app_root=str(app), from_release="r2")
    assert rc == 0, out
    assert (out["from"]["id"], out["to"]["id"]) == ("r2", "r3")
    rc, out = run(capsys, app_root=str(app), to_release="r2")
    assert rc == 0, out
    assert (out["from"]["id"], out["to"]["id"]) == ("r1", "r2")


def test_direction_newer_to_older(app, capsys):
    rc, out = run(capsys, app_root=str(app), from_release="r2", to_release="r1")
    assert rc == 0, out
    assert out["packages"]["added"] == [{"name": "oldpkg", "version": "1.0"}]
    assert out["packages"]["removed"] == [{"name": "itsdangerous", "version": "2.2.0"}]
    assert out["packages"]["changed"][0] == {"name": "fastapi", "from": "0.2", "to": "0.1"}
    assert out["source"]["added"] == ["gone.py"]
    assert out["source"]["removed"] == ["new.py"]
    assert "-VERSION = 2\n+VERSION = 1\n" in out["source"]["diff"]
    assert "--- a/new.py\n+++ b/new.py\n@@ -1 +0,0 @@\n-NEW = True\n" in out["source"]["diff"]


# Same venv, same release


def test_same_venv_is_not_scanned(app, capsys, monkeypatch):
    def no_scan(venv):
        raise AssertionError("scanned %s" % venv)

    monkeypatch.setattr(release_diff, "installed_packages", no_scan)
    # r2 links its venv relatively, r3 absolutely: both resolve to venvs/v2hash.
    rc, out = run(capsys, app_root=str(app), from_release="r2", to_release="r3")
    assert rc == 0, out
    assert out["packages"] == {"same_venv": True, "added": [], "removed": [], "changed": []}
    assert out["from"]["venv"] == out["to"]["venv"] == str(app / "venvs" / "v2hash")
    assert out["source"]["changed"] == ["main.py"]
    assert out["source"]["added"] == [] and out["source"]["removed"] == []
    assert out["summary"] == "r2 -> r3: same virtualenv; 1 source file changed, 0 added, 0 removed"


def test_same_release(app, capsys, monkeypatch):
    monkeypatch.setattr(release_diff, "tree_files", lambda root: pytest.fail("walked %s" % root))
    link(app, "previous", "r2")
    link(app, "current", "r2", absolute=True)
    rc, out = run(capsys, app_root=str(app))
    assert rc == 0, out
    assert out["changed"] is False
    assert out["same_release"] is True
    assert out["summary"] == "same release"
    assert out["from"]["id"] == out["to"]["id"] == "r2"
    assert out["packages"] == {"same_venv": True, "added": [], "removed": [], "changed": []}
    assert out["source"] == {"added": [], "removed": [], "changed": [], "binary": [], "diff": "",
                             "diff_truncated": False}
    assert out["config"] == {"added": [], "removed": [], "changed": [], "env": {"added": [], "removed": [], "changed": []}}


# Failures


def test_unknown_release_names_it_and_lists_the_available_ones(app, capsys):
    link(app, "previous", "r1")
    link(app, "current", "r2")
    (app / "releases" / "r4.partial").mkdir()
    rc, out = run(capsys, app_root=str(app), from_release="nope")
    assert rc == 1
    assert out["failed"] is True
    assert out["msg"] == (
        "from_release: release nope does not exist in %s; available releases: r1 (previous), r2 (current), r3"
        % (app / "releases")
    )
    rc, out = run(capsys, app_root=str(app), to_release="r9")
    assert rc == 1
    assert out["msg"].startswith("to_release: release r9 does not exist in ")
    assert "r4.partial" not in out["msg"]


@pytest.mark.parametrize("rid", ["../demo", "r1/..", ".", "..", ""])
def test_ids_that_are_not_names_are_refused(app, capsys, rid):
    rc, out = run(capsys, app_root=str(app), from_release=rid, to_release="r2")
    assert rc == 1
    assert out["msg"].startswith("from_release %r is not a release id; available releases: r1, r2, r3" % rid)


def test_missing_previous_link(app, capsys):
    link(app, "current", "r2")
    rc, out = run(capsys, app_root=str(app))
    assert rc == 1
    assert out["msg"].startswith("no previous release on this host (%s does not exist); name from_release."
                                 % (app / "previous"))
    assert out["msg"].endswith("available releases: r1, r2 (current), r3")
    assert "from" not in out and "packages" not in out


def test_missing_current_link(app, capsys):
    link(app, "previous", "r1")
    rc, out = run(capsys, app_root=str(app), from_release="r1")
    assert rc == 1
    assert out["msg"].startswith("no current release on this host")
    assert "name to_release" in out["msg"]


def test_link_to_a_pruned_release(app, capsys):
    link(app, "previous", "r0")
    link(app, "current", "r2")
    rc, out = run(capsys, app_root=str(app))
    assert rc == 1
    assert out["msg"].startswith(
        "%s points to release r0, which does not exist in %s; name from_release." % (app / "previous", app / "releases")
    )


def test_link_that_is_not_a_symlink(app, capsys):
    (app / "previous").mkdir()
    link(app, "current", "r2")
    rc, out = run(capsys, app_root=str(app))
    assert rc == 1
    assert out["msg"].startswith("%s is not a symbolic link to a release" % (app / "previous"))


def test_app_root_without_releases(tmp_path, capsys):
    rc, out = run(capsys, app_root=str(tmp_path / "nothing"))
    assert rc == 1
    assert out["msg"] == "%s has no releases directory %s; is app_root right?" % (
        tmp_path / "nothing", tmp_path / "nothing" / "releases")


def test_empty_releases_directory(tmp_path, capsys):
    (tmp_path / "releases").mkdir()
    rc, out = run(capsys, app_root=str(tmp_path), from_release="a", to_release="b")
    assert rc == 1
    assert out["msg"].endswith("there are no releases in %s" % (tmp_path / "releases"))


def test_negative_diff_lines(app, capsys):
    rc, out = run(capsys, app_root=str(app), from_release="r1", to_release="r2", diff_lines=-1)
    assert rc == 1 and out["msg"] == "diff_lines must be 0 or more, not -1"


# Diff limits, source=false, check mode


def test_diff_truncation(app, capsys):
    all_lines = R1_TO_R2_DIFF.splitlines()
    rc, out = run(capsys, app_root=str(app), from_release="r1", to_release="r2", diff_lines=5)
    assert rc == 0, out
    assert out["source"]["diff"] == "\n".join(all_lines[:5]) + "\n"
    assert out["source"]["diff_truncated"] is True
    # The lists and binary files are complete whatever the cut.
    assert out["source"]["changed"] == ["main.py", "static/logo.png"]
    assert out["source"]["binary"] == ["static/logo.png"]

    rc, out = run(capsys, app_root=str(app), from_release="r1", to_release="r2", diff_lines=len(all_lines))
    assert out["source"]["diff"] == R1_TO_R2_DIFF
    assert out["source"]["diff_truncated"] is False

    rc, out = run(capsys, app_root=str(app), from_release="r1", to_release="r2", diff_lines=len(all_lines) - 1)
    assert out["source"]["diff_truncated"] is True
    assert out["source"]["diff"].count("\n") == len(all_lines) - 1

    rc, out = run(capsys, app_root=str(app), from_release="r1", to_release="r2", diff_lines=0)
    assert rc == 0, out
    assert out["source"]["diff"] == ""
    assert out["source"]["diff_truncated"] is False
    assert out["source"]["added"] == ["new.py"]


def test_large_and_unterminated_files(app, capsys):
    r1, r2 = app / "releases" / "r1", app / "releases" / "r2"
    (r1 / "big.txt").write_text("x\n" * (600 * 1024))  # 1.2 MiB of text
    (r2 / "big.txt").write_text("y\n" * (600 * 1024))
    (r1 / "tail.txt").write_text("a\nb")
    (r2 / "tail.txt").write_text("a\nc")
    (r2 / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    rc, out = run(capsys, app_root=str(app), from_release="r1", to_release="r2", diff_lines=10000)
    assert rc == 0, out
    assert out["source"]["binary"] == ["big.txt", "latin1.txt", "static/logo.png"]
    assert "big.txt" in out["source"]["changed"] and "latin1.txt" in out["source"]["added"]
    assert (
        "--- a/tail.txt\n+++ b/tail.txt\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n"
        "+c\n\\ No newline at end of file\n"
    ) in out["source"]["diff"]
    assert "big.txt" not in out["source"]["diff"] and "latin1" not in out["source"]["diff"]


def test_symlinks_in_the_tree_are_compared_by_target(app, capsys):
    r1, r2 = app / "releases" / "r1", app / "releases" / "r2"
    (r1 / "config.py").symlink_to("/etc/demo/config-a.py")
    (r2 / "config.py").symlink_to("/etc/demo/config-b.py")
    (r1 / "shared").symlink_to("/var/lib/demo")
    (r2 / "shared").symlink_to("/var/lib/demo")
    rc, out = run(capsys, app_root=str(app), from_release="r1", to_release="r2")
    assert rc == 0, out
    assert "config.py" in out["source"]["changed"]
    assert "shared" not in out["source"]["changed"] + out["source"]["added"]
    assert "config.py" not in out["source"]["diff"] and "config.py" not in out["source"]["binary"]


def test_source_false(app, capsys, monkeypatch):
    monkeypatch.setattr(release_diff, "tree_files", lambda root: pytest.fail("walked %s" % root))
    link(app, "previous", "r1")
    link(app, "current", "r2")
    rc, out = run(capsys, app_root=str(app), source=False)
    assert rc == 0, out
    assert "source" not in out
    assert out["packages"]["added"] == [{"name": "itsdangerous", "version": "2.2.0"}]
    assert out["summary"] == "r1 -> r2: 2 packages changed, 1 added, 1 removed"


def test_check_mode_reports_the_same_and_changes_nothing(app, capsys):
    link(app, "previous", "r1")
    link(app, "current", "r2")
    before = snapshot(app)
    rc, normal = run(capsys, app_root=str(app))
    assert rc == 0, normal
    rc, checked = run(capsys, app_root=str(app), _ansible_check_mode=True)
    assert rc == 0, checked
    assert checked["changed"] is False
    assert checked == normal
    assert snapshot(app) == before


def test_release_without_venv_or_metadata(app, capsys, monkeypatch):
    # Where warnings end up in the result depends on what else ran in this
    # process (ansible-core routes them through global state), so record the call.
    warned = []
    monkeypatch.setattr(release_diff.AnsibleModule, "warn", lambda self, message: warned.append(message))
    (app / "releases" / "r1" / ".venv").unlink()
    (app / "releases" / "r1" / ".release.json").write_text("{not json")
    rc, out = run(capsys, app_root=str(app), from_release="r1", to_release="r2")
    assert rc == 0, out
    assert out["from"]["venv"] is None
    assert out["from"]["meta"] == {}
    assert [p["name"] for p in out["packages"]["added"]] == ["fastapi", "foo-bar", "itsdangerous", "uvicorn"]
    assert out["packages"]["removed"] == [] and out["packages"]["changed"] == []
    assert any("release r1 has no virtualenv at %s" % (app / "releases" / "r1" / ".venv") in w for w in warned), warned


@pytest.mark.parametrize("name, expected", [
    ("Foo_Bar", "foo-bar"),
    ("foo.bar", "foo-bar"),
    ("FOO--__..bar", "foo-bar"),
    ("zope.interface", "zope-interface"),
    ("fastapi", "fastapi"),
])
def test_normalize_name(name, expected):
    assert release_diff.normalize_name(name) == expected


def test_end_to_end_subprocess(app, tmp_path):
    link(app, "previous", "r1")
    link(app, "current", "r2")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(COLLECTIONS), os.environ.get("PYTHONPATH")])))
    argsfile = tmp_path / "args.json"
    argsfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"app_root": str(app), "diff_lines": 4}}))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "plugins" / "modules" / "release_diff.py"), str(argsfile)],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["changed"] is False
    assert out["source"]["diff"] == "--- a/gone.py\n+++ b/gone.py\n@@ -1 +0,0 @@\n-OLD = True\n"
    assert out["source"]["diff_truncated"] is True
    assert out["summary"].startswith("r1 -> r2: 2 packages changed, 1 added, 1 removed;")
