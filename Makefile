# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install test test-fast demo serve bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

test: install  ## the whole suite, slow (real-training) tests included
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install  ## everything but the tests that train models
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: install  ## build the tiny model, load demo owners, run a round, serve on 127.0.0.1:8000
	$(PY) manage.py demo

serve: install  ## web server + one Celery worker; Ctrl-C stops both
	$(PY) manage.py demo --serve-only

bench: install
	$(PY) bench/upload.py

clean:
	rm -rf var/ .pytest_cache
