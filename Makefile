# The two set-up commands of the README: `make run` (the main job) and `make test` (the suite).
# Each creates .venv and installs what it needs on first use.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench clean

# -qq: pip's errors only (its warnings about the machine's own pip settings and the build
# backend's notes are not something a person running `make run` can act on).
$(STAMP): pyproject.toml
	@echo "Installing the newsletter and its dependencies into $(VENV) (once; about a minute)"
	@python3 -m venv $(VENV)
	@$(PY) -m pip install -qq --upgrade pip
	@$(PY) -m pip install -qq -e '.[test]'
	@touch $(STAMP)

## Build the May 2011 issue and test-send it to the local outbox.
run: $(STAMP)
	@$(VENV)/bin/newsletter build issues/2011-05.yaml
	@$(VENV)/bin/newsletter send issues/2011-05.yaml --test

## Lint, then the whole test suite. pytest's "no tests collected" (5) counts as a failure.
test: $(STAMP)
	$(VENV)/bin/ruff check newsletter tests bench
	$(VENV)/bin/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; \
	exit $$rc

lint: $(STAMP)
	$(VENV)/bin/ruff check newsletter tests bench

bench: $(STAMP)
	$(PY) bench/build.py

clean:
	rm -rf build outbox site .pytest_cache
