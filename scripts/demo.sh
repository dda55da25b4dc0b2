#!/usr/bin/env bash
# make demo: deploy the example app onto a local host and show it over HTTPS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HOST=pyfleet-demo
HTTPS_PORT=${PYFLEET_DEMO_HTTPS_PORT:-8443}
HTTP_PORT=${PYFLEET_DEMO_HTTP_PORT:-8080}
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0

echo "== installing the built collection offline into .cache/demo/collections"
tarball=$(ls -t .cache/dist/pyfleet-deploy-*.tar.gz | head -1)
rm -rf .cache/demo/collections
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.cache/demo/collections"
ansible-galaxy collection install --offline --no-deps -p .cache/demo/collections "$tarball" | tail -1

echo "== starting the local host $HOST (ports 127.0.0.1:$HTTP_PORT->80, 127.0.0.1:$HTTPS_PORT->443)"
platforms=$(printf '{"molecule_yml": {"platforms": [{"name": "%s", "published_ports": ["127.0.0.1:%s:80", "127.0.0.1:%s:443"]}]}}' \
  "$HOST" "$HTTP_PORT" "$HTTPS_PORT")
log=$(mktemp)
ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$(command -v python3)" -e "$platforms" \
  molecule/resources/create.yml >"$log" 2>&1 || { cat "$log"; exit 1; }
docker exec "$HOST" apt-get update -qq

echo "== ansible-playbook -i inventories/local pyfleet.deploy.site"
ansible-playbook -i inventories/local pyfleet.deploy.site | tail -4

CA=inventories/local/.pyfleet-ca/ca.crt
CMD="curl --fail --silent --show-error --cacert $CA https://localhost:$HTTPS_PORT/health"
echo
echo "== the app over HTTPS, verified against the internal CA:"
echo "\$ $CMD"
for _ in 1 2 3 4 5; do
  if out=$($CMD); then break; fi
  sleep 1
done
echo "$out"
echo
echo "Remove the demo host with: make demo-clean"
