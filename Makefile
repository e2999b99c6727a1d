# Two commands on a fresh clone: `make run` and `make test`. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup clean check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/rapport run

# Two test processes (pytest-xdist): every test has its own workspace, queues and ports.
PYTEST_ARGS ?= -n 2

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The pure core is type-checked strictly; the whole tree is linted.
check: $(STAMP)
	$(BIN)/mypy
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache
