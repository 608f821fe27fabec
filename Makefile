# The two commands of the README. Each creates .venv on first use (Python 3.11+, pip from PyPI).
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: demo test test-all bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(VENV)/bin/pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

## PETS on the cart-pole swing-up: learning curve, metrics, video and results in runs/pets-cartpole
demo: $(STAMP)
	$(VENV)/bin/mbrlax train pets --env cartpole-swingup --out runs/pets-cartpole

## The test suite (under 10 minutes on 2 cores): two pytest workers, one test file each at a time
## (measured cold at load ~5.5: 6:52, against 10:20 in one process; a warm XLA cache in .cache/ halves reruns)
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

## Everything, including the slow learning runs (MBPO vs SAC on InvertedPendulum)
test-all: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m "slow or not slow"

## Speed benchmarks (figures printed and written to benchmarks/results/)
bench: $(STAMP)
	$(VENV)/bin/python benchmarks/model.py
	$(VENV)/bin/python benchmarks/planners.py

## The documentation site, API reference from the docstrings, into site/ (warnings are errors)
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) runs site
