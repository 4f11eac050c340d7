# virtkit.guests: one-command set-up, demo and tests on a Debian 12 host (as root).
#   make demo   - install what is missing, then provision a Debian VM and two LXC containers with the guests role and show VM vs containers
#   make test   - sanity + unit + integration + molecule (what CI runs through .ci/run)
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV ?= $(ROOT)/.venv
BUILD ?= $(ROOT)/.build
PY := $(VENV)/bin/python
COLLECTIONS := $(BUILD)/collections
TESTROOT := $(BUILD)/test/ansible_collections/virtkit/guests
IMAGE_DIR ?= /var/lib/libvirt/images/virtkit-test
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_FORCE_COLOR ?= 0
export ANSIBLE_NOCOLOR ?= 1
export PATH := $(VENV)/bin:$(PATH)
export VIRTKIT_IMAGE_DIR := $(IMAGE_DIR)
# scripts/setup-host.sh links the collection into $(BUILD)/collections (ansible-lint finds it
# there) and installs the virtualenv in $(VENV): make it use the same places as make.
export VIRTKIT_BUILD := $(abspath $(BUILD))
export VIRTKIT_VENV := $(abspath $(VENV))
export ANSIBLE_PYTHON_INTERPRETER ?= $(VENV)/bin/python

.PHONY: help setup services image debian-image demo demo-clean test sanity lint unit unit-cores integration molecule benchmark testroot clean

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

setup:
	@scripts/setup-host.sh all

services:
	@scripts/setup-host.sh services

image: setup
	@tests/images/build-tiny-image.sh "$(IMAGE_DIR)"

# The Debian 12 cloud-init guest (debootstrap, about 2 minutes once; cached).
debian-image: setup
	@tests/images/build-debian-image.sh "$(IMAGE_DIR)"

# The demo: a Debian KVM guest (the cloud-init image) and two LXC containers, provisioned with
# the guests role and configured through their connections; demo-clean removes every vk-demo-*.
demo: debian-image
	ansible-playbook -i localhost, -c local playbooks/demo.yml

demo-clean: setup
	ansible-playbook -i localhost, -c local playbooks/demo.yml -e virtkit_demo_state=absent

# ansible-test must run from .../ansible_collections/virtkit/guests: a copy of the tree.
# The copy is its own (empty) git repository: otherwise ansible-test finds this repository's
# .git above it, lists files with `git ls-files` there and, since .build is ignored, skips
# every target. In the copy, git lists the untracked files that .gitignore does not exclude.
testroot:
	@mkdir -p $(TESTROOT)
	@rsync -a --delete --filter=':- .gitignore' \
	  --exclude /.git --exclude /.venv --exclude /.build --exclude /.ansible --exclude /.cache \
	  --exclude /tests/output --exclude /benchmarks/results \
	  --exclude __pycache__ --exclude .pytest_cache --exclude '*.py[co]' --exclude '*.tar.gz' \
	  $(ROOT)/ $(TESTROOT)/
	@[ -d $(TESTROOT)/.git ] || git -C $(TESTROOT) init -q
	@# The older ansible-cores (scripts/setup-host.sh cores) where a checkout has them, for the
	@# targets that run with each (ansible-test passes no environment such as VIRTKIT_BUILD).
	@mkdir -p $(TESTROOT)/.build && ln -sfn $(abspath $(BUILD))/cores $(TESTROOT)/.build/cores

test: setup
	$(MAKE) sanity
	$(MAKE) unit
	$(MAKE) integration
	$(MAKE) molecule
	@echo "make test: all suites passed"

sanity: setup testroot
	cd $(TESTROOT) && ansible-test sanity --python 3.11 --requirements --color no
	cd $(ROOT) && ansible-lint --profile production --offline

lint: setup
	cd $(ROOT) && ansible-lint --profile production --offline

unit: setup
	cd $(ROOT) && $(PY) -m pytest -p no:cacheprovider -q tests/unit
	$(MAKE) unit-cores

# What must hold on every ansible-core meta/runtime.yml admits (strings from guests are never
# templates), also with the older cores: the virtualenvs scripts/setup-host.sh cores made in
# $(BUILD)/cores (ansible-core 2.17 and 2.18; the default venv has the newest).
CORE_UNIT_TESTS := tests/unit/plugins/plugin_utils tests/unit/plugins/inventory tests/unit/plugins/module_utils/test_inventory.py

unit-cores: setup
	@cd $(ROOT) && for core in $(BUILD)/cores/*/; do \
	  echo "unit tests with ansible-core $$(basename $$core)"; \
	  $$core/bin/python -m pytest -p no:cacheprovider -q $(CORE_UNIT_TESTS) || exit 1; \
	done

# ansible-test passes the targets no environment of ours (VIRTKIT_IMAGE_DIR does not reach
# them), but it loads tests/integration/integration_config.yml into every target's play:
# image_dir there overrides the targets' defaults, so IMAGE_DIR= picks the images they boot.
integration: image debian-image testroot
	@printf 'image_dir: %s\n' '$(abspath $(IMAGE_DIR))' >$(TESTROOT)/tests/integration/integration_config.yml
	cd $(TESTROOT) && ansible-test integration --python 3.11 --local --allow-destructive --allow-root --color no $(INTEGRATION_TARGETS)

MOLECULE_SCENARIOS ?=

# molecule scenarios of the roles + the infra-repo example (add infra-repo-kvm for the VM variant).
molecule: image
	extensions/molecule/run.sh $(MOLECULE_SCENARIOS)

benchmark: image
	$(PY) benchmarks/run.py

clean:
	rm -rf $(BUILD) tests/output
