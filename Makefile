# iconmarket: `make run` (the main job) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ICONMARKET := $(BIN)/iconmarket

.PHONY: run test lint typecheck stack-up down bench install clean-state help

help:
	@echo "make run    - install, start the local stack, provision, run API + workers"
	@echo "make test   - install, ruff, mypy, start the stack, run the whole pytest suite"
	@echo "make bench  - run bench/ and write bench/results/results.json + summary.md"
	@echo "make down   - stop the local stack"

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

typecheck: install
	$(BIN)/mypy

stack-up: install
	$(ICONMARKET) stack up

run: install
	$(ICONMARKET) run

test: install lint typecheck stack-up
	$(BIN)/pytest

bench: install stack-up
	$(BIN)/python -m bench

down: install
	$(ICONMARKET) stack down

clean-state: down
	rm -rf .stack
