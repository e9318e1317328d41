PY ?= .venv/bin/python

.PHONY: install lint test run smoke

install:
	python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e ".[dev]"

lint:
	$(PY) -m ruff check splineforecast tests
	$(PY) -m ruff format --check splineforecast tests
	$(PY) -m mypy

test:
	$(PY) -m pytest

run:
	$(PY) -m splineforecast

smoke:
	PYTHON=$(PY) bash scripts/smoke_test.sh
