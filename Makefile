# The two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run PORT=8081 FLOWER_PORT=5556`: the API's and Flower's ports (both on 127.0.0.1)
PORT ?= 8080
FLOWER_PORT ?= 5555

.PHONY: setup run test lint bench up down clean

# [mysqlclient]: CI tests both MySQL drivers; its C build needs .ci/apt-packages (gcc, pkg-config, headers)
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,mysqlclient]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/orchestrator dev --port $(PORT) --flower-port $(FLOWER_PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check orchestrator orchestrator_cli workers api tests examples bench
	$(BIN)/mypy orchestrator orchestrator_cli workers api

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.validation

up:
	test -f deploy/.env || $(PYTHON) deploy/new_env.py  # random secrets, not the example's placeholders
	docker compose -f deploy/docker-compose.yml up -d --build

down:
	docker compose -f deploy/docker-compose.yml down

clean:
	rm -rf $(VENV) var .pytest_cache
