# The front door. `make run` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-interpreters lint invoke openapi clean build synth deploy bench faults stress

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,aws,infra,dev]' -e clients/python
	touch $(STAMP)

# What running needs: the package and the SMTP sink (tens of MB), not the AWS and CDK toolchain.
RUN_STAMP := $(VENV)/.installed-run
$(RUN_STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[local]' -e clients/python
	touch $(RUN_STAMP)

## run: start the local stack (API on :8026, SMTP sink on :1026) in the foreground
run: $(RUN_STAMP)
	$(BIN)/mailsage serve

## test: install what the tests need, lint, and run the whole suite (and the MIME properties under 3.12/3.13)
test: $(STAMP) lint test-interpreters
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=25  # two workers, a file on one of them (some files check at their end what their tests covered); the slowest, to keep CI within its 30 minutes

# The header-safety properties must hold whatever the interpreter's patch level (the email package
# changed between patch releases): they run under the newest pyenv 3.12 and 3.13 too (3.11 is the
# main virtualenv's), each in a small virtualenv of its own with only the runtime dependencies.
PYENV_PYTHONS    := $(foreach minor,3.12 3.13,$(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/$(minor).*/bin/python))))
INTERPRETER_DEPS := $(shell grep -oE '"(pytest|hypothesis)==[^"]+"' pyproject.toml)
INTERPRETER_TESTS := tests/security/test_mime_properties.py tests/unit/test_mime.py

## test-interpreters: the MIME property tests under pyenv's 3.12 and 3.13 (.venv-3.12, .venv-3.13)
test-interpreters:
	@test -n "$(strip $(PYENV_PYTHONS))" || { echo "test-interpreters: no pyenv 3.12 or 3.13 under $(HOME)/.pyenv/versions" >&2; exit 1; }
	@set -e; for py in $(PYENV_PYTHONS); do \
	  venv=.venv-$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  if [ ! -f $$venv/.installed ] || [ pyproject.toml -nt $$venv/.installed ]; then \
	    $$py -m venv $$venv && $$venv/bin/python -m pip install --quiet -e . $(INTERPRETER_DEPS) && touch $$venv/.installed; \
	  fi; \
	  echo "== $$($$venv/bin/python --version): $(INTERPRETER_TESTS)"; \
	  $$venv/bin/python -m pytest -q -p no:cacheprovider --noconftest $(INTERPRETER_TESTS); \
	done

## lint: ruff (style, and complexity: see [tool.ruff.lint] in pyproject.toml) and mypy
lint: $(STAMP)
	$(BIN)/ruff check layers functions infra tests bench clients
	$(BIN)/ruff format --check layers functions infra tests bench clients
	$(BIN)/mypy layers/mailsage/python/mailsage
	$(BIN)/mypy --strict clients/python/src/mailsage_client

## invoke: run one handler with a sample event, e.g. make invoke FUNCTION=api EVENT=events/api_send.json
invoke: $(STAMP)
	$(BIN)/mailsage invoke $(FUNCTION) $(EVENT)

## bench: run the benchmarks: one table, bench/results.json; figures in bench/RESULTS.md
bench: $(STAMP)
	$(BIN)/python -m bench

## faults: only the fault-injection suite (it is part of `make test` too): serve under a foreign lock,
## a full disk, a faulty relay, kill -9 and SIGTERM (README, Reliability)
faults: $(STAMP)
	$(BIN)/python -m pytest -m faults tests/faults

## stress: 10 batches of 1,000 back to back, 20 rounds on fresh servers (long; MAILSAGE_STRESS_ROUNDS=n)
stress: $(STAMP)
	MAILSAGE_STRESS=1 $(BIN)/python -m pytest -s -m stress tests/stress

## openapi: regenerate functions/api/openapi.json (a test fails when it drifts from the code)
openapi: $(STAMP)
	$(BIN)/python -m mailsage.api > functions/api/openapi.json

# --- AWS deployment (infra/README.md) -------------------------------------------------------
# The CDK CLI is pinned in package.json; the app runs with the virtualenv's python3 (cdk.json).
CDK_ENV    := PATH="$(CURDIR)/$(BIN):$$PATH" CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
NODE_STAMP := node_modules/.package-lock.json

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund

## build: the two Lambda layers under build/layers/ (pip wheels for python3.12/arm64, no Docker),
## compiled to bytecode by pyenv's newest 3.12 (infra/build_layers.py --python to choose another)
build: $(STAMP)
	$(BIN)/python -m infra.build_layers

## synth: build, then synthesize the CDK app offline into cdk.out/ (cdk-nag runs on synthesis)
synth: build $(NODE_STAMP)
	$(CDK_ENV) npx cdk synth --no-notices --quiet $(CDK_ARGS)

## deploy: build, then deploy with your AWS credentials, e.g. make deploy CDK_ARGS="-c stage=prod -c sender_identities=example.com -c default_from=noreply@example.com"
# The stage named in CDK_ARGS (cdk.json's is dev): only prod retains its data.
DEPLOY_STAGE := $(or $(patsubst stage=%,%,$(filter stage=%,$(CDK_ARGS))),dev)
DEPLOY_WARNING := Deploying stage $(DEPLOY_STAGE): its table, signing secret and logs are deleted with the stack (only stage prod keeps them: CDK_ARGS='-c stage=prod').
deploy: build $(NODE_STAMP)
	$(if $(filter-out prod,$(DEPLOY_STAGE)),@echo "$(DEPLOY_WARNING)")
	$(CDK_ENV) npx cdk deploy --no-notices $(CDK_ARGS)

clean:
	rm -rf $(VENV) .venv-3.12 .venv-3.13 .mailsage .pytest_cache build cdk.out
