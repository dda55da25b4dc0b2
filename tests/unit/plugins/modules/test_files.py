# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
from __future__ import annotations

import grp
import io
import os
import pwd
import stat
import sys
import tarfile

import pytest

from ansible_collections.pyfleet.deploy.plugins.modules import files

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from module_runner import run_main  # noqa: E402

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


def run(capsys, entries, **extra):
    return run_main(files.main, capsys, dict(files=entries, **extra))


def entry(path, **fields):
    return dict({"path": str(path), "owner": ME, "group": MY_GROUP}, **fields)


def mode_of(path):
    return "%04o" % stat.S_IMODE(os.lstat(path).st_mode)


def test_a_directory_and_its_files_are_made_in_order_and_reported(tmp_path, capsys):
    conf = tmp_path / "etc"
    rc, out = run(capsys, [entry(conf, state="directory", mode="0750"),
                           entry(conf / "a.conf", content="a = 1\n", mode="0640"),
                           entry(conf / "b.conf", content="b\n\n")])
    assert rc == 0, out
    assert out["changed"] and out["changed_paths"] == [str(conf), str(conf / "a.conf"), str(conf / "b.conf")]
    assert (conf / "a.conf").read_bytes() == b"a = 1\n" and (conf / "b.conf").read_bytes() == b"b\n\n"
    assert (mode_of(conf), mode_of(conf / "a.conf"), mode_of(conf / "b.conf")) == ("0750", "0640", "0644")


def test_a_second_run_changes_nothing(tmp_path, capsys):
    entries = [entry(tmp_path / "a.conf", content="a\n", mode="0640")]
    run(capsys, entries)
    before = os.stat(tmp_path / "a.conf").st_ino
    rc, out = run(capsys, entries)
    assert (rc, out["changed"], out["changed_paths"]) == (0, False, [])
    assert os.stat(tmp_path / "a.conf").st_ino == before


def test_new_content_replaces_the_file_by_rename_and_leaves_no_temporary_file(tmp_path, capsys):
    target = tmp_path / "a.conf"
    run(capsys, [entry(target, content="old\n")])
    before = os.stat(target).st_ino
    rc, out = run(capsys, [entry(target, content="new\n")])
    assert out["changed_paths"] == [str(target)] and target.read_text() == "new\n"
    assert os.stat(target).st_ino != before
    assert sorted(os.listdir(tmp_path)) == ["a.conf"]


def test_only_the_mode_is_fixed_in_place(tmp_path, capsys):
    target = tmp_path / "a.conf"
    run(capsys, [entry(target, content="a\n", mode="0640")])
    os.chmod(target, 0o666)
    before = os.stat(target).st_ino
    rc, out = run(capsys, [entry(target, content="a\n", mode="0640")])
    assert out["changed_paths"] == [str(target)] and mode_of(target) == "0640"
    assert os.stat(target).st_ino == before


def test_absent_removes_a_file_and_is_quiet_when_it_is_gone(tmp_path, capsys):
    target = tmp_path / "other.json"
    target.write_text("{}")
    rc, out = run(capsys, [entry(target, state="absent")])
    assert out["changed_paths"] == [str(target)] and not target.exists()
    rc, out = run(capsys, [entry(target, state="absent")])
    assert out["changed"] is False


def test_check_mode_names_what_would_change_and_writes_nothing(tmp_path, capsys):
    rc, out = run(capsys, [entry(tmp_path / "d", state="directory"), entry(tmp_path / "a", content="a")],
                  _ansible_check_mode=True)
    assert out["changed_paths"] == [str(tmp_path / "d"), str(tmp_path / "a")]
    assert os.listdir(tmp_path) == []


def test_diff_mode_shows_the_old_and_new_content(tmp_path, capsys):
    target = tmp_path / "a.conf"
    run(capsys, [entry(target, content="workers = 2\n")])
    rc, out = run(capsys, [entry(target, content="workers = 3\n")], _ansible_diff=True)
    assert out["diff"] == [{"before_header": str(target), "after_header": str(target),
                            "before": "workers = 2\n", "after": "workers = 3\n"}]


