# pyfleet.deploy - `make test` and `make demo` work on a fresh Debian host as root.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      := .venv
BIN       := $(CURDIR)/$(VENV)/bin
PYTHON    ?= python3
# The order make molecule pipelines them in (scripts/molecule-pipeline.sh): the
# scenario whose verifiers leave the most CPU idle first, the busiest last.
# tests/unit/test_make.py checks that it names every scenario.
SCENARIOS ?= fleet default acme
export PATH := $(BIN):$(PATH)
# Hermetic: Ansible, Molecule and the tools read and write only under the
# repository. This collection resolves from a link to the repo in
# .cache/ansible/collections (where Molecule and ansible-lint look first, and
# find it instead of installing a copy), community collections from the pinned
# `ansible` package in the venv; nothing in ~/.ansible, ~/.cache or
# /usr/share/ansible counts.
CACHE     := $(CURDIR)/.cache
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
export ANSIBLE_HOME := $(CACHE)/ansible
export ANSIBLE_COLLECTIONS_PATH := $(ANSIBLE_HOME)/collections
export ANSIBLE_ROLES_PATH := $(CACHE)/roles
export ANSIBLE_LOCAL_TEMP := $(CACHE)/ansible/tmp
export XDG_CACHE_HOME := $(CACHE)/xdg
export XDG_CONFIG_HOME := $(CACHE)/xdg-config
export PIP_CACHE_DIR := $(CACHE)/pip
export UV_CACHE_DIR := $(CACHE)/uv
export ANSIBLE_CONFIG := $(CURDIR)/.config/ansible.cfg
# Wheels a machine happens to keep elsewhere must not decide what installs.
unexport PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_NO_INDEX PIP_CONSTRAINT PYTHONPATH
unexport UV_INDEX UV_INDEX_URL UV_DEFAULT_INDEX UV_EXTRA_INDEX_URL UV_FIND_LINKS UV_NO_INDEX UV_CONSTRAINT UV_OVERRIDE UV_CONFIG_FILE
COLLECTION_LINK := $(ANSIBLE_COLLECTIONS_PATH)/ansible_collections/pyfleet/deploy
LOGS      := $(CACHE)/logs
export MOLECULE_NO_LOG := false
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0

.PHONY: help test test-fast collection-link host venv image lint unit integration ansible-test ansible-sanity ansible-units molecule build demo demo-clean bench bench-speed lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

test: venv ## Lint, unit tests, ansible-test sanity and units, collection build and every Molecule scenario
	@mkdir -p $(LOGS); : > $(LOGS)/phases.txt
	@# The host images first, on their own (make image; reused when current):
	@# on a new machine, debootstrap beside the read-only checks made the first
	@# scenario's build 290 s instead of about 200 s.
	@started=$$(date +%s); $(MAKE) --no-print-directory image; echo "  image: $$(($$(date +%s) - started)) s, before the others" >>$(LOGS)/phases.txt
	@# The scenarios run pipelined, shown as they run (make molecule). lint,
	@# integration, ansible-test sanity and build only read the tree and run
	@# beside them at the lowest priority, in the time the scenarios leave the
	@# CPUs idle (scripts/run-phases.sh). ansible-test units runs at the normal
	@# priority: its tests count probe attempts against deadlines, and at the
	@# lowest, beside a scenario's low-priority build, a 1.5 s deadline saw 2.
	@bash scripts/run-phases.sh $(LOGS) --follow molecule ansible-units --low lint integration build ansible-sanity
	@echo "=== make test passed; time per phase:"; cat $(LOGS)/phases.txt
	@echo "=== Molecule scenarios, each with its testinfra verifiers' summary:"; cat $(LOGS)/summary.txt

test-fast: lint unit molecule-default ## Everyday loop: lint, unit and bad-input tests, and the default scenario

host: ## Install apt packages and start the Docker engine (root)
	bash scripts/bootstrap-host.sh

# uv installs the same pinned set as pip would, in about 5 s instead of 40 s
# (measured on a new venv with an empty cache); --no-config: no uv.toml of the
# machine or the user counts.
UV_VERSION := 0.13.9
$(VENV)/.installed: requirements-dev.txt | host
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --no-config --python $(BIN)/python -r requirements-dev.txt
	touch $@

