# The two set-up commands: `make demo` and `make test`. Both create .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DAGSTER_HOME_DIR := $(CURDIR)/.dagster_home
export DAGSTER_HOME ?= $(DAGSTER_HOME_DIR)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test ui bench lint schema clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	# torch first, pinned: a bare `torch` would pull gigabytes of CUDA wheels
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[ml,ledger,serve,atlas,edge,dev]'
	@touch $@

# node tools run as separate processes (anvil for the RPC ledger tests; see NOTICE)
tools/node_modules/.installed: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

# the Capsule Pin web components, bundled with esbuild (served by the gateway from web/dist/)
web/dist/iv-components.js: web/package.json web/package-lock.json $(wildcard web/src/*.js)
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent

install: $(VENV)/.installed tools/node_modules/.installed web/dist/iv-components.js

$(DAGSTER_HOME_DIR)/dagster.yaml: deploy/dagster.local.yaml
	@mkdir -p $(DAGSTER_HOME_DIR)
	@if [ -f $@ ]; then touch $@; grep -q '^concurrency:' $@ || echo "keeping your $@; the shipped one (run queue limits, pools) is deploy/dagster.local.yaml"; \
	else cp deploy/dagster.local.yaml $@; fi

demo: install $(DAGSTER_HOME_DIR)/dagster.yaml
	$(VENV)/bin/iv demo

test: install
	@scripts/ensure_postgres.sh || echo "PostgreSQL could not be started; its tests will skip (fail under CI)"
	$(PY) -m pytest -q $(PYTEST_ARGS)

ui: install $(DAGSTER_HOME_DIR)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install
	@for b in $$(ls bench/*.py | xargs -n1 basename | sed 's/\.py$$//' | grep -v '^_\|^record$$'); do \
		echo "== bench/$$b.py"; $(PY) bench/record.py $$b || exit 1; done
	$(VENV)/bin/iv docs

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

schema: install
	$(PY) -m iv_pipelines.manifest --write-schema

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
