# The two commands a user needs: `make run` (whole pipeline locally) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
STAGE ?= dev
ARGS ?=

.PHONY: run test test-fast bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## run: start the emulator, provision the stage, serve the API and deliver events (Ctrl-C stops)
run: $(STAMP)
	$(PY) -m localrun --stage $(STAGE) $(ARGS)

## test: the whole suite (unit, integration on moto, handlers, end-to-end on the local stack)
test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

## test-fast: everything but the end-to-end tests
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not e2e" $(ARGS)

## bench: throughput of validation+aggregation and AWS requests per 1,000 ticks through the local stack
bench: $(STAMP)
	$(PY) scripts/bench.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis dist
