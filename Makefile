# SyncBridge: `make demo` runs everything locally against the sandbox; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format install lock browser bench soak clean serve

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Exact versions from constraints.txt (the ranges stay in pyproject.toml).
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Re-pin constraints.txt to what the dev venv has now (after changing a range in pyproject.toml,
# `pip install -U -e ".[dev]"`, run the tests, then `make lock`).
lock: install
	{ sed -n '/^#/p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -iv '^syncbridge'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# Browser tests drive Debian's Chromium (Playwright cannot download its own browsers here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests..."; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	}
	@command -v chromium >/dev/null 2>&1 || { echo "chromium is required for the browser tests"; exit 1; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install browser lint
	SYNCBRIDGE_SANDBOX=true $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest $(PYTEST_ARGS)

# The demo runs against the sandbox app (SYNCBRIDGE_SANDBOX=true), installed with the dev extra
# (which includes the `sandbox` extra).
demo: install
	SYNCBRIDGE_SANDBOX=true $(BIN)/python manage.py demo $(DEMO_ARGS)

# Production (README, "Running in production"): settings from the environment or .env, a venv
# made with `pip install -c constraints.txt .` (BIN=path/to/venv/bin for another one). Runs the
# deploy checks, migrations and collectstatic, then the worker (qcluster) and the web server
# (gunicorn on BIND; gunicorn.conf.py: WEB_CONCURRENCY processes x WEB_THREADS threads) side by
# side. If the worker stops, the web server stays up and /healthz answers 503 naming it; Ctrl-C
# or SIGTERM stops both.
BIND ?= 127.0.0.1:8000
serve:
	$(BIN)/python manage.py check --deploy
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	@$(BIN)/python manage.py qcluster & worker=$$!; \
	$(BIN)/gunicorn syncbridge.wsgi --config gunicorn.conf.py --bind "$(BIND)" \
	  --access-logfile - --forwarded-allow-ips "$${FORWARDED_ALLOW_IPS:-127.0.0.1}" & web=$$!; \
	trap 'kill $$worker $$web 2>/dev/null; wait $$worker $$web' INT TERM; \
	wait $$web; status=$$?; kill $$worker 2>/dev/null; wait $$worker; exit $$status

bench: install
	DJANGO_ALLOW_ASYNC_UNSAFE=true $(BIN)/pytest tests/bench -p no:randomly -s $(PYTEST_ARGS)

# Long invariant runs: 5,000 seeded two-way real-time histories (CONVERGENCE_SCENARIOS) and the
# transfer crash trials below; each prints its scenarios and violations.
soak: soak-realtime soak-transfer

soak-realtime: install
	CONVERGENCE_SCENARIOS=$${CONVERGENCE_SCENARIOS:-5000} $(BIN)/pytest tests/integrations/test_convergence.py -p no:randomly -q -s $(PYTEST_ARGS)

clean:
	rm -rf var db.sqlite3 test-artifacts

# Transfer crash trials (workers killed at random points, runs resumed by the watch), more
# than `make test` runs: CRASH_TRIALS (default 50) seeds from CRASH_SEED (default 0).
.PHONY: soak-realtime soak-transfer
soak-transfer: install
	@trials=$${CRASH_TRIALS:-50}; \
	out=$$(CRASH_TRIALS=$$trials DJANGO_ALLOW_ASYNC_UNSAFE=true $(BIN)/pytest \
	  tests/integrations/test_transfer_crash.py -q -s -p no:randomly -rf $(PYTEST_ARGS) 2>&1); \
	status=$$?; \
	echo "$$out" | grep -E "^seed=|^(FAILED|ERROR)|[0-9]+ (passed|failed)"; \
	echo "transfer crash trials: $$trials, violations: $$(echo "$$out" | grep -cE "^(FAILED|ERROR)")"; \
	exit $$status
