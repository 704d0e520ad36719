# The two commands of the README: `make demo` compiles an example, `make test` runs the tests.
# Both use .venv; `demo` installs netc alone (what an admin's machine gets), `test` adds the
# test tools on top.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_TOOLS := $(VENV)/.test-tools

.PHONY: demo test lint bench image

$(BIN)/netc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_TOOLS): $(BIN)/netc pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/netc
	$(BIN)/netc check examples/pods.netdsl
	$(BIN)/netc build examples/pods.netdsl
	$(BIN)/netc plan examples/pods.netdsl --pod default/web --port 8080:80 --bandwidth ingress=10M

test: lint
	$(BIN)/python -m pytest -n 4 -q

# ruff, then mypy strict on compiler/ and runtime/ ([tool.mypy] in pyproject.toml), then
# netc-cni's import path once more as Python 3.10 reads it: the plugin runs on the node's
# Python, which may be older than the one netc is developed on.
lint: $(TEST_TOOLS)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy --python-version 3.10 -m runtime.cni.plugin

bench: $(TEST_TOOLS)
	$(BIN)/python -m bench $(BENCH_ARGS)

image: $(BIN)/netc
	$(BIN)/netc image --out build/netc-image.tar
