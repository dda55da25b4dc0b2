# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.pyfleet.deploy.plugins.modules import deploy_lock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from module_runner import run_main  # noqa: E402
from collection import COLLECTIONS  # noqa: E402  (tests/collection.py)

ROOT = Path(__file__).resolve().parents[4]
ALICE = {"user": "alice", "controller": "ctl1", "release": "abc123", "started": "2026-01-14T10:15:00Z"}


def run(capsys, **args):
    return run_main(deploy_lock.main, capsys, args)


@pytest.fixture
def lock(tmp_path):
    return tmp_path / ".rollout.lock"


def content(path):
    return json.loads(path.read_text())


def test_acquire_creates_a_private_json_lock(lock, capsys):
    rc, out = run(capsys, path=str(lock), owner="r1", info=ALICE)
    assert rc == 0, out
    assert out["changed"] is True
    assert out["path"] == str(lock)
    assert out["broken"] is None
    record = content(lock)
    assert record["owner"] == "r1"
    assert record["info"] == ALICE
    assert record["pid"] > 0
    assert record["created"].endswith("Z") and record["created"][:2] == "20"
    assert out["holder"] == record
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
    assert [p.name for p in lock.parent.iterdir()] == [lock.name]


def test_reacquire_by_same_owner_is_not_a_change(lock, capsys):
    run(capsys, path=str(lock), owner="r1", info=ALICE)
    before = lock.read_bytes()
    rc, out = run(capsys, path=str(lock), owner="r1", info={"release": "other"})
    assert rc == 0, out
    assert out["changed"] is False
    assert out["holder"]["owner"] == "r1"
    assert out["holder"]["info"] == ALICE
    assert lock.read_bytes() == before  # info is not rewritten


def test_other_owner_is_refused_with_holder_info(lock, capsys):
    run(capsys, path=str(lock), owner="r1", info=ALICE)
    before = lock.read_bytes()
    rc, out = run(capsys, path=str(lock), owner="r2", info={"user": "bob"},
                  hint="If it is stale, run again with rollout_break_lock=true")
    assert rc == 1
    assert out["failed"] is True
    assert out["msg"].startswith(
        "deploy lock %s is held by rollout r1 (user alice on ctl1, release abc123, started 2026-01-14T10:15:00Z); "
        "another rollout is in progress. If it is stale, run again with rollout_break_lock=true" % lock
    )
    assert out["holder"]["owner"] == "r1"
    assert out["holder"]["info"] == ALICE
    assert lock.read_bytes() == before


def test_default_hint_and_created_fallback(lock, capsys):
    lock.write_text(json.dumps({"owner": "r1", "info": {}, "created": "2026-01-01T00:00:00Z", "pid": 1}))
    rc, out = run(capsys, path=str(lock), owner="r2")
    assert rc == 1
    assert out["msg"] == (
        "deploy lock %s is held by rollout r1 (started 2026-01-01T00:00:00Z); another rollout is in progress. "
        "If it is stale, break it with force=true." % lock
    )


def test_force_breaks_another_owners_lock(lock, capsys):
    run(capsys, path=str(lock), owner="r1", info=ALICE)
    old = content(lock)
    rc, out = run(capsys, path=str(lock), owner="r2", info={"user": "bob"}, force=True)
    assert rc == 0, out
    assert out["changed"] is True
    assert out["broken"] == old
    assert content(lock)["owner"] == "r2"
    assert content(lock)["info"] == {"user": "bob"}
    assert out["holder"] == content(lock)
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o600
    assert [p.name for p in lock.parent.iterdir()] == [lock.name]  # no temp file left


def test_force_on_own_lock_is_not_a_change(lock, capsys):
    run(capsys, path=str(lock), owner="r1")
    rc, out = run(capsys, path=str(lock), owner="r1", force=True)
    assert rc == 0 and out["changed"] is False and out["broken"] is None


@pytest.mark.parametrize("data", [b"", b"{not json", b"[1, 2]", b'{"info": {}}', b"\xff\xfe"])
def test_corrupt_lock_is_held_by_unknown(lock, capsys, data):
    lock.write_bytes(data)
    rc, out = run(capsys, path=str(lock), owner="r1")
    assert rc == 1
    assert "is held by an unknown rollout" in out["msg"]
    assert out["holder"]["owner"] is None
    assert "corrupt lock file" in out["holder"]["error"]
    assert lock.read_bytes() == data

    rc, out = run(capsys, path=str(lock), owner="r1", force=True)
    assert rc == 0, out
    assert out["changed"] is True
    assert out["broken"]["owner"] is None
    assert content(lock)["owner"] == "r1"