# The collection under test, as Ansible looks it up: ansible_collections/pyfleet/deploy -> the repo.
# Made on every run: a tool that finds a stale copy or link there replaces it.
collection-link:
	@mkdir -p $(dir $(COLLECTION_LINK)) $(ANSIBLE_HOME)/tmp $(ANSIBLE_ROLES_PATH)
	@if [[ "$$(readlink -f $(COLLECTION_LINK))" != "$(CURDIR)" ]]; then rm -rf $(COLLECTION_LINK); ln -s $(CURDIR) $(COLLECTION_LINK); fi

venv: $(VENV)/.installed collection-link ## Create the pinned tool environment and link the collection into .cache/ansible/collections

# A scenario, the demo or the bench builds the images it needs when it creates
# hosts from them (molecule/resources/create.yml); this builds all of them
# ahead: Debian 13 beside Debian 12, then the services image from Debian 12's
# (build.sh services builds Debian 12 first).
image: host ## Build (or reuse) the local Debian 12 and 13 host images and the services host's
	@bash molecule/resources/image/build.sh trixie & trixie=$$!; \
	  bash molecule/resources/image/build.sh services; services=$$?; \
	  wait $$trixie && exit $$services

lint: venv ## yamllint and ansible-lint (production profile)
	yamllint -s .
	ansible-lint --offline
	antsibull-changelog lint

unit: venv ## pytest: plugin unit tests and bad-input tests
	pytest -q -n auto tests

# What `make test` runs beside ansible-test, which runs tests/unit itself
# (`ansible-test units`): the unit tests once, not twice.
integration: venv ## pytest: the bad-input battery and the example inventory (tests/integration)
	pytest -q -n auto tests/integration

ansible-test: ansible-sanity ansible-units ## ansible-test sanity and units, on a copy laid out as ansible_collections/pyfleet/deploy

ansible-sanity: venv ## ansible-test sanity
	bash scripts/ansible-test.sh sanity

ansible-units: venv ## ansible-test units (tests/unit)
	bash scripts/ansible-test.sh units

build: venv ## Build the collection tarball into .cache/dist
	ansible-galaxy collection build --force --output-path .cache/dist

# One scenario's verifiers run while the next scenario's hosts are built at
# the lowest priority (scripts/molecule-pipeline.sh; converging two scenarios
# side by side at the same priority was slower on two cores, see the README).
# Each scenario's output is kept in .cache/logs/<scenario>.log; the run ends
# with each stage's time and the summary line of each scenario's verifiers.
molecule: venv host ## Run every Molecule scenario
	@bash scripts/molecule-pipeline.sh $(LOGS) $(SCENARIOS)

molecule-%: venv host ## Run one Molecule scenario, e.g. make molecule-fleet
	molecule test -s $*

demo: venv host build ## Deploy the example app on a local host and show it over HTTPS
	bash scripts/demo.sh

demo-clean: ## Remove the demo host
	docker rm -f pyfleet-demo >/dev/null 2>&1 || true

bench: venv host ## Zero-downtime benchmark on the fleet hosts (about 20 min)
	molecule destroy -s fleet
	molecule create -s fleet
	molecule converge -s fleet
	molecule side-effect -s fleet
	molecule destroy -s fleet

bench-speed: venv host ## Rollout seconds, 3 and 12 hosts, this tree beside the 0.4.0 engine (about 35 min)
	python bench/rollout_speed.py

lock: ## Re-resolve requirements-dev.in into requirements-dev.txt
	rm -rf .cache/lockvenv && $(PYTHON) -m venv .cache/lockvenv
	.cache/lockvenv/bin/pip install --quiet -r requirements-dev.in
	{ echo "# Generated by 'make lock' from requirements-dev.in. Do not edit."; .cache/lockvenv/bin/pip freeze; } > requirements-dev.txt

clean: demo-clean ## Remove the tool environment and caches
	rm -rf $(VENV) .cache
