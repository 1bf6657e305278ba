# Developer commands. `make help` lists them. Everything runs in .venv, created on demand.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.DEFAULT_GOAL := help
.PHONY: help venv install build-dev build-prod wheel wheel-check format lint typecheck test bench demo all clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip

venv: $(PY)

install: $(PY) ## build (release) and install pgstreams with its test, bench and dev tools
	$(PIP) install ".[dev]"

build-dev: $(PY) ## fast debug build of the extension, installed editable
	$(PIP) install "maturin>=1.9,<2"
	$(VENV)/bin/maturin develop

build-prod: $(PY) ## the release wheel, in dist/
	$(PIP) install "maturin>=1.9,<2"
	$(VENV)/bin/maturin build --release --out dist

wheel: $(PY) ## the release wheel for any Linux with glibc >= 2.17 (manylinux2014, abi3: Python 3.11+), in dist/
	$(PIP) install "maturin>=1.9,<2" "ziglang>=0.13" "auditwheel>=6"
	rm -rf dist
	# zig is found as `python3 -m ziglang`: the venv's python3 first on PATH.
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/maturin build --release --zig \
		--compatibility manylinux2014 --interpreter $(PY) --out dist
	$(VENV)/bin/auditwheel show dist/*.whl

wheel-check: wheel ## install the wheel into a fresh venv without Rust and run the demo from it
	.ci/wheel-check

format: $(PY) ## format Rust and Python
	cargo fmt
	$(VENV)/bin/ruff format python tests benches
	$(VENV)/bin/ruff check --fix python tests benches

lint: $(PY) ## cargo fmt --check, clippy -D warnings, ruff
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches

typecheck: $(PY) ## mypy --strict on the package, and the _core stub against the extension
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest pgstreams._core

test: install ## the whole test suite: Rust (cargo test) then Python (needs PostgreSQL: $$PGSTREAMS_TEST_DSN, the local server, or its binaries)
	cargo test --quiet
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install ## pgstreams vs raw asyncpg, side by side
	$(PY) benches/run.py

demo: $(PY) ## install and run the demo
	$(PIP) install .
	$(VENV)/bin/pgstreams demo

all: lint typecheck test ## everything CI checks

clean: ## remove build output and the venv
	rm -rf $(VENV) dist target
