# Two commands for a newcomer: `make demo` and `make test`. Each creates .venv and installs
# the project first, so nothing else is needed on a fresh machine with Python 3.10-3.12.
PYTHON ?= $(shell for p in python3.11 python3.12 python3.10 python3; do \
	command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q compliance
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/compliance demo

test: $(STAMP)
	$(BIN)/python -m pytest
	@echo "== the store tests again on PostgreSQL =="
	bash .ci/with-postgres $(BIN)/python -m pytest --backend postgresql -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy compliance

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
