# jobpulse developer commands. `make run` and `make test` are the README's two set-up commands:
# each creates .venv on first use and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit generate bench bench-quick clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Start the sidecar on the embedded SQLite store with the example configuration, and the
# example jobs reporting to it. Ctrl-C stops everything.
run: $(STAMP)
	$(BIN)/python examples/run_demo.py

# lint-imports: the sidecar's layers and no import circles ([tool.importlinter] in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# mypy needs to see the folders under their import names (jobpulse.instrumentation, ...):
# a small tree of symlinks gives it that without installing bare top-level packages.
typecheck: $(STAMP)
	mkdir -p .build/typecheck/jobpulse
	ln -sfn ../../../instrumentation .build/typecheck/jobpulse/instrumentation
	ln -sfn ../../../sidecar .build/typecheck/jobpulse/sidecar
	cd .build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml \
		--explicit-package-bases -p jobpulse.instrumentation -p jobpulse.sidecar

# --durations: a slow run says where its time went.
unit: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider --durations=15

# The whole suite: lint, types, then every test.
test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .build .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
