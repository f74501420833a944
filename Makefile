# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv run test test-unit test-integration lint fmt broker-start broker-stop clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: venv
	$(BIN)/msm broker start
	$(BIN)/msm topology apply

test: venv
	$(BIN)/msm broker fetch
	$(BIN)/pytest -q -p no:cacheprovider

test-unit: venv
	$(BIN)/pytest -q tests/unit

test-integration: venv
	$(BIN)/pytest -q tests/integration

lint: venv
	$(BIN)/ruff check pipeline tests loadtest
	$(BIN)/ruff format --check pipeline tests loadtest
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format pipeline tests loadtest
	$(BIN)/ruff check --fix pipeline tests loadtest

broker-start: venv
	$(BIN)/msm broker start

broker-stop: venv
	$(BIN)/msm broker stop

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
