# Ledgerline — the commands a newcomer and CI need. `make run` and `make test` install first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint format bench schemas docs openapi clean

# Reinstall when the venv is missing or pyproject.toml / requirements.lock changed since the last install.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/ledgerline up

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

schemas: $(STAMP)
	$(BIN)/python -m shared.events.schema_export

openapi: $(STAMP)
	$(BIN)/python -m services.gateway.openapi_export

docs: $(STAMP)
	$(BIN)/python -m shared.config_doc

clean:
	rm -rf $(VENV) .ledgerline .mypy_cache .ruff_cache
