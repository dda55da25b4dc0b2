# SPDX-License-Identifier: GPL-3.0-or-later
"""The files action's pack: once per run for a src_hash, from the bytes it hashes."""

from __future__ import annotations

import multiprocessing
import os
import tarfile

from ansible_collections.pyfleet.deploy.plugins.action import files
from ansible_collections.pyfleet.deploy.plugins.lookup.tree_hash import tree_hash

EXCLUDE = (".venv", "*.pyc")


def _tree(path):
    (path / "app").mkdir(parents=True)
    (path / "app" / "main.py").write_text("app = 1\n")
    (path / "app" / "main.pyc").write_bytes(b"\0")
    (path / ".venv").mkdir()
    (path / "run.sh").write_text("#!/bin/sh\n")
    (path / "run.sh").chmod(0o755)
    (path / "current").symlink_to("app")
    return path


def _members(archive):
    with tarfile.open(archive) as opened:
        return {member.name: opened.extractfile(member).read() if member.isfile() else member.type
                for member in opened.getmembers()}


def test_the_hash_taken_while_packing_is_the_lookups(tmp_path):
    source = _tree(tmp_path / "source")
    assert files.pack(str(source), EXCLUDE, str(tmp_path / "out.tar")) == tree_hash(str(source), EXCLUDE)
    assert _members(tmp_path / "out.tar") == {"app": tarfile.DIRTYPE, "app/main.py": b"app = 1\n",
                                              "current": tarfile.SYMTYPE, "run.sh": b"#!/bin/sh\n"}


def test_a_run_packs_once_and_every_later_host_gets_those_bytes(tmp_path):
    source = _tree(tmp_path / "source")
    src_hash = tree_hash(str(source), EXCLUDE)
    cache = tmp_path / "run"
    cache.mkdir()
    first = files.pack_once(str(source), EXCLUDE, src_hash, str(cache))
    (source / "app" / "main.py").write_text("app = 2\n")
    assert files.pack_once(str(source), EXCLUDE, src_hash, str(cache)) == first
    assert _members(first)["app/main.py"] == b"app = 1\n"


def test_a_source_that_no_longer_hashes_to_src_hash_leaves_nothing_to_ship(tmp_path):
    source = _tree(tmp_path / "source")
    src_hash = tree_hash(str(source), EXCLUDE)
    (source / "app" / "new.py").write_text("")
    cache = tmp_path / "run"
    cache.mkdir()
    assert files.pack_once(str(source), EXCLUDE, src_hash, str(cache)) is None
    assert [path.name for path in cache.iterdir()] == ["pyfleet-source-%s.tar.lock" % src_hash]


def test_an_archive_source_is_copied_and_checked_by_its_sha256(tmp_path):
    archive = tmp_path / "code.tar"
    with tarfile.open(archive, "w") as opened:
        opened.add(_tree(tmp_path / "source"), arcname=".")
    cache = tmp_path / "run"
    cache.mkdir()
    shipped = files.pack_once(str(archive), EXCLUDE, tree_hash(str(archive)), str(cache))
    assert open(shipped, "rb").read() == archive.read_bytes()
    assert files.pack_once(str(archive), EXCLUDE, "0" * 64, str(cache)) is None


def _count_packs(counter, real_pack):
    def counted(*args):
        with open(counter, "a") as handle:
            handle.write("pack\n")
        return real_pack(*args)
    return counted


def _worker(source, src_hash, cache, counter):
    files.pack = _count_packs(counter, files.pack)
    files.pack_once(source, EXCLUDE, src_hash, cache)


def test_hosts_that_ask_at_once_wait_for_one_pack(tmp_path):
    source = _tree(tmp_path / "source")
    for index in range(200):
        (source / "app" / ("mod%d.py" % index)).write_text("x = %d\n" % index)
    src_hash = tree_hash(str(source), EXCLUDE)
    cache = tmp_path / "run"
    cache.mkdir()
    counter = tmp_path / "packs"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_worker, args=(str(source), src_hash, str(cache), str(counter)))
               for _worker_number in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * 6
    assert counter.read_text() == "pack\n"
    assert sorted(os.listdir(cache)) == ["pyfleet-source-%s.tar" % src_hash, "pyfleet-source-%s.tar.lock" % src_hash]
