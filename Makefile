# Two entry points: `make run` (set up, then the mythical-digit experiment) and `make test`.
# `make reproduce [STUDY=name] [MODELS=store]` reruns the published studies into docs/;
# `make docs` refreshes the docs' tables from the runs' outputs.
VENV ?= .venv
DATA ?= ../shared/data
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e ".[dev,ray,tracking]"
	touch $@

.PHONY: setup run test bench reproduce docs
setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/kdlab run mythical-digit --data-dir $(DATA)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/bench_protocol.py --data-dir $(DATA)

reproduce: $(VENV)/.installed
	$(VENV)/bin/kdlab reproduce --data-dir $(DATA) $(if $(STUDY),--study $(STUDY)) $(if $(MODELS),--models-dir $(MODELS))

docs: $(VENV)/.installed
	$(VENV)/bin/kdlab docs
