# SPDX-License-Identifier: GPL-3.0-or-later
"""pyfleet.deploy.files through ansible-playbook: its action ships the archives of unpacked entries.

The host is the controller itself (the local connection), with its own remote
temporary directory, so the test sees what the action leaves there.
"""

from __future__ import annotations

import grp
import io
import json
import os
import pwd
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from collection import COLLECTIONS  # tests/collection.py

from ansible_collections.pyfleet.deploy.plugins.lookup.tree_hash import tree_hash

PLAYBOOK = '''
- name: Stage a directory and unpack an archive into it in one task
  hosts: all
  gather_facts: false
  tasks:
    - name: Write the directory and its metadata, then unpack the code around them
      pyfleet.deploy.files:
        files:
          - {{path: "{{{{ dest }}}}", state: directory, mode: "0755", owner: "{me}", group: "{group}"}}
          - {{path: "{{{{ dest }}}}/.release.json", content: "ours", owner: "{me}", group: "{group}"}}
          - {{path: "{{{{ dest }}}}", state: unpacked, src: "{{{{ archive }}}}", exclude: [.release.json, .venv, "*.pyc"],
             src_hash: "{{{{ src_hash | default(none) }}}}", owner: "{me}", group: "{group}"}}
      register: written
    - name: Show what changed
      ansible.builtin.debug:
        var: written.changed_paths
'''


def _archive(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, payload in (("app/main.py", b"app = 1\n"), (".release.json", b"theirs")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(payload), 0o644
            archive.addfile(info, io.BytesIO(payload))
    return path


def run_play(tmp_path: Path, archive: Path, hosts=("one",), **extra):
    """Run the play on hosts, each unpacking into its own directory: release for the first, release-<host> else."""
    (tmp_path / "play.yml").write_text(PLAYBOOK.format(me=pwd.getpwuid(os.getuid()).pw_name,
                                                       group=grp.getgrgid(os.getgid()).gr_name))
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {
        "vars": dict({"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                      "ansible_remote_tmp": str(tmp_path / "remote-tmp"), "dest": str(tmp_path / "release"),
                      "archive": str(archive)}, **extra),
        "hosts": {host: {"dest": str(tmp_path / ("release-" + host))} if index else {}
                  for index, host in enumerate(hosts)}}}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           str(tmp_path / "play.yml")], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_the_archive_is_shipped_unpacked_around_the_metadata_and_nothing_is_left_behind(tmp_path):
    archive = _archive(tmp_path / "code.tar.gz")
    before = archive.read_bytes()
    done = run_play(tmp_path, archive)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "release" / "app" / "main.py").read_text() == "app = 1\n"
    assert (tmp_path / "release" / ".release.json").read_text() == "ours"
    assert archive.read_bytes() == before
    # The shipped copy went with the task's temporary directory.
    assert list((tmp_path / "remote-tmp").iterdir()) == []


def test_an_archive_missing_on_the_controller_is_named_and_nothing_is_written(tmp_path):
    done = run_play(tmp_path, tmp_path / "missing.tar.gz")
    assert done.returncode != 0
    assert ("files[2].src: %s is neither a file nor a directory on the controller" % (tmp_path / "missing.tar.gz")
            in done.stdout)
    assert not (tmp_path / "release").exists()


def test_a_directory_is_packed_on_the_controller_without_what_the_exclusions_match(tmp_path):
    source = tmp_path / "source"
    (source / "app" / "__pycache__").mkdir(parents=True)
    (source / "app" / "main.py").write_text("app = 1\n")
    (source / "app" / "main.pyc").write_bytes(b"\0")
    (source / "static").mkdir()
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o755)
    (source / "current").symlink_to("app")
    (source / ".venv" / "bin").mkdir(parents=True)
    (source / ".venv" / "bin" / "python").write_text("x")
    (source / ".release.json").write_text("theirs")
    done = run_play(tmp_path, source)
    assert done.returncode == 0, done.stdout + done.stderr
    release = tmp_path / "release"
    shipped = sorted(str(path.relative_to(release)) for path in release.rglob("*"))
    assert shipped == [".release.json", "app", "app/__pycache__", "app/main.py", "current", "run.sh", "static"]
    assert (release / ".release.json").read_text() == "ours"
    assert os.readlink(release / "current") == "app" and os.access(release / "run.sh", os.X_OK)
    assert list((tmp_path / "remote-tmp").iterdir()) == []


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    (source / "app").mkdir(parents=True)
    (source / "app" / "main.py").write_text("app = 1\n")
    (source / "app" / "main.pyc").write_bytes(b"\0")
    (source / "run.sh").write_text("#!/bin/sh\n")
    (source / "run.sh").chmod(0o755)
    return source


def test_with_src_hash_every_host_receives_the_tree_that_was_hashed(tmp_path):
    source = _source(tmp_path)
    src_hash = tree_hash(str(source), (".release.json", ".venv", "*.pyc"))
    done = run_play(tmp_path, source, hosts=("one", "two", "three"), src_hash=src_hash)
    assert done.returncode == 0, done.stdout + done.stderr
    for release in ("release", "release-two", "release-three"):
        shipped = sorted(str(path.relative_to(tmp_path / release)) for path in (tmp_path / release).rglob("*"))
        assert shipped == [".release.json", "app", "app/main.py", "run.sh"], release
        assert (tmp_path / release / "app" / "main.py").read_text() == "app = 1\n"
    assert list((tmp_path / "remote-tmp").iterdir()) == []


def test_an_archive_is_checked_against_its_src_hash_too(tmp_path):
    archive = _archive(tmp_path / "code.tar.gz")
    done = run_play(tmp_path, archive, src_hash=tree_hash(str(archive)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "release" / "app" / "main.py").read_text() == "app = 1\n"


def test_a_source_that_changed_after_its_hash_was_taken_is_refused_on_every_host_before_anything_is_written(tmp_path):
    source = _source(tmp_path)
    src_hash = tree_hash(str(source), (".release.json", ".venv", "*.pyc"))
    (source / "app" / "main.py").write_text("app = 2\n")
    done = run_play(tmp_path, source, hosts=("one", "two"), src_hash=src_hash)
    assert done.returncode != 0
    message = "files[2].src: %s changed after its src_hash was taken (%s)" % (source, src_hash)
    # The output wraps long lines: compare with single spaces.
    assert message in " ".join(done.stdout.split()), done.stdout
    assert re.search(r"^one +: ok=0 .* failed=1 ", done.stdout, re.M), done.stdout
    assert re.search(r"^two +: ok=0 .* failed=1 ", done.stdout, re.M), done.stdout
    assert not (tmp_path / "release").exists() and not (tmp_path / "release-two").exists()


def test_a_src_hash_that_is_not_a_sha256_is_named(tmp_path):
    done = run_play(tmp_path, _source(tmp_path), src_hash="abc123")
    assert done.returncode != 0
    assert "files[2].src_hash: expected the 64 hex digits of a sha256" in done.stdout
    assert not (tmp_path / "release").exists()
