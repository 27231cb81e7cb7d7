# Two entry points: `make demo` and `make test`. Both build .venv (and the CDK's
# node_modules and Lambda wheelhouse) on first use; nothing else needs the network.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CDK_CLI := node_modules/.installed
WHEELHOUSE := build/lambda-wheels/.downloaded
WEBSITE_DEPS := website/node_modules/.installed
WEBSITE := website/dist/index.html
WEBSITE_SOURCES := $(shell find website/src website/scripts -type f) website/index.html \
	website/vite.config.ts website/tsconfig.json docs/openapi/orchestrator.json
# jsii runs on the machine's Node 20, which it reports as end-of-life on every import.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
# Synth needs a region (ELB access logging is regional); AWS_REGION=... picks another.
AWS_REGION ?= us-east-1

.PHONY: demo test check lint lambda-wheels synth website website-zip bench diagram

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

lambda-wheels: $(WHEELHOUSE)

$(WEBSITE_DEPS): website/package.json website/package-lock.json
	cd website && npm ci --no-audit --no-fund --silent
	touch $@

# The dashboard: typed against docs/openapi/orchestrator.json, built by Vite, its bundle within budget.
$(WEBSITE): $(WEBSITE_DEPS) $(WEBSITE_SOURCES)
	cd website && npm run build --silent

website: $(WEBSITE)

# A manual Amplify deployment's bundle (CDK_INSTRUCTIONS.md): the build, with the stage's config.json
# from the website stack's SiteConfig output beside index.html, zipped into build/website.zip.
WEBSITE_STACK ?= CohortDevWebsite
website-zip: $(WEBSITE)
	rm -rf build/website build/website.zip && mkdir -p build && cp -R website/dist build/website
	aws cloudformation describe-stacks --stack-name $(WEBSITE_STACK) --output text \
		--query "Stacks[0].Outputs[?OutputKey=='SiteConfig'].OutputValue" > build/website/config.json
	$(PY) -m json.tool build/website/config.json > /dev/null
	cd build/website && ../../$(PY) -m zipfile -c ../website.zip *

demo: $(STAMP) $(WEBSITE)
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

# The full gate, which CI runs: lint, synth, the website's build and unit tests, then every test.
test: lint synth $(WEBSITE)
	cd website && npm test --silent
	$(PY) -m pytest

# The fast loop: lint, then every test that needs no local platform, no browser and no minutes
# (the markers in pyproject.toml). It synthesizes the stacks in process, hence the wheelhouse.
check: lint $(WHEELHOUSE)
	$(PY) -m pytest -m "not platform and not browser and not slow"

BENCHMARKS := aggregation dataset_generation handler_imports node_memory onnx_import robustness synth test_loop

# Every benchmark runs and writes its figures; the target fails at the end if any missed its target.
bench: $(STAMP) $(CDK_CLI) $(WHEELHOUSE)
	missed=""; for name in $(BENCHMARKS); do \
		AWS_REGION=$(AWS_REGION) $(PY) bench/$$name.py || missed="$$missed $$name"; \
	done; test -z "$$missed" || { echo "missed a target:$$missed"; exit 1; }

diagram: $(STAMP)
	$(PY) images/architecture.py
