#!/usr/bin/env bash
# Run ansible-test (sanity, units) against a copy of the collection laid out as
# ansible_collections/pyfleet/deploy, which ansible-test requires. Only files
# git tracks (or would track) are copied: no caches, no test-bed state.
#
#   scripts/ansible-test.sh sanity [ansible-test options]
#   scripts/ansible-test.sh units  [ansible-test options]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Outside the repository: inside it, ansible-test would ask git, which ignores .cache/.
# One per command: make test runs sanity and units side by side. One per
# checkout too, so that two clones can run it at the same time.
BASE=${PYFLEET_ANSIBLE_TEST_DIR:-${TMPDIR:-/tmp}/pyfleet-ansible-test-$(printf %s "$ROOT" | sha256sum | cut -c1-12)}/$1
TREE="$BASE/ansible_collections/pyfleet/deploy"
rm -rf "$BASE"
mkdir -p "$TREE"
# ansible-test keeps its sanity venvs and caches under ~/.ansible/test: keep
# them in the repository's cache, so nothing of the user's home counts.
export HOME="$ROOT/.cache/ansible-test-home/$1"
mkdir -p "$HOME"
cd "$ROOT"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' file; do
      [[ -e "$file" ]] && cp --parents -P -- "$file" "$TREE/"
    done
# ansible-test fetches a pip bootstrap script from a host we cannot reach;
# give it a local stand-in (scripts/get_pip_bootstrap.py), refreshed on every run.
PIP_VERSION=$(grep -oP "pip='\K[0-9.]+" "$(python3 -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py" | head -1)
CACHED="$HOME/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py"
install -D -m 0644 "$ROOT/scripts/get_pip_bootstrap.py" "$CACHED"
cd "$TREE"
PYTHON_VERSION=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
exec ansible-test "$1" --venv --python "$PYTHON_VERSION" --color no "${@:2}"
