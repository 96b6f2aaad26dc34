# The two set-up commands of the README. Each creates .venv from nothing and installs the
# project with pinned dependencies, and builds the report's 3-D viewer from web/ (npm ci with
# its lock file), so that a clean clone needs nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
VIEWER := src/cryoplan/report/static/view3d.js
APP    := src/cryoplan/server/static/app.js

.PHONY: demo test lint web browser bench bench-cases clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The report's interactive 3-D view and the browser application: NiiVue and the project's
# own front-end code bundled by esbuild (web/README.md)
$(VIEWER) $(APP) &: web/package.json web/package-lock.json web/build.mjs web/src/view3d.js \
		web/src/app.js $(wildcard web/src/app/*.js) web/app.html web/app.css
	cd web && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

web: $(VIEWER) $(APP)

# The browser tests drive Debian's Chromium (a browser build cannot be downloaded here);
# installed with apt-get where it is missing (CI runs as root)
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: $(STAMP) $(VIEWER) $(APP)
	$(BIN)/cryoplan demo

test: $(STAMP) $(VIEWER) $(APP) browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_solver.py

# Issue #5's reference cases S, M, L with the reference path and the peers (long: ~1 h)
bench-cases: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_cases.py S --reference --peers 60
	$(BIN)/python benchmarks/bench_cases.py M --reference --peers 60
	$(BIN)/python benchmarks/bench_cases.py L

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache web/node_modules $(VIEWER) \
		src/cryoplan/server/static
