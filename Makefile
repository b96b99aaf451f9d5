# The two commands a user needs: `make run` (whole pipeline locally) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LINT_VENV ?= .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed
STAGE ?= dev
ARGS ?=
EMULATOR_PORT ?= 5000

.PHONY: run emulator cli local-cli test test-fast bench bench-bucket clean package lint-env policies openapi

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## run: start the emulator, provision the stage, serve the API and deliver events (Ctrl-C stops)
run: $(STAMP)
	$(PY) -m localrun --stage $(STAGE) $(ARGS)

## openapi: write the API's OpenAPI 3.1 document (also served at GET /openapi.json) to docs/openapi.json
openapi: $(STAMP)
	$(PY) -c 'import json; from chalicelib.openapi import document; print(json.dumps(document(), indent=2))' \
		> docs/openapi.json

## emulator: the same without the API (--no-api), to run `chalice local` yourself: the banner prints the command
emulator: $(STAMP)
	$(PY) -m localrun --stage $(STAGE) --no-api $(ARGS)

## local-cli: the operator command line against the local stack on EMULATOR_PORT (default 5000), in the project's
## environment, e.g. make local-cli ARGS='dlq list'
local-cli: $(STAMP)
	AWS_ENDPOINT_URL=http://127.0.0.1:$(EMULATOR_PORT) AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
		AWS_DEFAULT_REGION=us-east-1 $(PY) -m chalicelib.cli --stage $(STAGE) $(ARGS)

## cli: the operator command line against AWS (your credentials and region), e.g. make cli STAGE=prod ARGS=status
cli: $(STAMP)
	$(PY) -m chalicelib.cli --stage $(STAGE) $(ARGS)

## test: the whole suite (unit, integration on moto, handlers, end-to-end on the local stack)
test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

## test-fast: everything but the end-to-end tests
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not e2e" $(ARGS)

## bench: throughput of validation+aggregation in-process, then scenarios through the local stack (rest, live,
## backfill, breadth: time from the last request to bars ready, AWS requests and DynamoDB write units per 1,000
## ticks, bars checked against the ticks), then the peak memory of ingesting hostile files (decompression bombs,
## endless lines). ARGS go to scripts/bench.py, e.g. ARGS="--scenario rest --scenario live --live-seconds 20";
## see `python scripts/bench.py --help`
bench: $(STAMP)
	$(PY) scripts/bench.py $(ARGS)
	$(PY) scripts/bombs.py

## bench-bucket: what a big object in the bucket costs the local stack while small files are ingested: one 1 GiB
## object, then 500 small CSV uploads until their bars are ready; the emulator's peak RSS, the disk its temporary
## files hold and the bytes it writes, per phase (needs ~2.5 GiB of memory and 1 GiB of disk, for a few minutes;
## not part of `bench`). ARGS go to scripts/bucket_growth.py, e.g. ARGS="--big-mib 256 --uploads 100"
bench-bucket: $(STAMP)
	$(PY) scripts/bucket_growth.py $(ARGS)

## package: the stage's CloudFormation/SAM stack in dist/$(STAGE)/ (sam.json + deployment.zip), validated
## offline (cfn-lint, SAM transform, cfn-lint, checkov); fails on any finding. Also dist/resources-$(STAGE).json,
## the stateful resources alone, for the `chalice deploy` path. chalicelib/ is compiled to (checked-hash) bytecode
## first, which the zip carries, so that a cold start does not compile the app.
package: $(STAMP) $(LINT_STAMP)
	rm -rf dist/$(STAGE)
	$(PY) -m infra.build --stage $(STAGE) --merge-template dist/merge-$(STAGE).json \
		--resources-template dist/resources-$(STAGE).json
	AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} $(VENV)/bin/chalice package --stage $(STAGE) \
		--merge-template dist/merge-$(STAGE).json dist/$(STAGE)/
	$(LINT_VENV)/bin/python -m infra.validate dist/$(STAGE)/sam.json dist/resources-$(STAGE).json \
		--report dist/validation-$(STAGE).json

## lint-env: the template validators in their own venv (their pins conflict with .venv's; see requirements-lint.txt)
lint-env: $(LINT_STAMP)

$(LINT_STAMP): requirements-lint.txt
	test -x $(LINT_VENV)/bin/python || $(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-lint.txt
	touch $(LINT_STAMP)

## policies: regenerate .chalice/policies/ (the IAM policy files of the `chalice deploy` path) after editing
## config.json or infra/policies.py
policies: $(STAMP)
	$(PY) -m infra.build --write-policies

## deploy: `chalice deploy --stage $(STAGE)`, guarded: stops when the processor's queue has an event source mapping
## Chalice's deployed state does not know (a deploy that failed half-way leaves one; ARGS=--repair deletes it,
## ARGS=--check only checks), then sets the trigger's maximum concurrency from config.json
.PHONY: deploy
deploy: $(STAMP)
	$(PY) -m infra.deploy --stage $(STAGE) $(ARGS)

clean:
	rm -rf $(VENV) $(LINT_VENV) .pytest_cache .hypothesis dist
