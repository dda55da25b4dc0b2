# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
"""Release variants of the FastAPI example, for the bench and the fleet scenario."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(PROJECT, "examples", "fastapi")
COLLECTIONS = os.path.join(PROJECT, ".cache", "ansible", "collections")


# Appended to the FastAPI example: it imports and starts, but /health answers 503.
UNHEALTHY_FASTAPI = '''

@app.middleware("http")
async def _health_fails(request, call_next):
    if request.url.path == "/health":
        from fastapi.responses import JSONResponse
        return JSONResponse({"status": "failing"}, status_code=503)
    return await call_next(request)
'''


def variant(work, name, version, extra_code="", app=os.path.join(EXAMPLE, "app"), module="main.py", files=None):
    """Copy a v1 example app (FastAPI by default) to ``work/name``, report ``version``, append ``extra_code``
    to ``module`` (the file that sets APP_VERSION), and write ``files`` ({relative path: text}) over the copy."""
    path = os.path.join(work, name)
    shutil.copytree(app, path, ignore=shutil.ignore_patterns("__pycache__", ".release.json", "staticfiles"))
    for relative, text in (files or {}).items():
        with open(os.path.join(path, relative), "w", encoding="utf-8") as handle:
            handle.write(text)
    main = os.path.join(path, module)
    with open(main, encoding="utf-8") as handle:
        code = handle.read().replace('APP_VERSION = "v1"', 'APP_VERSION = "%s"' % version)
    with open(main, "w", encoding="utf-8") as handle:
        handle.write(code + extra_code)
    return path


def _tree_hash():
    """The collection's own content hash (the tree_hash lookup), imported through the link to this
    checkout that `make venv` keeps in .cache (tests/collection.py names the same one)."""
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    from ansible_collections.pyfleet.deploy.plugins.lookup.tree_hash import tree_hash
    return tree_hash


def release_id(tree, lockfile):
    """The first part of the id the app role computes (<code>-<config>): code and lockfile together."""
    with open(lockfile, "rb") as handle:
        lock_sha = hashlib.sha256(handle.read()).hexdigest()
    return hashlib.sha256(("%s:%s" % (_tree_hash()(tree), lock_sha)).encode()).hexdigest()[:12]


def code_of(release):
    """The code-and-lockfile part of a release id, without the configuration's digest after the last '-'."""
    return release.rsplit("-", 1)[0] if isinstance(release, str) else release
