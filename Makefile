# The front door. `make run` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint invoke openapi clean build synth deploy bench

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
	$(BIN)/ruff check layers functions infra tests
	$(BIN)/ruff format --check layers functions infra tests
	$(BIN)/mypy layers/mailsage/python/mailsage

## invoke: run one handler with a sample event, e.g. make invoke FUNCTION=api EVENT=events/api_send.json
invoke: $(STAMP)
	$(BIN)/mailsage invoke $(FUNCTION) $(EVENT)

## bench: run the benchmarks (issue 6): one table, bench/results.json; figures in bench/RESULTS.md
bench: $(STAMP)
	$(BIN)/python -m bench

## openapi: regenerate functions/api/openapi.json (a test fails when it drifts from the code)
openapi: $(STAMP)
	$(BIN)/python -m mailsage.api > functions/api/openapi.json

# --- AWS deployment (infra/README.md) -------------------------------------------------------
# The CDK CLI is pinned in package.json; the app runs with the virtualenv's python3 (cdk.json).
CDK_ENV    := PATH="$(CURDIR)/$(BIN):$$PATH" CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
NODE_STAMP := node_modules/.package-lock.json

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund

## build: the two Lambda layers under build/layers/ (pip wheels for python3.12/arm64, no Docker)
build: $(STAMP)
	$(BIN)/python -m infra.build_layers

## synth: build, then synthesize the CDK app offline into cdk.out/ (cdk-nag runs on synthesis)
synth: build $(NODE_STAMP)
	$(CDK_ENV) npx cdk synth --no-notices --quiet $(CDK_ARGS)

## deploy: build, then deploy with your AWS credentials, e.g. make deploy CDK_ARGS="-c stage=prod"
deploy: build $(NODE_STAMP)
	$(CDK_ENV) npx cdk deploy --no-notices $(CDK_ARGS)

clean:
	rm -rf $(VENV) .mailsage .pytest_cache build cdk.out
