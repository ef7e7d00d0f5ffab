# Developer entry points. Everything downloaded or started lives in .state/ (git-ignored).
VENV    := .state/venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: up test down status unit bench typecheck

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## up: install what is missing, start Kafka, the registry, PostgreSQL and the services, run the demo
up: $(STAMP)
	$(BIN)/samtykke up

## test: install what is missing, type-check, start the real stack, run every test
test: $(STAMP) typecheck
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

## typecheck: mypy --strict on the package (services/ is importable as samtykke only
## through the install mapping, so mypy sees it through a link in .state/)
typecheck: $(STAMP)
	mkdir -p .state/typecheck && ln -sfn ../../services .state/typecheck/samtykke
	MYPYPATH=.state/typecheck $(BIN)/python -m mypy -p samtykke
