# Cairn's commands. Every target creates .venv from pyproject.toml on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: install bytecode serve test check bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Cairn's own modules compiled ahead (only what changed since the last time). Where
# PYTHONDONTWRITEBYTECODE is set (it is on this project's machine), every process would
# otherwise compile all of src/cairn from source, each server a test starts included:
# about 0.2 s per process here (`cairn models list` on a local folder: 1.07 -> 0.89 s).
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q src

## Run the server on http://127.0.0.1:8080 with ./cairn-data (SQLite + local blobs).
serve: bytecode
	$(BIN)/cairn server $(ARGS)

# Azurite, the Azure Blob Storage emulator the blob-store tests start on loopback (npm;
# pinned by tests/emulators/package-lock.json). Without npm the Azure tests are skipped,
# and under CI=true they fail.
EMULATORS := tests/emulators
AZURITE := $(EMULATORS)/node_modules/.installed

$(AZURITE): $(EMULATORS)/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(EMULATORS) --silent --no-audit --no-fund && touch $@; \
	else echo "npm not found: the Azure blob-store tests will be skipped"; fi

## The test suite: every metadata test on SQLite and on PostgreSQL (127.0.0.1:5432), every
## blob-store test on local disk, S3 (moto) and Azure (Azurite).
test: bytecode $(AZURITE)
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

## Lint, format, types, layering.
check: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

## Benchmarks against the peers named in the issues; results in benchmarks/RESULTS.md.
## registry_ops.py (Cairn vs a stock MLflow server), then transfer.py (vs cp, HTTP, MLflow proxy),
## then search_scale.py (reads at 100,000 and 1,000,000 versions).
bench: $(STAMP)
	bash benchmarks/run.sh
	$(BIN)/python benchmarks/transfer.py
	$(BIN)/python benchmarks/search_scale.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(EMULATORS)/node_modules
