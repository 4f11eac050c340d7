# virtkit.guests: one-command set-up, demo and tests on a Debian 12 host (as root).
#   make demo   - install what is missing, start the daemons, boot a small guest
#   make test   - sanity + unit + integration (what CI runs through .ci/run)
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

.PHONY: help setup services image demo demo-clean test sanity lint unit integration benchmark testroot clean

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

setup:
	@scripts/setup-host.sh all

services:
	@scripts/setup-host.sh services

image: setup
	@tests/images/build-tiny-image.sh "$(IMAGE_DIR)"

demo: image
	ansible-playbook -i localhost, -c local playbooks/demo.yml

demo-clean: setup
	ansible-playbook -i localhost, -c local playbooks/demo.yml -e virtkit_demo_state=absent

# ansible-test must run from .../ansible_collections/virtkit/guests: a copy of the tree.
testroot:
	@mkdir -p $(TESTROOT)
	@rsync -a --delete --exclude .venv --exclude .build --exclude .git --exclude tests/output \
	  --exclude __pycache__ --exclude .pytest_cache --exclude benchmarks/results \
	  $(ROOT)/ $(TESTROOT)/

test: setup
	$(MAKE) sanity
	$(MAKE) unit
	$(MAKE) integration
	@echo "make test: all suites passed"

sanity: setup testroot
	cd $(TESTROOT) && ansible-test sanity --python 3.11 --requirements --color no
	ansible-lint --profile production --offline

lint: setup
	ansible-lint --profile production --offline

unit: setup
	cd $(ROOT) && $(PY) -m pytest -p no:cacheprovider -q tests/unit

integration: image testroot
	cd $(TESTROOT) && ansible-test integration --python 3.11 --local --color no $(INTEGRATION_TARGETS)

benchmark: image
	$(PY) benchmarks/run.py

clean:
	rm -rf $(BUILD) tests/output
