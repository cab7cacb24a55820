# duhub: make help lists the targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DESCRIPTORS := descriptors.binpb
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
DATA ?= data
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
KAFKA_PORT ?= 19092
KAFKA_CONTROLLER_PORT ?= 19093
PG_PORT ?= 55432
PG_URL ?= postgresql://duhub:duhub@127.0.0.1:$(PG_PORT)/duhub
TEST_ENV := DUHUB_TEST_KAFKA=127.0.0.1:$(KAFKA_PORT) DUHUB_TEST_PG=$(PG_URL)

.PHONY: help setup run test test-fast lint fmt proto proto-check bench clean \
	kafka-up kafka-down pg-up pg-down services-up services-down browser-deps

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(STAMP) ## Create .venv with the pinned dependencies and .venv/bin/duhub

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,profile]'
	rm -f $(VENV)/.installed-*
	touch $@

run: setup ## Run the whole hub on the embedded default with simulated county nodes
	$(BIN)/duhub up --data-dir $(DATA)

test: setup lint proto-check services-up browser-deps ## Set up, lint, check the generated code and run every test (starts Kafka, PostgreSQL; installs Chromium)
	$(TEST_ENV) $(BIN)/pytest -q --durations=20 $(PYTEST_ARGS)

test-fast: setup ## Run the tests without starting Kafka or PostgreSQL (theirs skip)
	env -u CI $(BIN)/pytest -q $(PYTEST_ARGS)

kafka-up: ## Fetch Apache Kafka with mvn and start a KRaft broker on 127.0.0.1:19092
	DUHUB_KAFKA_PORT=$(KAFKA_PORT) DUHUB_KAFKA_CONTROLLER_PORT=$(KAFKA_CONTROLLER_PORT) bash deploy/kafka/kafka.sh up

kafka-down: ## Stop the local Kafka broker
	bash deploy/kafka/kafka.sh down

pg-up: ## Install PostgreSQL with apt-get when absent and start it on 127.0.0.1:55432
	DUHUB_PG_PORT=$(PG_PORT) bash deploy/postgres/pg.sh up

pg-down: ## Stop the local PostgreSQL server
	DUHUB_PG_PORT=$(PG_PORT) bash deploy/postgres/pg.sh down

services-up: kafka-up pg-up ## Start the local Kafka and PostgreSQL

browser-deps: ## Install Debian's Chromium, chromedriver and a CJK font for the dashboard tests
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] \
		|| [ -z "$$(fc-list :lang=zh 2>/dev/null)" ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			chromium chromium-driver fonts-noto-cjk; \
	fi

services-down: kafka-down pg-down ## Stop the local Kafka and PostgreSQL

bench: setup ## Run the benchmarks (QUICK=1: the short version, under 5 minutes); see bench/README.md
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(BENCH_ARGS)

lint: setup ## ruff check, and ruff format --check (the formatting is part of the style)
	$(BIN)/ruff check duhub services tests bench
	$(BIN)/ruff format --check duhub services tests bench

fmt: setup ## ruff format and fix
	$(BIN)/ruff check --fix duhub services tests bench
	$(BIN)/ruff format duhub services tests bench

proto: setup ## Generate the Python code of proto/duhub/v1 into duhub/v1
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=. --pyi_out=. --grpc_python_out=. proto/duhub/v1/*.proto
	$(BIN)/python -m grpc_tools.protoc -Iproto --include_source_info --descriptor_set_out=duhub/v1/$(DESCRIPTORS) proto/duhub/v1/*.proto

proto-check: setup ## Fail when duhub/v1 is stale against proto/
	$(BIN)/python -m tests.proto_fresh

clean: ## Remove the venv, run state and local data
	rm -rf $(VENV) .run $(DATA)
