# duhub: make help lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
DATA ?= data
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help setup run test lint fmt proto proto-check bench clean

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) ## Create .venv with the pinned dependencies and .venv/bin/duhub

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

run: setup ## Run the whole hub on the embedded default with simulated county nodes
	$(BIN)/duhub up --data-dir $(DATA)

test: setup lint proto-check ## Set up and run every test
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: setup ## ruff check
	$(BIN)/ruff check duhub services tests bench

fmt: setup ## ruff format and fix
	$(BIN)/ruff check --fix duhub services tests bench
	$(BIN)/ruff format duhub services tests bench

proto: setup ## Generate the Python code of proto/duhub/v1 into duhub/v1
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/duhub/v1/*.proto

proto-check: setup ## Fail when duhub/v1 is stale against proto/
	$(BIN)/python -m tests.proto_fresh

clean: ## Remove the venv, run state and local data
	rm -rf $(VENV) .run $(DATA)
