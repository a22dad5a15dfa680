# The front door. `make run` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint invoke openapi clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,aws,infra,dev]'
	touch $(STAMP)

## run: start the local stack (API on :8025, SMTP sink on :1025) in the foreground
run: $(STAMP)
	$(BIN)/mailsage serve

## test: install what the tests need and run the whole suite
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff and mypy
lint: $(STAMP)
	$(BIN)/ruff check layers functions tests
	$(BIN)/ruff format --check layers functions tests
	$(BIN)/mypy layers/mailsage/python/mailsage

## invoke: run one handler with a sample event, e.g. make invoke FUNCTION=api EVENT=events/api_send.json
invoke: $(STAMP)
	$(BIN)/mailsage invoke $(FUNCTION) $(EVENT)

## openapi: regenerate functions/api/openapi.json (a test fails when it drifts from the code)
openapi: $(STAMP)
	$(BIN)/python -m mailsage.api > functions/api/openapi.json

clean:
	rm -rf $(VENV) .mailsage .pytest_cache
