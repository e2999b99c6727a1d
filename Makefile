# Two commands on a fresh clone: `make run` and `make test`. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup clean check upgrade

# constraints.txt pins what the suite last passed with, so a fresh clone installs the same.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/rapport run

# Two test processes (pytest-xdist): every test has its own workspace, queues and ports.
PYTEST_ARGS ?= -n 2

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The pure core is type-checked strictly; the whole tree is linted; the import layers (.importlinter) hold.
check: $(STAMP)
	$(BIN)/mypy
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Newest releases of every dependency, written back to constraints.txt; then run `make test`.
upgrade:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -iv '^rapport'; } > constraints.new
	mv constraints.new constraints.txt
	touch $(STAMP)

clean:
	rm -rf $(VENV) var .pytest_cache
