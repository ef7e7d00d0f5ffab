# Developer entry points. Everything downloaded or started lives in .state/ (git-ignored).
VENV    := .state/venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: up test down status unit bench lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## up: install what is missing, start Kafka, the registry, PostgreSQL and the services, run the demo
up: $(STAMP)
	$(BIN)/samtykke up

## test: install what is missing, start the real stack, run every test
test: $(STAMP)
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
	$(BIN)/samtykke bench consent

lint: $(STAMP)
	$(BIN)/python -m mypy services
