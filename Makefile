# One command sets up a fresh machine and runs the tests (`make test`: the whole suite, what CI runs;
# `make test-fast`: all but the tests marked slow), the linter (`make lint`, ruff as pyproject.toml configures it)
# or the demo (`make demo`).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch/torchvision pinned to the wheels these machines hold on disk (timm needs torchvision).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# TEST_WORKERS=N runs the test files in N worker processes (pytest-xdist), each file's tests in one worker, in
# the order tests/conftest.py gives; 0 runs them in this process. Two by default: most of a test's time is a
# subprocess starting (imports on one core), so two workers keep both cores of a small machine busy
# (docs/development.md).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

.PHONY: venv lint test test-fast demo bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check .

test: venv
	$(PY) -m pytest -ra --durations=10 $(XDIST) $(PYTEST_ARGS) tests

test-fast: venv
	$(PY) -m pytest -ra --durations=10 -m "not slow" $(XDIST) $(PYTEST_ARGS) tests

demo: venv
	$(VENV)/bin/smaformer demo -o smaformer_demo

bench: venv
	$(PY) benchmarks/network_speed.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
