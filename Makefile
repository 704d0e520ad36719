# The two commands of the README: `make demo` compiles an example, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench

$(BIN)/netc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/netc
	$(BIN)/netc check examples/pods.netdsl
	$(BIN)/netc build examples/pods.netdsl
	$(BIN)/netc plan examples/pods.netdsl --pod default/web --port 8080:80 --bandwidth ingress=10M

test: $(BIN)/netc
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 4 -q

lint: $(BIN)/netc
	$(BIN)/ruff check .

bench: $(BIN)/netc
	$(BIN)/python -m bench $(BENCH_ARGS)
