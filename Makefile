# The two commands of the README: `make demo` compiles an example, `make test` runs the tests.
# Both use .venv; `demo` installs netc alone (what an admin's machine gets), `test` adds the
# test tools on top.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_TOOLS := $(VENV)/.test-tools

DEBIAN_CACHE := build/debian

.PHONY: help demo test lint bench image image-index

$(BIN)/netc: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_TOOLS): $(BIN)/netc pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $@

demo: $(BIN)/netc  ## compile an example (installs netc into .venv)
	$(BIN)/netc check examples/pods.netdsl
	$(BIN)/netc build examples/pods.netdsl
	$(BIN)/netc plan examples/pods.netdsl --pod default/web --port 8080:80 --bandwidth ingress=10M

test: lint  ## lint, then every test (CI's command)
	$(BIN)/python -m pytest -n 4 -q

# ruff (lint, and the format checked), then mypy strict on compiler/ and runtime/ ([tool.mypy] in pyproject.toml), then
# netc-cni's import path and its launcher once more as Python 3.10 reads them: the plugin
# runs on the node's Python, which may be older than the one netc is developed on.
lint: $(TEST_TOOLS)  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --python-version 3.10 -m runtime.cni.plugin -m runtime.launcher

bench: $(TEST_TOOLS)  ## the benchmarks (BENCH_ARGS=...)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The agent's image, offline (docs/deployment.md section 2).  Without ARCH: this machine's, from
# its own python3, as build/netc-image.tar.  ARCH=arm64 or ARCH=amd64: that architecture's, as
# build/netc-image-ARCH.tar -- for another architecture than this machine's, from Debian's
# packages of it, downloaded once into $(DEBIAN_CACHE) and reused from there without network.
# image-index: both as one OCI index (multi-arch), build/netc-image-index.tar.
image: $(BIN)/netc  ## the agent's image (ARCH=arm64 for another architecture)
	$(BIN)/netc image $(if $(ARCH),--arch $(ARCH)) --debian-cache $(DEBIAN_CACHE) \
		--out build/netc-image$(if $(ARCH),-$(ARCH)).tar

image-index: $(BIN)/netc  ## the amd64 and arm64 images as one OCI index
	$(BIN)/netc image --format oci --arch amd64 --arch arm64 --debian-cache $(DEBIAN_CACHE) \
		--out build/netc-image-index.tar

help:  ## what each target does
	@sed -n 's/^\([a-z-]*\):.*## /make \1: /p' $(MAKEFILE_LIST)
