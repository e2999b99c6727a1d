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

# The workspace UI's script: npm ci when the lockfile changed (the stamp, as for .venv), then esbuild
# bundles webapp/ui/js/ with htmx into webapp/static/bundle/, which Flask serves (both git-ignored).
NPM_STAMP := node_modules/.installed
BUNDLE := webapp/static/bundle/main.js
NPM_MISSING := make: npm is missing; the workspace UI's script is built with it. Install Node.js 18 or newer with npm (Debian: apt-get install -y npm), then run make again.

$(NPM_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "$(NPM_MISSING)" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

$(BUNDLE): $(NPM_STAMP) $(wildcard webapp/ui/js/*.js webapp/ui/js/*/*.js)
	npm run --silent build

setup: $(STAMP) $(BUNDLE)

run: setup
	$(BIN)/rapport run

# Two test processes (pytest-xdist): every test has its own workspace, queues and ports.
PYTEST_ARGS ?= -n 2

# The browser tests (tests/webapp/ui/browser/) drive Debian's Chromium; without it they are skipped, saying so.
test: setup
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
	rm -rf $(VENV) var .pytest_cache node_modules webapp/static/bundle test-results
