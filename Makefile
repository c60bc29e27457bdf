# Ledgerline — the commands a newcomer and CI need. `make run` and `make test` install first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint format bench load chaos fuzz schemas docs openapi clean

# Reinstall when the venv is missing or pyproject.toml / requirements.lock changed since the last install.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/ledgerline up

# Tests run in TEST_WORKERS processes (pytest-xdist): most of the suite waits on servers and child
# processes, so 3 workers on 2 cores keep the CI run within its budget. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Fault injection with the checker (docs/reliability.md); CHAOS_ARGS e.g. --rounds 2 --rate 50.
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos $(CHAOS_ARGS)

# The load generator (bench/load, docs/benchmarks.md): e.g. make load LOAD_ARGS="--profile embedded --rate 100".
LOAD_ARGS ?= --profile pg-nats --rate 100 300 500 --duration 60 --users 200
load: $(STAMP)
	$(BIN)/python -m bench.load $(LOAD_ARGS) --out bench/results/

# The fuzzing tests (tests/fuzz) at length: FUZZ_EXAMPLES generated cases per operation, mode and role
# (make test runs the same tests with 3). See docs/reliability.md, "Fuzzing".
FUZZ_EXAMPLES ?= 100
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -p no:cacheprovider -m fuzz --timeout=3600 tests/fuzz $(PYTEST_ARGS)

schemas: $(STAMP)
	$(BIN)/python -m shared.events.schema_export

openapi: $(STAMP)
	$(BIN)/python -m services.gateway.openapi_export

docs: $(STAMP)
	$(BIN)/python -m shared.config_doc

clean:
	rm -rf $(VENV) .ledgerline .mypy_cache .ruff_cache
