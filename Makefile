# The two commands of the README. Each creates .venv on first use (Python 3.11+, pip from PyPI).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $(STAMP)

## PETS on the cart-pole swing-up: learning curve, metrics, video and results in runs/pets-cartpole
demo: $(STAMP)
	$(VENV)/bin/mbrlax train pets --env cartpole-swingup --out runs/pets-cartpole

## The test suite (under 10 minutes on 2 cores)
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

## Everything, including the slow learning runs (MBPO vs SAC on InvertedPendulum)
test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "slow or not slow"

## Speed benchmarks (figures printed and written to benchmarks/results/)
bench: $(STAMP)
	$(VENV)/bin/python benchmarks/model.py
	$(VENV)/bin/python benchmarks/planners.py

clean:
	rm -rf $(VENV) runs
