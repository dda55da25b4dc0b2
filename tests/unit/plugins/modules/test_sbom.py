# SPDX-License-Identifier: GPL-3.0-or-later
# Copyright (c) pyfleet.deploy developers
from __future__ import annotations

import glob
import json
import os
import stat
import sys
import textwrap

import pytest

from ansible_collections.pyfleet.deploy.plugins.modules import sbom

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from module_runner import run_main  # noqa: E402


def run(capsys, **args):
    return run_main(sbom.main, capsys, args)


def _dist(site, name, version, *headers):
    info = site / ("%s-%s.dist-info" % (name.replace("-", "_"), version))
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.4", "Name: %s" % name, "Version: %s" % version] + list(headers)
    (info / "METADATA").write_text("\n".join(lines) + "\n\nA long description.\n", encoding="utf-8")


@pytest.fixture
def venv(tmp_path):
    site = tmp_path / "venv" / "lib" / "python3.13" / "site-packages"
    _dist(site, "FastAPI", "0.165.0", "Summary: FastAPI framework", "License-Expression: MIT",
          "Requires-Dist: starlette<0.50,>=0.40", "Requires-Dist: pydantic>=2",
          "Requires-Dist: uvicorn[standard]>=0.12; extra == \"all\"",
          "Project-URL: Homepage, https://github.com/fastapi/fastapi")
    _dist(site, "starlette", "0.48.0", "License: BSD-3-Clause", "Requires-Dist: anyio<5,>=3.6.2",
          "Requires-Dist: typing_extensions>=4.10; python_version < \"3.13\"")
    _dist(site, "pydantic_core", "2.41.1", "Classifier: License :: OSI Approved :: MIT License",
          "Home-page: https://github.com/pydantic/pydantic-core")
    _dist(site, "anyio", "4.11.0")
    return tmp_path / "venv"


def test_lists_each_package_with_its_purl_license_and_home_page(venv, capsys):
    dest = venv / ".sbom.cdx.json"
    rc, out = run(capsys, venv=str(venv), dest=str(dest), name="demo", version="5f1c0e7a2b3d")
    assert (rc, out["changed"], out["components"]) == (0, True, 4)
    bom = json.loads(dest.read_text(encoding="utf-8"))
    by_name = {component["name"]: component for component in bom["components"]}
    assert by_name["FastAPI"]["purl"] == "pkg:pypi/fastapi@0.165.0"
    assert by_name["pydantic_core"]["purl"] == "pkg:pypi/pydantic-core@2.41.1"
    assert by_name["FastAPI"]["licenses"] == [{"expression": "MIT"}]
    assert by_name["starlette"]["licenses"] == [{"license": {"name": "BSD-3-Clause"}}]
    assert by_name["pydantic_core"]["licenses"] == [{"license": {"name": "MIT License"}}]
    assert "licenses" not in by_name["anyio"]
    assert by_name["FastAPI"]["externalReferences"] == [{"type": "website", "url": "https://github.com/fastapi/fastapi"}]
    assert by_name["FastAPI"]["description"] == "FastAPI framework"
    assert bom["metadata"]["component"] == {"type": "application", "bom-ref": "pyfleet:demo", "name": "demo",
                                            "version": "5f1c0e7a2b3d"}
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o644


def test_links_installed_requirements_but_not_those_of_an_extra(venv, capsys):
    dest = venv / ".sbom.cdx.json"
    run(capsys, venv=str(venv), dest=str(dest))
    graph = {entry["ref"]: entry["dependsOn"] for entry in json.loads(dest.read_text(encoding="utf-8"))["dependencies"]}
    assert graph["pkg:pypi/fastapi@0.165.0"] == ["pkg:pypi/starlette@0.48.0"]  # pydantic is not installed, uvicorn only with [all]
    assert graph["pkg:pypi/starlette@0.48.0"] == ["pkg:pypi/anyio@4.11.0"]
    assert len(graph["pyfleet:virtualenv"]) == 4


def test_the_sbom_is_valid_cyclonedx_1_6(venv, capsys):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    dest = venv / ".sbom.cdx.json"
    run(capsys, venv=str(venv), dest=str(dest), name="demo", version="5f1c0e7a2b3d")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(dest.read_text(encoding="utf-8")) is None


def test_the_sbom_of_this_test_environment_is_valid_and_lists_what_pip_sees(tmp_path, capsys):
    """A real virtualenv: the one running these tests, with its many metadata styles."""
    import importlib.metadata

    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    sites = glob.glob(os.path.join(sys.prefix, "lib", "python*", "site-packages"))
    installed = {"pkg:pypi/%s@%s" % (sbom.normalize_name(dist.metadata["Name"]), dist.version)
                 for dist in importlib.metadata.distributions(path=sites)}
    dest = tmp_path / "bom.json"
    rc, out = run(capsys, venv=sys.prefix, dest=str(dest))
    text = dest.read_text(encoding="utf-8")
    assert rc == 0 and len(installed) > 10
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    assert {component["purl"] for component in json.loads(text)["components"]} == installed


def test_the_same_packages_again_change_nothing(venv, capsys):
    dest = venv / ".sbom.cdx.json"
    run(capsys, venv=str(venv), dest=str(dest))
    before = dest.read_bytes()
    rc, out = run(capsys, venv=str(venv), dest=str(dest))
    assert (rc, out["changed"], dest.read_bytes()) == (0, False, before)


def test_a_new_package_rewrites_it_and_leaves_no_temporary_file(venv, capsys):
    dest = venv / ".sbom.cdx.json"
    run(capsys, venv=str(venv), dest=str(dest))
    _dist(venv / "lib" / "python3.13" / "site-packages", "itsdangerous", "2.2.0")
    rc, out = run(capsys, venv=str(venv), dest=str(dest))
    assert (rc, out["changed"], out["components"]) == (0, True, 5)
    assert sorted(os.listdir(venv)) == [".sbom.cdx.json", "lib"]


def test_an_empty_virtualenv_is_refused_by_name(tmp_path, capsys):
    (tmp_path / "venv").mkdir()
    rc, out = run(capsys, venv=str(tmp_path / "venv"), dest=str(tmp_path / "bom.json"))
    assert rc == 1 and "has no installed distribution" in out["msg"] and str(tmp_path / "venv") in out["msg"]
    assert not (tmp_path / "bom.json").exists()


def test_check_mode_writes_nothing(venv, capsys):
    dest = venv / ".sbom.cdx.json"
    rc, out = run(capsys, venv=str(venv), dest=str(dest), _ansible_check_mode=True)
    assert (rc, out["changed"], dest.exists()) == (0, True, False)


def test_a_multi_line_license_text_is_not_taken_for_a_name(tmp_path, capsys):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    _dist(site, "oldpkg", "1.0", "License: " + textwrap.indent("Copyright 2000\nPermission is granted", "        ").strip(),
          "Classifier: License :: OSI Approved :: Apache Software License")
    run(capsys, venv=str(tmp_path / "venv"), dest=str(tmp_path / "bom.json"))
    component = json.loads((tmp_path / "bom.json").read_text(encoding="utf-8"))["components"][0]
    assert component["licenses"] == [{"license": {"name": "Apache Software License"}}]
