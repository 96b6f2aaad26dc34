# The two set-up commands of the README. Each creates .venv from nothing and installs the
# project with pinned dependencies, so that a clean clone needs nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-cases clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cryoplan demo

test: $(STAMP)
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
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
