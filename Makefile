# Two entry points for a fresh machine: `make run` (the main job on embedded defaults)
# and `make test` (lint + the test suite). Both create the virtualenv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export SEGMENTS_HOME ?= $(CURDIR)/.segments
DEMO_DIR := $(SEGMENTS_HOME)/demo
AS_OF ?= 2026-06-30
PORT ?= 8000

.PHONY: run test lint bench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $@

run: $(VENV)/.installed
	@test -f $(DEMO_DIR)/billing_events.parquet || \
		$(BIN)/segments demo-data --out $(DEMO_DIR) --customers 3000 --months 18 --end $(AS_OF)
	$(BIN)/segments ingest --billing $(DEMO_DIR)/billing_events.parquet --usage $(DEMO_DIR)/usage_events.parquet
	$(BIN)/segments features --as-of $(AS_OF) --out $(SEGMENTS_HOME)/features-$(AS_OF).parquet
	$(BIN)/segments train --as-of $(AS_OF)
	$(BIN)/segments assign --in $(SEGMENTS_HOME)/features-$(AS_OF).parquet --out $(SEGMENTS_HOME)/assignments-$(AS_OF).csv
	@$(BIN)/python -m service.keys --port $(PORT)
	$(BIN)/segments serve --host 127.0.0.1 --port $(PORT)

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The browser tests drive Debian's Chromium through Playwright (never a downloaded browser).
browser:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
		else echo "the browser tests need /usr/bin/chromium: sudo apt-get install -y chromium" >&2; exit 1; fi; }

test: lint browser
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python bench/bench_features.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_clustering_suite.py
	$(BIN)/python bench/eval_iranian_churn.py

clean:
	rm -rf $(VENV) .segments .pytest_cache
