# The two commands: `make run` (the whole system on embedded defaults) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint unit bench bench-smoke chaos chaos-smoke demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/vtp up

demo: $(STAMP)
	$(BIN)/vtp demo --checkins 500

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services vtp tests
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

bench: $(STAMP)
	$(BIN)/vtp bench

bench-smoke: $(STAMP)
	$(BIN)/vtp bench --smoke

chaos: $(STAMP)
	$(BIN)/vtp chaos --seed 1 --checkins 20000

clean:
	rm -rf .vtp build *.egg-info .pytest_cache .mypy_cache .ruff_cache
