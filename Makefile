# Two commands: `make run` starts the product, `make test` runs the tests. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Test processes: pytest-xdist workers, one per CPU; PYTEST_WORKERS=0 runs in one process (for -x, pdb).
PYTEST_WORKERS ?= auto

.PHONY: run serve test test-all lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	DJANGO_DEBUG=1 $(BIN)/python manage.py migrate --noinput
	DJANGO_DEBUG=1 $(BIN)/python manage.py seed_db
	DJANGO_DEBUG=1 $(BIN)/python manage.py ensure_demo_user --url http://$(HOST):$(PORT)
# The web server and the foreground scheduler (`crontab work`) side by side; Ctrl-C stops both.
	DJANGO_DEBUG=1 PYTHON=$(BIN)/python bin/run $(HOST):$(PORT)

# Production on one machine (docs/deploy.md): collectstatic, migrate, gunicorn + `crontab work`, DEBUG off.
# HOST, PORT, WEB_CONCURRENCY and every setting come from the environment or .env.
serve: $(VENV)/.runtime
	PYTHON=$(BIN)/python bin/serve

# The fast tier on SQLite (about a minute on an idle two-CPU machine; README.md says what it depends on):
# tests marked `slow` are left to `make test-all` and CI.
# Tests needing PostgreSQL, Redis, crontab, a cron daemon or Chromium skip saying why where those are
# missing (docs/testing.md). PYTEST_ARGS="-k runner -x" passes options through.
test: $(VENV)/.dev
	$(BIN)/pytest -m "not slow" -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# Every tier, slow tests included (what .ci/run runs on PostgreSQL + Redis). The slow tests, collected
# first (tests/conftest.py), are handed out two at a time so they wait side by side.
test-all: $(VENV)/.dev
	$(BIN)/pytest -n $(PYTEST_WORKERS) --maxschedchunk 2 $(PYTEST_ARGS)

# Prints figures, never fails on them: see bench/RESULTS.md, docs/testing.md. BENCH_ARGS="--quick --figures 1,5".
bench: $(VENV)/.dev
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