def test_release_by_owner(lock, capsys):
    run(capsys, path=str(lock), owner="r1")
    rc, out = run(capsys, path=str(lock), owner="r1", state="absent")
    assert rc == 0, out
    assert out["changed"] is True
    assert out["holder"] is None and out["broken"] is None
    assert not lock.exists()
    rc, out = run(capsys, path=str(lock), owner="r1", state="absent")
    assert rc == 0 and out["changed"] is False


def test_release_refused_for_other_owner(lock, capsys):
    run(capsys, path=str(lock), owner="r1", info=ALICE)
    rc, out = run(capsys, path=str(lock), owner="r2", state="absent")
    assert rc == 1
    assert "is held by rollout r1 (user alice on ctl1" in out["msg"]
    assert "not by rollout r2; not removing it" in out["msg"]
    assert out["holder"]["owner"] == "r1"
    assert lock.exists()

    rc, out = run(capsys, path=str(lock), state="absent")
    assert rc == 1 and "owner is required" in out["msg"]
    assert lock.exists()

    rc, out = run(capsys, path=str(lock), state="absent", force=True)
    assert rc == 0, out
    assert out["changed"] is True
    assert out["broken"]["owner"] == "r1"
    assert not lock.exists()


def test_check_mode_changes_nothing(lock, capsys):
    rc, out = run(capsys, path=str(lock), owner="r1", _ansible_check_mode=True)
    assert rc == 0, out
    assert out["changed"] is True
    assert out["holder"]["owner"] == "r1"
    assert not lock.exists()

    run(capsys, path=str(lock), owner="r1")
    before = lock.read_bytes()
    rc, out = run(capsys, path=str(lock), owner="r2", force=True, _ansible_check_mode=True)
    assert rc == 0 and out["changed"] is True and out["broken"]["owner"] == "r1"
    rc, out = run(capsys, path=str(lock), owner="r2", _ansible_check_mode=True)
    assert rc == 1 and "held by rollout r1" in out["msg"]
    rc, out = run(capsys, path=str(lock), owner="r1", state="absent", _ansible_check_mode=True)
    assert rc == 0 and out["changed"] is True
    assert lock.read_bytes() == before


def test_parent_missing(tmp_path, capsys):
    path = tmp_path / "missing" / ".rollout.lock"
    rc, out = run(capsys, path=str(path), owner="r1")
    assert rc == 1
    assert out["msg"] == "cannot create deploy lock %s: parent directory %s does not exist" % (path, path.parent)
    assert not path.parent.exists()
    # Nothing to release there.
    rc, out = run(capsys, path=str(path), owner="r1", state="absent")
    assert rc == 0 and out["changed"] is False


def test_path_is_a_directory(tmp_path, capsys):
    rc, out = run(capsys, path=str(tmp_path), owner="r1")
    assert rc == 1 and "is a directory" in out["msg"]


def test_owner_required_for_present(lock, capsys):
    rc, out = run(capsys, path=str(lock))
    assert rc == 1 and "owner" in out["msg"]


def test_create_loses_race(lock, monkeypatch, capsys):
    """Another rollout creates the lock between our read and our O_EXCL create."""
    real_create = deploy_lock.LockFile.create

    def racing_create(self, record):
        lock.write_text(json.dumps({"owner": "fast", "info": {"user": "carol"}}))
        return real_create(self, record)

    monkeypatch.setattr(deploy_lock.LockFile, "create", racing_create)
    rc, out = run(capsys, path=str(lock), owner="slow")
    assert rc == 1
    assert "held by rollout fast (user carol)" in out["msg"]
    assert content(lock)["owner"] == "fast"


def test_end_to_end_subprocess(tmp_path):
    lock = tmp_path / ".rollout.lock"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(COLLECTIONS), os.environ.get("PYTHONPATH")])))

    def module(**args):
        argsfile = tmp_path / "args.json"
        argsfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        proc = subprocess.run(
            [sys.executable, str(ROOT / "plugins" / "modules" / "deploy_lock.py"), str(argsfile)],
            capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=60, check=False,
        )
        return proc.returncode, json.loads(proc.stdout)

    rc, out = module(path=str(lock), owner="r1", info={"user": "alice", "controller": "ctl1"})
    assert rc == 0, out
    assert out["changed"] is True and content(lock)["owner"] == "r1"
    assert content(lock)["pid"] != os.getpid()

    rc, out = module(path=str(lock), owner="r2")
    assert rc == 1
    assert out["failed"] is True
    assert "held by rollout r1 (user alice on ctl1" in out["msg"]
    assert out["holder"]["info"] == {"user": "alice", "controller": "ctl1"}

    rc, out = module(path=str(lock), owner="r1", state="absent")
    assert rc == 0 and out["changed"] is True
    assert not lock.exists()
