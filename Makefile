PY ?= .venv/bin/python

.PHONY: install lint hooks test test-all run smoke

install:
	python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e ".[dev]"

lint:
	$(PY) -m ruff check splineforecast tests benchmarks
	$(PY) -m ruff format --check splineforecast tests benchmarks
	$(PY) -m mypy

hooks:  # the pre-commit hooks (.pre-commit-config.yaml) on every file; `.venv/bin/pre-commit install` runs them on commit
	.venv/bin/pre-commit run --all-files

test:
	$(PY) -m pytest -n 2

test-all:
	$(PY) -m pytest -m "slow or not slow" -n 2

run:
	$(PY) -m splineforecast

smoke:
	PYTHON=$(PY) bash scripts/smoke_test.sh
