#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Render each role's variables, from meta/argument_specs.yml, as Markdown.

  role_docs.py            print the tables
  role_docs.py --check F  exit 1 if file F does not hold the current tables
  role_docs.py --write F  replace the tables in file F

The tables sit in F between the markers <!-- role-vars:begin --> and
<!-- role-vars:end -->, so the README cannot drift from the specs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- role-vars:begin -->", "<!-- role-vars:end -->"
ROLES = ["app", "gunicorn", "nginx", "tls", "rollout"]


def _text(value) -> str:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ").strip()


def _default(spec: dict) -> str:
    if spec.get("required"):
        return "**required**"
    if "default" not in spec:
        return "see description"
    value = spec["default"]
    if value == "" or value == [] or value == {}:
        return f"`{value!r}`" if value != "" else '`""`'
    return f"`{yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}`"


def render() -> str:
    out = []
    for role in ROLES:
        spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        main = spec["argument_specs"]["main"]
        out.append(f"### `{role}`\n\n{_text(main['short_description'])}\n")
        out.append("| Variable | Type | Default | Description |")
        out.append("| --- | --- | --- | --- |")
        for name, opt in main["options"].items():
            kind = opt.get("type", "str")
            if kind == "list" and "elements" in opt:
                kind = f"list of {opt['elements']}"
            if "choices" in opt:
                kind += " (" + ", ".join(f"`{c}`" for c in opt["choices"]) + ")"
            out.append(f"| `{name}` | {kind} | {_default(opt)} | {_text(opt.get('description', ''))} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _splice(text: str, tables: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{tables}{END}{tail}"


def main(argv: list[str]) -> int:
    tables = render()
    if len(argv) == 2 and argv[0] in {"--check", "--write"}:
        path = Path(argv[1])
        text = path.read_text()
        if BEGIN not in text or END not in text:
            print(f"{path}: markers {BEGIN} / {END} are missing", file=sys.stderr)
            return 1
        wanted = _splice(text, tables)
        if argv[0] == "--write":
            path.write_text(wanted)
            return 0
        if wanted != text:
            print(f"{path}: role variable tables are stale; run scripts/role_docs.py --write {path}", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(tables)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