def test_an_unknown_owner_is_named_and_nothing_is_written(tmp_path, capsys):
    rc, out = run(capsys, [entry(tmp_path / "a", content="a", owner="pyfleet-nobody-here")])
    assert rc == 1 and out["msg"] == "%s: the owner pyfleet-nobody-here does not exist" % (tmp_path / "a")
    assert os.listdir(tmp_path) == []


def test_a_directory_where_a_file_should_be_is_refused(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    rc, out = run(capsys, [entry(tmp_path / "a", content="a")])
    assert rc == 1 and "is not a regular file" in out["msg"]


def test_a_link_is_made_repointed_by_rename_and_left_alone_when_it_points_right(tmp_path, capsys):
    link = tmp_path / ".venv"
    rc, out = run(capsys, [entry(link, state="link", src="../venvs/a")])
    assert (rc, out["changed_paths"], os.readlink(link)) == (0, [str(link)], "../venvs/a")
    rc, out = run(capsys, [entry(link, state="link", src="../venvs/b")])
    assert (out["changed_paths"], os.readlink(link)) == ([str(link)], "../venvs/b")
    rc, out = run(capsys, [entry(link, state="link", src="../venvs/b")])
    assert out["changed"] is False
    assert sorted(os.listdir(tmp_path)) == [".venv"]


def test_absent_removes_a_directory_with_everything_in_it_and_a_directory_follows(tmp_path, capsys):
    partial = tmp_path / "r1.partial"
    (partial / "pkg").mkdir(parents=True)
    (partial / "pkg" / "mod.py").write_text("x = 1\n")
    rc, out = run(capsys, [entry(partial, state="absent"), entry(partial, state="directory", mode="0755")])
    assert rc == 0, out
    assert (out["changed_paths"], os.listdir(partial)) == ([str(partial), str(partial)], [])


def test_append_creates_the_file_with_its_mode_then_adds_at_the_end_keeping_the_mode(tmp_path, capsys):
    history = tmp_path / "history.jsonl"
    rc, out = run(capsys, [entry(history, state="append", content='{"n": 1}\n', mode="0640")])
    assert (rc, out["changed_paths"], mode_of(history)) == (0, [str(history)], "0640")
    os.chmod(history, 0o600)
    rc, out = run(capsys, [entry(history, state="append", content='{"n": 2}\n', mode="0644")])
    assert (rc, out["changed"]) == (0, True)
    assert history.read_text() == '{"n": 1}\n{"n": 2}\n' and mode_of(history) == "0600"


def test_append_in_check_mode_writes_nothing(tmp_path, capsys):
    rc, out = run(capsys, [entry(tmp_path / "log", state="append", content="x\n")], _ansible_check_mode=True)
    assert (rc, out["changed_paths"]) == (0, [str(tmp_path / "log")]) and not (tmp_path / "log").exists()


def test_a_directory_with_parents_is_made_with_its_missing_parents(tmp_path, capsys):
    deep = tmp_path / "var" / "lib" / "textfiles"
    rc, out = run(capsys, [entry(deep, state="directory", parents=True, mode="0755")])
    assert (rc, out["changed_paths"], mode_of(deep)) == (0, [str(deep)], "0755")
    rc, out = run(capsys, [entry(tmp_path / "a" / "b", state="directory")])
    assert rc != 0 and "parent directory does not exist" in out["msg"] and not (tmp_path / "a").exists()


def _archive(path, members):
    """A .tar.gz at path; members are (name, kind, mode, payload), kind in file, dir, sym, lnk, fifo."""
    with tarfile.open(path, "w:gz") as archive:
        for name, kind, mode, payload in members:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime = mode, 1_600_000_000
            data = None
            if kind == "file":
                data = io.BytesIO(payload.encode())
                info.size = len(payload)
            else:
                info.type = {"dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "lnk": tarfile.LNKTYPE,
                             "fifo": tarfile.FIFOTYPE}[kind]
                info.linkname = payload or ""
            archive.addfile(info, data)
    return str(path)


def test_unpacked_writes_the_tree_with_its_modes_less_group_and_other_write_and_leaves_out_the_excluded(tmp_path, capsys):
    dest = tmp_path / "release"
    dest.mkdir()
    (dest / ".release.json").write_text("ours\n")
    source = _archive(tmp_path / "code.tar.gz", [
        ("./", "dir", 0o777, None),
        ("./pkg", "dir", 0o777, None),
        ("./pkg/app.py", "file", 0o666, "app = 1\n"),
        ("./run.sh", "file", 0o775, "#!/bin/sh\n"),
        ("./secret.txt", "file", 0o640, "s\n"),
        ("./pkg/static", "sym", 0o777, "../assets"),
        ("./pkg/again.py", "lnk", 0o644, "pkg/app.py"),
        ("./.release.json", "file", 0o644, "theirs\n"),
        ("./.venv/bin/python", "file", 0o755, "x"),
        ("./deep/.venv/lib/x.py", "file", 0o644, "x"),
        ("./deep/kept.py", "file", 0o644, "k\n"),
    ])
    rc, out = run(capsys, [entry(dest, state="unpacked", src=source, exclude=[".venv", ".release.json"])])
    assert rc == 0, out
    assert out["changed_paths"] == [str(dest)]
    assert (dest / "pkg" / "app.py").read_text() == "app = 1\n" and (dest / "deep" / "kept.py").read_text() == "k\n"
    assert (mode_of(dest), mode_of(dest / "pkg"), mode_of(dest / "pkg" / "app.py")) == ("0755", "0755", "0644")
    assert (mode_of(dest / "run.sh"), mode_of(dest / "secret.txt")) == ("0755", "0640")
    assert os.readlink(dest / "pkg" / "static") == "../assets"
    assert os.stat(dest / "pkg" / "again.py").st_ino == os.stat(dest / "pkg" / "app.py").st_ino
    assert os.stat(dest / "pkg" / "app.py").st_mtime == 1_600_000_000
    assert (dest / ".release.json").read_text() == "ours\n"
    assert not (dest / ".venv").exists() and not (dest / "deep" / ".venv").exists()


@pytest.mark.parametrize("members", [
    [("../escaped", "file", 0o644, "x")],
    [("/tmp/escaped", "file", 0o644, "x")],
    [("out", "sym", 0o777, "{outside}"), ("out/escaped", "file", 0o644, "x")],
    [("out", "sym", 0o777, "{outside}"), ("out/new/escaped", "file", 0o644, "x")],
    [("out", "sym", 0o777, "{outside}"), ("escaped", "lnk", 0o644, "out/target")],
], ids=["dot-dot", "absolute", "through-a-link", "new-directory-through-a-link", "hard-link-through-a-link"])
def test_unpacked_refuses_a_member_that_would_land_outside(tmp_path, capsys, members):
    dest, outside = tmp_path / "release", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (outside / "target").write_text("t\n")
    members = [(name, kind, mode, payload.format(outside=outside) if payload else payload)
               for name, kind, mode, payload in members]
    rc, out = run(capsys, [entry(dest, state="unpacked", src=_archive(tmp_path / "bad.tar.gz", members))])
    assert rc == 1 and "outside" in out["msg"], out
    assert sorted(os.listdir(outside)) == ["target"] and not (tmp_path / "escaped").exists()


def test_unpacked_refuses_a_fifo_and_names_the_member(tmp_path, capsys):
    (tmp_path / "release").mkdir()
    source = _archive(tmp_path / "fifo.tar.gz", [("pipe", "fifo", 0o644, None)])
    rc, out = run(capsys, [entry(tmp_path / "release", state="unpacked", src=source)])
    assert rc == 1 and "pipe is a device or a FIFO" in out["msg"]


def test_unpacked_in_check_mode_reports_a_change_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "release").mkdir()
    source = _archive(tmp_path / "code.tar.gz", [("app.py", "file", 0o644, "x")])
    rc, out = run(capsys, [entry(tmp_path / "release", state="unpacked", src=source)], _ansible_check_mode=True)
    assert (rc, out["changed_paths"], os.listdir(tmp_path / "release")) == (0, [str(tmp_path / "release")], [])


def test_unpacked_names_an_archive_it_cannot_read(tmp_path, capsys):
    (tmp_path / "release").mkdir()
    (tmp_path / "broken.tar.gz").write_bytes(b"not an archive")
    rc, out = run(capsys, [entry(tmp_path / "release", state="unpacked", src=str(tmp_path / "broken.tar.gz"))])
    assert rc == 1 and out["msg"].startswith("%s: cannot unpack %s" % (tmp_path / "release", tmp_path / "broken.tar.gz"))
