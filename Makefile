# Two entry points for a fresh machine: `make run` (the main job on embedded defaults)
# and `make test` (lint + the test suite). Both create the virtualenv themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export SEGMENTS_HOME ?= $(CURDIR)/.segments
DEMO_DIR := $(SEGMENTS_HOME)/demo
# The demo company's history ends yesterday (UTC), so that events sent to the service today
# (`POST /v1/events`) continue it: a demo customer's vector refreshed as of now is a day or so
# past training's, not months (it read as an outlier when the history ended on a fixed day). The
# company is the same whatever the day, shifted in time. A data home keeps the day its demo was
# made with (demo/last_day.txt, written before the demo; 2026-06-30 for a demo made before that
# file); AS_OF=... overrides. Worked out only for `make run`, once, so every step reads one day.
ifneq ($(filter run,$(MAKECMDGOALS)),)
ifeq ($(origin AS_OF),undefined)
AS_OF := $(shell day=$$(cat $(DEMO_DIR)/last_day.txt 2>/dev/null); \
	if [ -n "$$day" ]; then echo "$$day"; \
	elif [ -f $(DEMO_DIR)/billing_events.parquet ]; then echo 2026-06-30; \
	else $(PYTHON) -c 'import datetime as d; print(d.datetime.now(d.timezone.utc).date() - d.timedelta(days=1))' 2>/dev/null; fi)
endif
ifeq ($(strip $(AS_OF)),)
$(error no last day for the demo (working it out needs $(PYTHON)); give one: make run AS_OF=YYYY-MM-DD)
endif
endif
PORT ?= 8000

# apt-get needs root: use sudo unless we are root already.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint browser java bench bench-spark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[all,spark,dev]'
	touch $@

run: $(VENV)/.installed
	@test -f $(DEMO_DIR)/billing_events.parquet || \
		{ mkdir -p $(DEMO_DIR) && echo $(AS_OF) > $(DEMO_DIR)/last_day.txt && \
		  $(BIN)/segments demo-data --out $(DEMO_DIR) --customers 3000 --months 18 --end $(AS_OF); }
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
		$(SUDO) apt-get update -qq >/dev/null && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Spark (the `spark` extra, tests/test_spark_parity.py) runs on Java 17+. Installs Debian's
# headless JRE only when `java` is missing or older; quiet and idempotent.
java:
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
		echo "installing Java 17 for Spark (openjdk-17-jre-headless)"; \
		$(SUDO) apt-get update -qq >/dev/null && \
		{ $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null || \
		  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null; }; \
	fi

# One test process per core, at most four (pytest-xdist); a test file stays in one process, so its
# module fixtures (a trained company, the Spark session) are built once. Each process does its
# maths on one thread: with a BLAS and OpenMP thread per core in every process, the processes'
# threads outnumber the cores and spin waiting for each other (an eighth to a quarter of the
# suite's CPU time on 2 cores; docs/benchmarks.md, "What the test suite spends").
TEST_PROCESSES ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -gt 4 ] && n=4; echo $$n)
ONE_THREAD_MATHS := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
test: lint browser java
	$(ONE_THREAD_MATHS) $(BIN)/python -m pytest -q -n $(TEST_PROCESSES) --dist loadfile

bench: $(VENV)/.installed
	$(BIN)/python bench/bench_features.py
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_clustering_suite.py
	$(BIN)/python bench/eval_iranian_churn.py

# DuckDB vs Spark local mode on the same events (docs/scale-out.md); EVENTS=50000000 for the larger run.
EVENTS ?= 10000000
bench-spark: $(VENV)/.installed java
	$(BIN)/python bench/bench_spark.py --events $(EVENTS)

clean:
	rm -rf $(VENV) .segments .pytest_cache
