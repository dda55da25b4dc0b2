#!/usr/bin/python
# SPDX-License-Identifier: GPL-3.0-or-later
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Copyright (c) pyfleet.deploy developers

from __future__ import annotations

DOCUMENTATION = r"""
module: sbom
short_description: Describe the packages of a Python virtualenv in a CycloneDX SBOM
version_added: 0.5.0
author: pyfleet.deploy developers (@pyfleet-deploy)
description:
  - Writes a CycloneDX 1.6 JSON SBOM of every distribution installed in a virtualenv.
  - It reads the installed packages' metadata (C(*.dist-info/METADATA)) under the virtualenv's
    C(lib/python*/site-packages), with the host's own Python. It runs no code of the virtualenv
    and needs no SBOM tool on the host, so it costs no download and no second virtualenv.
  - Each component is a library with its name and version, a C(pkg:pypi) package URL, its summary,
    its licenses and its home page. Licenses come from C(License-Expression) when the package
    declares one, else from its C(License) field, else from its C(License ::) classifiers.
  - The C(dependencies) section links each package to the packages it requires that are installed.
    Requirements that apply only with an extra are left out.
  - The file is written to a temporary name and renamed, so a reader never sees a partial SBOM.
    When the file already lists the same components, nothing is written.
options:
  venv:
    description:
      - The virtualenv to describe.
    type: path
    required: true
  dest:
    description:
      - Where to write the SBOM.
    type: path
    required: true
  name:
    description:
      - Name of the component the SBOM describes (C(metadata.component)), for example the app's.
    type: str
    default: virtualenv
  version:
    description:
      - Version of that component, for example the lock hash of the virtualenv.
    type: str
    default: ""
  mode:
    description:
      - Mode of the written file.
    type: str
    default: "0644"
extends_documentation_fragment:
  - pyfleet.deploy.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
notes:
  - The package URLs follow the purl specification for PyPI, with the name lower-cased and
    C(_) written as C(-).
seealso:
  - name: CycloneDX 1.6 JSON reference
    description: The format this module writes.
    link: https://cyclonedx.org/docs/1.6/json/
"""

EXAMPLES = r"""
- name: Describe the virtualenv's packages
  pyfleet.deploy.sbom:
    venv: /srv/demo/venvs/5f1c0e7a2b3d
    dest: /srv/demo/venvs/5f1c0e7a2b3d/.sbom.cdx.json
    name: demo
    version: 5f1c0e7a2b3d
  become: true
"""

RETURN = r"""
components:
  description: How many packages the SBOM lists.
  returned: always
  type: int
  sample: 16
dest:
  description: The SBOM's path.
  returned: always
  type: str
  sample: /srv/demo/venvs/5f1c0e7a2b3d/.sbom.cdx.json
"""

import datetime
import email.parser
import json
import os
import re
import tempfile
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.pyfleet.deploy.plugins.module_utils.distributions import metadata_paths, normalize_name

SPEC_VERSION = "1.6"


def _licenses(meta):
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return [{"expression": expression}]
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 100 and text.upper() != "UNKNOWN":
        return [{"license": {"name": text}}]
    named = [classifier.split("::")[-1].strip() for classifier in meta.get_all("Classifier") or []
             if classifier.startswith("License ::") and classifier.count("::") >= 2]
    return [{"license": {"name": name}} for name in sorted(set(named))]


def _home_page(meta):
    if meta.get("Home-page"):
        return meta.get("Home-page").strip()
    for entry in meta.get_all("Project-URL") or []:
        label, _sep, url = entry.partition(",")
        if label.strip().lower() in ("homepage", "home", "source", "repository") and url.strip():
            return url.strip()
    return None


def _requires(meta):
    """Names this package requires whatever extras are chosen."""
    names = set()
    for requirement in meta.get_all("Requires-Dist") or []:
        spec, _sep, marker = requirement.partition(";")
        if re.search(r"\bextra\s*==", marker):
            continue
        found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
        if found:
            names.add(normalize_name(found.group(1)))
    return names


