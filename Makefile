# One command each, on a fresh Debian bookworm machine: `make demo`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_PACKAGES := zookeeper haproxy nginx docker.io busybox-static wrk
# pymesos needs http-parser, whose shipped parser.c does not compile on Python 3.11: rebuild it
# from its own sdist with a current Cython.
HTTP_PARSER := 0.9.0
PYTEST_ARGS ?=
# `make demo` runs these in order on one dev cluster, then shows its status and takes it down.
# demo-registrator leaves the registrator running for the later steps; demo-registrator-stop ends it.
DEMO_STEPS := demo-registrator demo-render demo-autoscale demo-framework

.PHONY: bootstrap apt test demo $(DEMO_STEPS) demo-registrator-stop bench lint clean

bootstrap: apt $(VENV)/.installed $(VENV)/.consul

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing" $$missing; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(VENV)/wheels/.built:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel cython
	rm -rf $(VENV)/build && mkdir -p $(VENV)/build $(VENV)/wheels
	$(BIN)/pip download -q --no-deps --no-binary :all: -d $(VENV)/build http-parser==$(HTTP_PARSER)
	tar -xzf $(VENV)/build/http-parser-$(HTTP_PARSER).tar.gz -C $(VENV)/build
	cd $(VENV)/build/http-parser-$(HTTP_PARSER) && ../../bin/cython -3 http_parser/parser.pyx \
	  && ../../bin/pip wheel -q --no-deps --no-build-isolation -w ../../wheels .
	touch $@

$(VENV)/.installed: setup.cfg pyproject.toml $(VENV)/wheels/.built
	$(BIN)/pip install -q --find-links $(VENV)/wheels -e '.[test]'
	touch $@

# Consul 1.8.7 is Debian 11's (bookworm dropped it): fetched by apt with a private configuration
# derived from this machine's own Debian source, unpacked into the virtualenv; nothing else changes.
$(VENV)/.consul: devcluster/fetch_consul.py $(VENV)/.installed
	$(PYTHON) devcluster/fetch_consul.py $(VENV)
	touch $@

test: bootstrap
	$(BIN)/pytest $(PYTEST_ARGS)

# The demo keeps its cluster apart from any you run yourself.
demo: export WHARF_STATE_DIR := $(CURDIR)/.wharf/demo
demo: bootstrap
	$(BIN)/wharf dev up
	@for step in $(DEMO_STEPS); do \
	  $(MAKE) --no-print-directory $$step || { $(MAKE) --no-print-directory demo-registrator-stop; \
	    $(BIN)/wharf dev down --purge; exit 1; }; \
	done
	@$(MAKE) --no-print-directory demo-registrator-stop
	$(BIN)/wharf dev status; rc=$$?; $(BIN)/wharf dev down --purge; exit $$rc

# Each demo-<room> expects a running dev cluster (WHARF_STATE_DIR, exported by `demo`).
# Consul -> HAProxy and nginx: web answers by its vhost through both; a scale-up reaches HAProxy
# through the Runtime API with no reload.
demo-render:
	$(BIN)/python -m consul_templates.demo

# wrk load through HAProxy scales the demo's web up, and down again once the load stops.
demo-autoscale:
	$(BIN)/python -m autoscale.demo

# Two schedulers, a batch run to FINISHED, the leader SIGKILLed, the standby taking over.
demo-framework:
	$(BIN)/python -m framework.demo

# The registrator against the dev cluster's Docker engine and Consul, in the background until
# demo-registrator-stop: every container the demo runs (Marathon's tasks included) appears in
# Consul with its health. It also runs one web container of its own with SERVICE_* labels.
REGISTRATOR_PID = $(WHARF_STATE_DIR)/registrator.pid
demo-registrator:
	@test -n "$(WHARF_STATE_DIR)" || { echo "demo-registrator: WHARF_STATE_DIR is not set (run make demo)"; exit 2; }
	@eval "$$($(BIN)/wharf dev env)"; \
	if ! { test -f $(REGISTRATOR_PID) && kill -0 $$(cat $(REGISTRATOR_PID)) 2>/dev/null; }; then \
	  $(BIN)/wharf registrator run --resync 30 --metrics-port $$($(BIN)/python -c 'from devcluster.process import free_port; print(free_port())') \
	    >$(WHARF_STATE_DIR)/registrator.log 2>&1 & echo $$! > $(REGISTRATOR_PID); \
	fi; \
	port=$$($(BIN)/python -c 'from devcluster.process import free_port; print(free_port())'); \
	docker rm -f demo-web >/dev/null 2>&1; \
	docker run -d --name demo-web --network host --expose $$port -l SERVICE_NAME=demo-web -l SERVICE_TAGS=demo \
	  -l SERVICE_CHECK_HTTP=/ -l SERVICE_CHECK_INTERVAL=1s wharf/busybox:latest \
	  sh -c "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 127.0.0.1:$$port -h /www" >/dev/null && \
	healthy='import json, sys; rows = json.load(sys.stdin); sys.exit(not any(r["name"] == "demo-web" and r["health"] == "passing" for r in rows))'; \
	for i in $$(seq 150); do \
	  $(BIN)/wharf registrator list --json | $(BIN)/python -c "$$healthy" && break; sleep 0.2; done; \
	echo "services registered in Consul by the registrator:"; $(BIN)/wharf registrator list; \
	$(BIN)/wharf registrator list --json | $(BIN)/python -c "$$healthy" || { echo "demo-web is not passing in Consul"; exit 1; }

demo-registrator-stop:
	@eval "$$($(BIN)/wharf dev env)"; \
	echo "services in Consul at the end of the demo:"; $(BIN)/wharf registrator list; \
	docker rm -f demo-web >/dev/null 2>&1; \
	if test -f $(REGISTRATOR_PID); then kill $$(cat $(REGISTRATOR_PID)) 2>/dev/null; rm -f $(REGISTRATOR_PID); fi; true

bench: bootstrap
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .wharf
