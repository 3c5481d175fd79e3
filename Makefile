# `make demo` and `make test` install what is missing, then run. Safe to run twice.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: setup system-deps demo up test lint bench clean

setup: system-deps $(STAMP)

# make test also needs Chromium (tests/browser); the demo does not.
test: SYSTEM_DEPS_ARGS := --browser
system-deps:
	@scripts/install-system-deps.sh $(SYSTEM_DEPS_ARGS)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

demo: setup
	$(BIN)/trustloop demo

up: setup
	$(BIN)/trustloop up

test: setup lint
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Prints figures (docs/performance.md); bounded, loopback only, never fails the build.
bench: setup
	$(BIN)/python bench/rhythm.py 200
	$(BIN)/python bench/load.py --direct --clinicians 16 --calls 24 --max-seconds 240
	$(BIN)/python bench/load.py --clinicians 16 --calls 24 --max-seconds 240

# down --delete also removes a database kept outside .trustloop (a clone under /root).
clean:
	@if [ -x $(BIN)/trustloop ]; then \
		TRUSTLOOP_STATE_DIR=.trustloop $(BIN)/trustloop down --delete --force; \
	fi
	rm -rf .trustloop
