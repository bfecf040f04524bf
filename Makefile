# Every target that needs the environment builds it first: `make run` and `make test`
# work on a fresh machine with nothing but python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench lint docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The demo owns results/demo: each `make run` starts it afresh.
run: $(STAMP)
	rm -rf results/demo
	$(PY) -m ultra_async run --simulate --models all --prompt-types optimal,baseline,flawed_sequence_disorder \
		--difficulties easy --rates 0.8 --task-types all --instances 2 --seed 1 --out results/demo

test: $(STAMP)
	$(PY) -m pytest

# the overhead section also measures uvloop (ultra_async[fast]) when it can be installed
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[fast]' || echo "uvloop not installed: overhead skips it"
	$(PY) -m benchmarks

lint: $(STAMP)
	$(PY) -m ruff check ultra_async tests benchmarks
	$(PY) -m ruff format --check ultra_async tests benchmarks
	$(PY) -m mypy

# docs/img/: pictures of reporting.md from a real simulated run (the viewer's need chromium:
# apt-get install -y chromium; without it they are left as they are)
docs: $(STAMP)
	$(PY) -c "from ultra_async.cli.main import reference_markdown; print(reference_markdown(), end='')" > docs/cli.md
	$(PY) docs/pictures.py

clean:
	rm -rf $(VENV) results .pytest_cache .mypy_cache .ruff_cache
