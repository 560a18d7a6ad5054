# One command each, on a fresh Debian bookworm machine: `make demo`, `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_PACKAGES := zookeeper haproxy nginx docker.io docker-registry busybox-static wrk prometheus chromium chromium-driver \
	shellcheck
# pymesos needs http-parser, whose shipped parser.c does not compile on Python 3.11: rebuild it
# from its own sdist with a current Cython.
HTTP_PARSER := 0.9.0
PYTEST_ARGS ?=
# `make demo` runs these in order on one dev cluster, then shows its status and takes it down.
# One pipeline: the /web that demo-apps deploys is registered in Consul by the registrator
# (demo-registrator leaves it running), routed by `wharf render run` (demo-render leaves it running),
# rebuilt from a code push (demo-build), scaled by load through HAProxy (demo-autoscale), seen in
# `wharf ui` (demo-trace leaves it running). demo-stop ends the three, at the end and on failure.
DEMO_STEPS := demo-apps demo-jobs demo-registrator demo-render demo-build demo-autoscale demo-drain demo-framework \
	demo-trace

.PHONY: bootstrap apt test demo $(DEMO_STEPS) demo-stop demo-render-stop demo-registrator-stop demo-trace-stop bench lint clean \
	check-vagrant

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
	  $(MAKE) --no-print-directory $$step || { $(MAKE) --no-print-directory demo-stop; \
	    $(BIN)/wharf dev down --purge; exit 1; }; \
	done
	@$(MAKE) --no-print-directory demo-stop
	$(BIN)/wharf dev status; rc=$$?; $(BIN)/wharf dev down --purge; exit $$rc

# Each demo-<room> expects a running dev cluster (WHARF_STATE_DIR, exported by `demo`).
# Consul -> HAProxy and nginx: the deployed /web answers by its vhost through both; `wharf render run`
# stays in the background until demo-render-stop; `wharf apps scale /web` reaches HAProxy through the
# Runtime API with no reload.
demo-render:
	$(BIN)/python -m devcluster.demos.render

demo-render-stop:
	$(BIN)/python -m devcluster.demos.render --stop

# wrk load on /web through HAProxy by its vhost scales it up within its label bounds, and down again
# once the load stops.
demo-autoscale:
	$(BIN)/python -m devcluster.demos.autoscale

# Steady load on /web through HAProxy while `wharf apps scale` takes instances away: they are drained
# before they are killed, and every request's outcome is counted.
demo-drain:
	$(BIN)/python -m devcluster.demos.drain

# `wharf trace /web` through every link; then the registrator stops and /web gets one more instance,
# and the trace names the Consul link, until the registrator runs again. `wharf ui` shows it live
# until demo-trace-stop; its address is the demo's last line before the cluster's status.
demo-trace:
	$(BIN)/python -m devcluster.demos.trace

demo-trace-stop:
	$(BIN)/python -m devcluster.demos.trace --stop

# A git push deploys examples/ (the hooks on a local bare repository), /api before /web.
# Expects a running dev cluster and WHARF_STATE_DIR (the `demo` target sets both).
DEMO_APPS = $(WHARF_STATE_DIR)/apps-demo
demo-apps:
	@test -n "$(WHARF_STATE_DIR)" || { echo "demo-apps: WHARF_STATE_DIR is not set (run make demo)"; exit 2; }
	@set -e; eval "$$($(BIN)/wharf dev env)"; rm -rf $(DEMO_APPS); mkdir -p $(DEMO_APPS); \
	git init -q --bare -b main $(DEMO_APPS)/config.git; \
	echo "== wharf apps hook install $(DEMO_APPS)/config.git --env dev"; \
	$(BIN)/wharf apps hook install $(DEMO_APPS)/config.git --env dev --branch main; \
	cp -r examples $(DEMO_APPS)/tree; rm -r $(DEMO_APPS)/tree/service; cd $(DEMO_APPS)/tree; \
	git init -q -b main; git add -A; \
	git -c user.name=demo -c user.email=demo@localhost commit -q -m "the example apps"; \
	git remote add origin $(DEMO_APPS)/config.git; \
	echo "== git push origin main (the hooks validate, then deploy /api, then /web)"; \
	git push -q origin main; \
	echo "== wharf apps status"; $(CURDIR)/$(BIN)/wharf apps status; \
	echo "== wharf apps plan . --env dev (a second run: nothing to do)"; $(CURDIR)/$(BIN)/wharf apps plan . --env dev

# A code push of examples/service (the hook of `wharf build hook install`): its image built and pushed
# to the dev cluster's registry, its tag written to the config repository of demo-apps, whose hooks
# deploy /web, registered and routed: the new page through HAProxy. Then a build that fails and
# changes nothing. A webhook receiver that the step starts prints every notification.
demo-build:
	@test -n "$(WHARF_STATE_DIR)" || { echo "demo-build: WHARF_STATE_DIR is not set (run make demo)"; exit 2; }
	$(BIN)/python -m devcluster.demos.build --config-repo $(DEMO_APPS)/config.git

# Two schedulers, a batch run to FINISHED, the leader SIGKILLed, the standby taking over.
demo-framework:
	$(BIN)/python -m devcluster.demos.framework

# Chronos jobs: the example jobs synced (only what changed is sent: the push of demo-apps, whose hooks
# run every room's step, has synced them already), the scheduled one run, its dependent after it.
# Expects a running dev cluster and WHARF_STATE_DIR (the `demo` target sets both).
demo-jobs:
	@test -n "$(WHARF_STATE_DIR)" || { echo "demo-jobs: WHARF_STATE_DIR is not set (run make demo)"; exit 2; }
	@set -e; eval "$$($(BIN)/wharf dev env)"; \
	echo "== wharf jobs graph examples --env dev"; $(BIN)/wharf jobs graph examples --env dev; \
	echo "== wharf jobs sync examples --env dev"; $(BIN)/wharf jobs sync examples --env dev; \
	echo "== wharf jobs run nightly-extract --wait (daily-report runs once it succeeds)"; \
	$(BIN)/wharf jobs run nightly-extract --wait --timeout 300; \
	echo "== wharf jobs status"; $(BIN)/wharf jobs status

# The registrator in the background for the later steps, until demo-registrator-stop: the apps the
# deploy step pushed appear in Consul at their agents' addresses, with one web of its own and its check.
demo-registrator:
	$(BIN)/python -m devcluster.demos.registrator

demo-registrator-stop:
	$(BIN)/python -m devcluster.demos.registrator --stop

# Ends the demo's background daemons (each stop runs even if the other fails).
demo-stop:
	-@$(MAKE) --no-print-directory demo-trace-stop
	-@$(MAKE) --no-print-directory demo-render-stop
	-@$(MAKE) --no-print-directory demo-registrator-stop

bench: bootstrap
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The deploy files, offline: `vagrant validate` (Debian's vagrant, no provider needed), shellcheck on
# vagrant/'s scripts, and the systemd units (each ExecStart parsed by wharf's CLI, `systemd-analyze
# verify`: tests/unit/test_deploy_units.py, which `make test` runs too).
check-vagrant: bootstrap
	@dpkg -s vagrant >/dev/null 2>&1 || { echo "check-vagrant: installing vagrant"; $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends vagrant; }
	cd vagrant && VAGRANT_HOME=$(CURDIR)/.wharf/vagrant-home VAGRANT_CHECKPOINT_DISABLE=1 vagrant validate --ignore-provider
	shellcheck vagrant/env vagrant/provision/*.sh
	$(BIN)/pytest -q -p no:cacheprovider tests/unit/test_deploy_units.py

lint: bootstrap
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .wharf
