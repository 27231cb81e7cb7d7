# Two entry points: `make demo` and `make test`. Both build .venv (and the CDK's
# node_modules and Lambda wheelhouse) on first use; nothing else needs the network.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CDK_CLI := node_modules/.installed
WHEELHOUSE := build/lambda-wheels/.downloaded
# jsii runs on the machine's Node 20, which it reports as end-of-life on every import.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# Synth needs a region (ELB access logging is regional); AWS_REGION=... picks another.
AWS_REGION ?= us-east-1

.PHONY: demo test lint synth bench diagram

$(STAMP): requirements.txt requirements-dev.txt requirements-test-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-test-nodeps.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(CDK_CLI): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

$(WHEELHOUSE): lambdas/requirements.txt $(STAMP)
	$(PY) -m cdk_stacks.constructs.lambda_bundling
	touch $@

demo: $(STAMP)
	$(VENV)/bin/cohort demo

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Every stack, offline, through the CDK CLI; cdk-nag fails it on any unacknowledged
# finding, and cfn-lint on any template error.
synth: $(STAMP) $(CDK_CLI) $(WHEELHOUSE)
	rm -rf cdk.out
	AWS_REGION=$(AWS_REGION) npx cdk synth --no-notices --quiet
	$(VENV)/bin/cfn-lint --non-zero-exit-code error cdk.out/*.template.json

test: lint synth
	$(PY) -m pytest

BENCHMARKS := aggregation dataset_generation handler_imports onnx_import robustness synth

# Every benchmark runs and writes its figures; the target fails at the end if any missed its target.
bench: $(STAMP) $(CDK_CLI) $(WHEELHOUSE)
	missed=""; for name in $(BENCHMARKS); do \
		AWS_REGION=$(AWS_REGION) $(PY) bench/$$name.py || missed="$$missed $$name"; \
	done; test -z "$$missed" || { echo "missed a target:$$missed"; exit 1; }

diagram: $(STAMP)
	$(PY) images/architecture.py
