# collectZ: `make run` starts the app on embedded defaults; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 5000
HOST   ?= 127.0.0.1

.PHONY: run test test-fast bench lint check install install-dev migrate worker clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: tests/requirements.txt requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r tests/requirements.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## Start web + in-process background worker (SQLite under instance/, no Redis needed).
run: install
	HOST=$(HOST) PORT=$(PORT) $(BIN)/python -m collectz.devserver

## Apply migrations only.
migrate: install
	$(BIN)/flask --app collectz:create_app db upgrade

## A production-style worker (needs REDIS_URL).
worker: install
	$(BIN)/python worker.py

## The whole suite. TEST_DATABASE_URL / TEST_REDIS_URL add PostgreSQL and real Redis runs.
test: install-dev
	$(BIN)/python -m pytest -c tests/pytest.ini --rootdir . -n $${PYTEST_WORKERS:-auto} $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .

## Release gates (tools/gates/, `python -m tools.gates.NAME --help`): ruff, bandit, secret scan, pip-audit, SBOM
## (build/sbom.cdx.json), version parity, Compose files, migration rehearsal (SQLite, and PostgreSQL when
## TEST_DATABASE_URL names a server). `make check CHECK_ARGS="parity sast"` runs some of them.
check: install-dev
	$(BIN)/python -m tools.gates $(CHECK_ARGS)

## Benchmarks on SQLite, plus PostgreSQL when BENCH_DATABASE_URL names a server (separate databases, collectz_bench,
## collectz_bench_imports and collectz_bench_backup_*, are created there); results go to bench/results/. First the
## library at 100,000 items (BENCH_ARGS), then imports: 100,000-row CSV, Delicious exports (BENCH_IMPORTS_ARGS), then
## backup: the library backed up and restored into the other database (BENCH_BACKUP_ARGS), then load: a mixed workload
## against gunicorn with 3 workers for 5 minutes, on PostgreSQL (collectz_bench_load; BENCH_LOAD_ARGS, e.g. "--db both"),
## then faults: the suite's fault scenarios at full size (100,000-row imports; Redis at BENCH_REDIS_URL, default
## redis://127.0.0.1:6379/0; BENCH_FAULTS_ARGS). "--help" lists options.
bench: install-dev
	$(BIN)/python -m bench library $(BENCH_ARGS)
	$(BIN)/python -m bench imports $(BENCH_IMPORTS_ARGS)
	$(BIN)/python -m bench backup $(BENCH_BACKUP_ARGS)
	$(BIN)/python -m bench load $(BENCH_LOAD_ARGS)
	$(BIN)/python -m bench faults $(BENCH_FAULTS_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
