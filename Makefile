# iconmarket: `make run` (the main job) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ICONMARKET := $(BIN)/iconmarket
# A local checkout runs in dev mode (public development secrets, loopback only); the test target
# switches to the test stack's own environment (tests/stack.env sets ICONMARKET_ENV=test).
export ICONMARKET_ENV ?= dev

.PHONY: run test lint typecheck stack-up test-stack-up down bench install clean-state help compose-cli

# The test suite's own stack (tests/stack.env: other ports, state in .stack/test), so that a
# `make run` after `make test` starts clean. tests/conftest.py loads the same file.
TEST_STACK := set -a && . tests/stack.env && set +a && export ICONMARKET_STATE_DIR=$(CURDIR)/.stack/test &&

help:
	@echo "make run    - install, start the local stack, provision, run API + workers"
	@echo "make test   - install, ruff, mypy, start the stack, run the whole pytest suite"
	@echo "make bench  - run bench/ and write bench/results/results.json + summary.md"
	@echo "make down   - stop the local stack and the test stack"
	@echo "make test-stack-up - start only the test stack (for running pytest by hand)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

stack-up: install
	$(ICONMARKET) stack up

test-stack-up: install
	$(TEST_STACK) $(ICONMARKET) stack up

# The compose CLI that tests/integration/test_compose.py validates docker-compose.yml with:
# the docker compose v2 plugin if present, else Debian's docker-compose package.
compose-cli:
	docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose)

run: install
	$(ICONMARKET) run

test: install lint typecheck test-stack-up compose-cli
	$(TEST_STACK) $(BIN)/pytest

# vegeta (constant-rate HTTP load) is built once from the Go module proxy into the download cache.
TOOLS := $(if $(filter 0,$(shell id -u)),/var/cache/iconmarket/bin,$(HOME)/.cache/iconmarket/bin)

bench: install stack-up
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk)
	test -x $(TOOLS)/vegeta || GOBIN=$(TOOLS) go install github.com/tsenart/vegeta/v12@v12.13.0
	ICONMARKET_VEGETA=$(TOOLS)/vegeta $(BIN)/python -m bench

down: install
	$(ICONMARKET) stack down
	$(TEST_STACK) $(ICONMARKET) stack down

clean-state: down
	rm -rf .stack
