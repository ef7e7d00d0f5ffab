# Developer entry points. Everything downloaded or started lives in .state/ (git-ignored).
VENV    := .state/venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: up test down status unit lint bench bench-e2e typecheck monitoring-tools browser-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

## up: install what is missing, start Kafka, the registry, PostgreSQL and the services, run the demo
up: $(STAMP)
	$(BIN)/samtykke up --demo

## monitoring-tools: Prometheus and promtool (the alert-rule tests and the end-to-end metrics
## test run them) and kubectl (the manifests test renders deploy/k8s with its kustomize), from
## Debian when missing; needs root or sudo once per machine
monitoring-tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v kubectl >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  PACKAGES="$$(command -v promtool >/dev/null && command -v prometheus >/dev/null || echo prometheus)"; \
	  PACKAGES="$$PACKAGES $$(command -v kubectl >/dev/null || echo kubernetes-client)"; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$PACKAGES >/dev/null; }

## browser-tools: headless Chromium for the browser tests (tests/browser drives it with Playwright),
## from Debian when missing; Playwright's own browser download is never used; needs root or sudo once
browser-tools:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

## test: install what is missing, type-check, start the real stack, run every test
test: $(STAMP) monitoring-tools browser-tools lint typecheck
	$(BIN)/samtykke stack up
	$(BIN)/python -m pytest -q -rfE

## unit: the pure tests only (no sockets, seconds)
unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

down: $(STAMP)
	$(BIN)/samtykke down

status: $(STAMP)
	$(BIN)/samtykke stack status

bench: $(STAMP)
	$(BIN)/python -m benchmarks consent

## bench-e2e: the whole platform end to end beside the raw floor: rates up to saturation, then a
## replay of 1,000,000 events (about 10 minutes; results in .state/bench/)
bench-e2e: $(STAMP)
	$(BIN)/python -m benchmarks e2e --saturation --rates 500,1000,1250,1500,2000,3000 --seconds 15 --replay 1000000

## lint: ruff (lint, import order, format), configured in pyproject.toml
lint: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

## typecheck: mypy --strict on the package (paths and options in pyproject.toml)
typecheck: $(STAMP)
	$(BIN)/python -m mypy
