# stripe-consumer: the two commands a newcomer needs are `make demo` and `make test`.
# Everything installs itself on first use (cached: ~/.cache/pip, ~/.cache/stripe-consumer).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
STACK  := $(PYTHON) deploy/local/stack
PYTEST := $(PY) -m pytest -p no:cacheprovider

.PHONY: help install up up-lite down status demo run test test-unit test-contract \
        test-integration test-fault test-cluster test-e2e test-chart test-container tools \
        stack-cache images \
        lint format docs bench clean

help:
	@echo "make demo     run every operation end to end on a real local stack"
	@echo "make test     run every test tier (unit, contract, integration, fault, e2e, chart, container)"
	@echo "make images   podman and the images: the service's, Kafka, Redis, stripe-mock (no registry)"
	@echo "make lint     ruff, mypy --strict, import-linter (the layers)"
	@echo "make up/down  start/stop the local stack (Kafka, stripe-mock, Redis, Conductor)"
	@echo "make up-lite  the same without Conductor (faster to start)"
	@echo "make run      run the service against the local stack"
	@echo "make docs     regenerate schemas/, deploy/conductor/, the README's operation table and layout"
	@echo "make bench    throughput/latency/memory figures (bench/results/latest.json)"

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

up:
	$(STACK) up --dir .local

up-lite:
	$(STACK) up --dir .local --no-conductor

down:
	$(STACK) down --dir .local

status:
	$(STACK) status --dir .local

demo: install
	$(PY) deploy/local/demo.py

run: install up-lite
	set -a && . ./.local/stack.env && set +a && \
	CONSUMER_REDIS_URL=$${CONSUMER_REDIS_URL:-$$REDIS_URL} \
	STRIPE_API_KEY=$${STRIPE_API_KEY:-sk_test_123} LOG_FORMAT=text $(PY) -m consumer run

test: install tools stack-cache images
	$(PYTEST) tests/unit tests/contract tests/integration tests/fault tests/cluster tests/e2e \
		tests/chart tests/container

# helm and promtool (go install), the CRD schemas: built once into ~/.cache (7-9 min cold).
tools:
	$(PYTHON) deploy/local/tools.py install

# Kafka, stripe-mock, Redis, Java 21 and Conductor into ~/.cache (~0.8 GB, 2-4 min cold), so
# no test spends its time limit downloading.
stack-cache:
	$(STACK) install

# podman from Debian's packages, then the images the container tier runs: a Debian base made
# with debootstrap (cached in ~/.cache; ~2 min the first time), Kafka, Redis and stripe-mock
# on it, and the service from the Dockerfile. Where podman cannot run, it says why and the
# container tier is skipped with that reason.
images: stack-cache
	$(PYTHON) deploy/local/images.py install --if-available

test-chart: install tools
	$(PYTEST) tests/chart

test-unit: install
	$(PYTEST) tests/unit

test-contract: install
	$(PYTEST) tests/contract

test-integration: install
	$(PYTEST) tests/integration

test-fault: install
	$(PYTEST) tests/fault

# Its own brokers (a 3-node cluster, a single broker), killed and restarted: ~5 min here.
test-cluster: install stack-cache
	$(PYTEST) tests/cluster

test-e2e: install stack-cache
	$(PYTEST) tests/e2e

test-container: install images
	$(PYTEST) tests/container

lint: install
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-logo --no-cache

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

docs: install
	$(PY) -m consumer schema --out schemas
	$(PY) -m consumer docs --readme README.md
	$(PY) -m consumer conductor write --out deploy/conductor

bench: install
	$(PY) -m bench.run

clean: down
	rm -rf $(VENV) .local