def read_distributions(venv):
    """Metadata of each distribution installed in the virtualenv, by normalized name."""
    found = {}
    parser = email.parser.HeaderParser()
    for path in metadata_paths(venv):
        with open(path, encoding="utf-8", errors="replace") as handle:
            meta = parser.parse(handle)
        if meta.get("Name") and meta.get("Version"):
            found[normalize_name(meta.get("Name"))] = meta
    return found


def build(distributions, name, version, now=None, serial=None):
    """The CycloneDX document for these distributions."""
    components, dependencies = [], []
    for key in sorted(distributions):
        meta = distributions[key]
        purl = "pkg:pypi/%s@%s" % (key, meta.get("Version").strip())
        component = {"type": "library", "bom-ref": purl, "name": meta.get("Name").strip(),
                     "version": meta.get("Version").strip(), "purl": purl}
        if (meta.get("Summary") or "").strip():
            component["description"] = meta.get("Summary").strip()
        licenses = _licenses(meta)
        if licenses:
            component["licenses"] = licenses
        home = _home_page(meta)
        if home:
            component["externalReferences"] = [{"type": "website", "url": home}]
        components.append(component)
        needs = sorted(_requires(meta) & set(distributions))
        dependencies.append({"ref": purl, "dependsOn": [
            "pkg:pypi/%s@%s" % (other, distributions[other].get("Version").strip()) for other in needs]})
    root = {"type": "application", "bom-ref": "pyfleet:%s" % name, "name": name}
    if version:
        root["version"] = version
    dependencies.insert(0, {"ref": root["bom-ref"], "dependsOn": [component["bom-ref"] for component in components]})
    return {
        "$schema": "http://cyclonedx.org/schema/bom-%s.schema.json" % SPEC_VERSION,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": "urn:uuid:%s" % (serial or uuid.uuid4()),
        "version": 1,
        "metadata": {
            "timestamp": (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{"type": "application", "name": "pyfleet.deploy.sbom"}]},
            "component": root,
        },
        "components": components,
        "dependencies": dependencies,
    }


def _listed(path):
    """The components and root of an existing SBOM, or None when there is none to compare."""
    try:
        with open(path, encoding="utf-8") as handle:
            old = json.load(handle)
        return old.get("components"), old.get("metadata", {}).get("component")
    except (OSError, ValueError):
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            venv=dict(type="path", required=True),
            dest=dict(type="path", required=True),
            name=dict(type="str", default="virtualenv"),
            version=dict(type="str", default=""),
            mode=dict(type="str", default="0644"),
        ),
        supports_check_mode=True,
    )
    venv, dest = module.params["venv"], module.params["dest"]
    if not os.path.isdir(venv):
        module.fail_json(msg="venv %s is not a directory; the SBOM describes an existing virtualenv." % venv)
    distributions = read_distributions(venv)
    if not distributions:
        module.fail_json(msg="venv %s has no installed distribution (no lib/python*/site-packages/*.dist-info/METADATA)." % venv)
    bom = build(distributions, module.params["name"], module.params["version"])
    result = dict(changed=False, dest=dest, components=len(bom["components"]))
    if _listed(dest) == (bom["components"], bom["metadata"]["component"]):
        result["changed"] = module.set_fs_attributes_if_different(
            module.load_file_common_arguments(dict(path=dest, mode=module.params["mode"])), False)
        module.exit_json(**result)
    result["changed"] = True
    if not module.check_mode:
        directory = os.path.dirname(dest) or "."
        handle, partial = tempfile.mkstemp(prefix=".sbom-", dir=directory)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(bom, out, indent=2)
                out.write("\n")
            os.chmod(partial, int(module.params["mode"], 8))
            os.rename(partial, dest)
        except OSError as error:
            if os.path.exists(partial):
                os.unlink(partial)
            module.fail_json(msg="could not write the SBOM %s: %s" % (dest, error))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
